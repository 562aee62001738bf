//! `[[documents.index]]`: when a version that declares indexes becomes active, the document
//! store makes them (PostgreSQL builds them in the background without blocking writes; the
//! embedded store keeps none). A version serves at once; its queries use an index as soon as it
//! is built, and a failure is logged, never a refused deploy.

use std::sync::Arc;

use wasmfn_host_apis::docstore::Documents;

use crate::registry::{ActivationListener, FunctionVersion};

#[derive(Debug)]
pub struct DocumentIndexes {
    documents: Documents,
}

impl DocumentIndexes {
    pub fn new(documents: Documents) -> Self {
        Self { documents }
    }
}

impl ActivationListener for DocumentIndexes {
    fn check(&self, _version: &FunctionVersion) -> Result<(), String> {
        Ok(())
    }

    fn activated(&self, version: &Arc<FunctionVersion>) {
        if version.indexes.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let documents = self.documents.clone();
        let (space, collection) = (version.space.clone(), version.collection.clone());
        let paths = version.indexes.clone();
        runtime.spawn(async move {
            match documents.declare_indexes(&space, &collection, &paths).await {
                Ok(()) => tracing::info!(
                    %space, %collection, ?paths, backend = documents.backend(),
                    "document indexes in place"
                ),
                Err(error) => tracing::warn!(
                    %space, %collection, ?paths, %error,
                    "document indexes could not be made; queries scan until they are"
                ),
            }
        });
    }

    fn removed(&self, _space: &str, _function: &str) {}
}
