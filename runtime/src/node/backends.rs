//! Opening the capabilities from the server's settings: which document store (the embedded one
//! keeps its documents in the state database, or PostgreSQL), which object store, which IXON API,
//! and the node's signing keys, kept sealed in the state database.

use std::sync::Arc;

use anyhow::{Context, Result};
use wasmfn_host_apis::docstore::postgres::PostgresDocuments;
use wasmfn_host_apis::docstore::sled_store::SledDocuments;
use wasmfn_host_apis::docstore::{
    DocumentStore, Documents, Limits as DocLimits, SpaceQuota as DocumentQuota,
};
use wasmfn_host_apis::ixon_api::{ApiOptions, IxonApi, DEFAULT_BASE_URL};
use wasmfn_host_apis::objects::backend::ObjectBackend;
use wasmfn_host_apis::objects::{ObjectLimits, Objects, Presigner, SpaceQuota as ObjectQuota};

use crate::capabilities::Capabilities;
use crate::outbound::{Outbound, OutboundLimits};
use crate::state::StateDb;
use wasmfn_host_apis::outbound::OutboundClient;

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
    /// A PEM bundle of CA certificates functions' HTTPS requests trust besides Mozilla's roots.
    pub outbound_ca_file: Option<std::path::PathBuf>,
    /// Bounds of functions' outbound requests.
    pub outbound_limits: OutboundLimits,
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
            outbound_ca_file: None,
            outbound_limits: OutboundLimits::default(),
        }
    }
}

/// Opens the capabilities the server's settings name; the embedded document store and the
/// presigning key live in the state database.
pub async fn open(options: &CapabilityOptions, state: &StateDb) -> Result<Capabilities> {
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
    let ixon_api =
        IxonApi::new(&options.ixon_api_url, ApiOptions::default()).map_err(anyhow::Error::msg)?;
    let ca = match &options.outbound_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading the outbound CA bundle {}", path.display()))?,
        ),
        None => None,
    };
    let client = OutboundClient::new(ca.as_deref())
        .map_err(|e| anyhow::anyhow!("--outbound-ca-file: {e}"))?;
    let outbound = Outbound { client, limits: options.outbound_limits };
    tracing::info!(
        documents = documents.backend(),
        objects = %backend.describe(),
        ixon_api = %options.ixon_api_url,
        "capabilities ready"
    );
    Ok(Capabilities { documents, objects, presigner, ixon_api, outbound })
}

/// The key presigned URLs are signed with: generated once and kept (sealed) in the state
/// database, so links stay valid across restarts.
fn presign_secret(state: &StateDb) -> Result<Vec<u8>> {
    crate::signing_keys::node_secret(state, "presign")
}
