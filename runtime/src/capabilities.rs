//! What the host gives functions beyond config and logging: the document store, object storage
//! (with presigned URLs served by our HTTP server) and the IXON API client. Built once per
//! process from the server's settings; each invocation gets a [`HostScope`] that pins it to its
//! space, its collection, its allowlist and its caller.

use std::sync::Arc;

use anyhow::{Context, Result};
use wasmfn_host_apis::docstore::postgres::PostgresDocuments;
use wasmfn_host_apis::docstore::sled_store::SledDocuments;
use wasmfn_host_apis::docstore::{
    CollectionRef, DocumentStore, Documents, Limits as DocLimits, SpaceQuota as DocumentQuota,
};
use wasmfn_host_apis::ixon_api::{Allowlist, ApiOptions, Credentials, IxonApi, DEFAULT_BASE_URL};
use wasmfn_host_apis::objects::backend::ObjectBackend;
use wasmfn_host_apis::objects::{ObjectLimits, Objects, Presigner, SpaceQuota as ObjectQuota};

use crate::caller::Caller;
use crate::state::StateDb;

/// The server's settings for the capabilities.
#[derive(Debug, Clone)]
pub struct CapabilityOptions {
    /// `sled` (embedded, default) or a `postgres://` URL.
    pub document_store: String,
    /// `file:<dir>`, `memory:` or `s3://bucket?...`; default `<data-dir>/objects`.
    pub object_store: Option<String>,
    /// The IXON API's base URL (discovery).
    pub ixon_api_url: String,
    /// How clients reach this server, for presigned object URLs (`http://host:port`).
    pub public_url: String,
    /// What each space may keep in the document store (enforced by the embedded store).
    pub document_quota: DocumentQuota,
    /// What each space may keep in object storage.
    pub object_quota: ObjectQuota,
}

impl Default for CapabilityOptions {
    fn default() -> Self {
        Self {
            document_store: "sled".into(),
            object_store: None,
            ixon_api_url: DEFAULT_BASE_URL.into(),
            public_url: "http://127.0.0.1:8080".into(),
            document_quota: DocumentQuota::default(),
            object_quota: ObjectQuota::default(),
        }
    }
}

/// The capabilities, shared by every invocation.
pub struct Capabilities {
    pub documents: Documents,
    pub objects: Objects,
    pub presigner: Presigner,
    pub ixon_api: IxonApi,
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

impl Capabilities {
    pub async fn open(options: &CapabilityOptions, state: &StateDb) -> Result<Self> {
        let store: Arc<dyn DocumentStore> = match options.document_store.as_str() {
            "sled" | "" => {
                let db = state.db().clone();
                let quota = options.document_quota;
                // Counting every space's usage reads the whole store once.
                let store = tokio::task::spawn_blocking(move || SledDocuments::open(db, quota))
                    .await
                    .context("opening the document store")?
                    .map_err(|e| anyhow::anyhow!("document store: {e}"))?;
                Arc::new(store)
            }
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                if options.document_quota != DocumentQuota::default() {
                    tracing::warn!(
                        "the --space-documents, --space-document-mib and --space-collections \
                         quotas apply to the embedded document store only, not to PostgreSQL"
                    );
                }
                Arc::new(
                    PostgresDocuments::connect(url)
                        .await
                        .map_err(|e| anyhow::anyhow!("document store: {e}"))?,
                )
            }
            other => anyhow::bail!(
                "--document-store {other:?} is not supported: use `sled` or a postgres:// URL"
            ),
        };
        let documents = Documents::new(store, DocLimits::default());
        let object_setting = options
            .object_store
            .clone()
            .unwrap_or_else(|| format!("file:{}", state.data_dir().join("objects").display()));
        let backend = ObjectBackend::parse(&object_setting).map_err(anyhow::Error::msg)?;
        let objects =
            Objects::new(backend.build().map_err(anyhow::Error::msg)?, ObjectLimits::default())
                .with_layout(backend.layout())
                .with_quota(options.object_quota);
        objects
            .count_usage()
            .await
            .map_err(|e| anyhow::anyhow!("object storage: counting what each space keeps: {e}"))?;
        let presigner = Presigner::new(presign_secret(state)?, &options.public_url);
        let ixon_api = IxonApi::new(&options.ixon_api_url, ApiOptions::default())
            .map_err(anyhow::Error::msg)?;
        tracing::info!(
            documents = documents.backend(),
            objects = %backend.describe(),
            ixon_api = %options.ixon_api_url,
            "capabilities ready"
        );
        Ok(Self { documents, objects, presigner, ixon_api })
    }
}

/// The key presigned URLs are signed with: generated once and kept (sealed) in the state
/// database, so links stay valid across restarts.
fn presign_secret(state: &StateDb) -> Result<Vec<u8>> {
    node_secret(state, "presign")
}

/// A signing key of this node, named `name`: generated once and kept in the state database,
/// sealed with the secrets key. One kept in plain text by an older version, or sealed with the
/// previous secrets key, is sealed again with the current one.
pub fn node_secret(state: &StateDb, name: &str) -> Result<Vec<u8>> {
    let tree = state.tree("secrets")?;
    let label = format!("node/{name}");
    let save = |secret: &[u8]| -> Result<()> {
        let sealed = state
            .sealer()
            .seal(&label, secret)
            .map_err(|e| anyhow::anyhow!("sealing the {name} key: {e}"))?;
        tree.insert(name, sealed.as_bytes()).with_context(|| format!("saving the {name} key"))?;
        tree.flush().with_context(|| format!("saving the {name} key"))?;
        Ok(())
    };
    if let Some(stored) = tree.get(name).with_context(|| format!("reading the {name} key"))? {
        let unsealed = state
            .sealer()
            .unseal_stored(&label, &stored)
            .map_err(|e| crate::sealed::open_failed(&format!("{name} signing key"), &e))?;
        if unsealed.stale {
            save(&unsealed.plaintext)?;
        }
        return Ok(unsealed.plaintext);
    }
    let secret: [u8; 32] = rand::random();
    save(&secret)?;
    Ok(secret.to_vec())
}

/// One invocation's view of the capabilities.
pub struct HostScope {
    pub capabilities: Arc<Capabilities>,
    pub space: String,
    pub collection: CollectionRef,
    pub allowlist: Allowlist,
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
            credentials: Credentials {
                authorization: caller.access_token.as_ref().map(|t| t.0.clone()),
                company,
                application: caller.api_application.as_ref().map(|a| a.public_id.clone()),
            },
        }
    }
}
