//! What the host gives functions beyond config and logging: the document store, object storage
//! (with presigned URLs served by our HTTP server) and the IXON API client. Opened once per
//! process from the server's settings (by the node, which knows the backends and the state
//! database); each invocation gets a [`HostScope`] that pins it to its space, its collection,
//! its allowlist and its caller.

use std::sync::Arc;

use wasmfn_host_apis::docstore::{CollectionRef, Documents};
use wasmfn_host_apis::ixon_api::{Allowlist, Credentials, IxonApi};
use wasmfn_host_apis::objects::{Objects, Presigner};

use crate::caller::Caller;
use crate::outbound::Outbound;
use wasmfn_host_apis::outbound::NetworkAllowlist;

/// The capabilities, shared by every invocation.
pub struct Capabilities {
    pub documents: Documents,
    pub objects: Objects,
    pub presigner: Presigner,
    pub ixon_api: IxonApi,
    /// Functions' own HTTP(S) requests: the node's client and limits.
    pub outbound: Outbound,
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("documents", &self.documents.backend())
            .field("objects", &self.objects)
            .field("ixon_api", &self.ixon_api.base_url())
            .finish()
    }
}

/// One invocation's view of the capabilities.
pub struct HostScope {
    pub capabilities: Arc<Capabilities>,
    pub space: String,
    pub collection: CollectionRef,
    pub allowlist: Allowlist,
    /// The outside hosts it may connect to.
    pub network: Arc<NetworkAllowlist>,
    pub credentials: Credentials,
}

/// The database a caller's documents live in: its company's, else the space's own.
pub const SPACE_DATABASE: &str = "_space";

impl HostScope {
    pub fn new(
        capabilities: Arc<Capabilities>,
        space: &str,
        collection: &str,
        allowlist: Allowlist,
        network: Arc<NetworkAllowlist>,
        caller: &Caller,
    ) -> Self {
        let company = caller.company.as_ref().map(|c| c.public_id.clone());
        let database = company.clone().unwrap_or_else(|| SPACE_DATABASE.into());
        Self {
            capabilities,
            space: space.to_string(),
            collection: CollectionRef {
                space: space.to_string(),
                database,
                collection: collection.to_string(),
            },
            allowlist,
            network,
            credentials: Credentials {
                authorization: caller.access_token.as_ref().map(|t| t.0.clone()),
                company,
                application: caller.api_application.as_ref().map(|a| a.public_id.clone()),
            },
        }
    }
}
