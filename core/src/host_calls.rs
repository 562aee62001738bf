//! The host side of the `documents`, `objects`, `ixon-api` and `tcp` interfaces: each call
//! checks that the invocation has the capability, converts WIT values, and delegates to
//! `wasmfn-host-apis` within the invocation's [`HostScope`] (or, for `tcp`, to the
//! invocation's outbound connections). Errors cross as the interfaces' typed variants.

use std::collections::BTreeMap;

use serde_json::Value;
use wasmfn_host_apis::docstore::{
    CallDeadline, CollectionRef, DocError, Document, Documents, UpdateOptions, UpdateResult,
};
use wasmfn_host_apis::ixon_api::{ApiCall, ApiError};
use wasmfn_host_apis::objects::{ObjectError, ObjectInfo};
use wasmfn_host_apis::outbound::OutboundError;
use wasmtime::component::Resource;

use crate::bindings::wasmfn::platform::{documents, ixon_api, objects, tcp};
use crate::capabilities::HostScope;
use crate::host::InvocationState;
use crate::outbound::tcp::TcpConnection;

fn no_scope() -> String {
    "this command runs functions without storage or the IXON API; use `wasmfn serve`".into()
}

impl InvocationState {
    fn scope(&self) -> Option<&HostScope> {
        self.scope.as_ref()
    }

    /// The document store, its operations bounded by this invocation's deadline as well as by
    /// the store's own time limit, and the invocation's collection.
    fn documents(&self) -> Result<(Documents, CollectionRef), documents::DocumentError> {
        let scope =
            self.scope().ok_or_else(|| documents::DocumentError::Unavailable(no_scope()))?;
        let store = &scope.capabilities.documents;
        let store = match self.deadline {
            Some(at) => {
                store.within(CallDeadline { at, caller: "the calling function (its timeout_ms)" })
            }
            None => store.clone(),
        };
        Ok((store, scope.collection.clone()))
    }
}

// ---- documents ----

fn doc_error(error: DocError) -> documents::DocumentError {
    use documents::DocumentError as E;
    match error {
        DocError::Invalid(m) => E::Invalid(m),
        DocError::TooLarge(m) => E::TooLarge(m),
        DocError::DuplicateKey(m) => E::DuplicateKey(m),
        DocError::LimitExceeded(m) => E::LimitExceeded(m),
        // The WIT has no quota case: the guest tells it by the `quota exceeded:` message.
        DocError::QuotaExceeded(m) => E::LimitExceeded(m),
        DocError::Unavailable(m) => E::Unavailable(m),
    }
}

fn parse(what: &str, text: &str) -> Result<Value, documents::DocumentError> {
    wasmfn_host_apis::docstore::parse_json(text.as_bytes())
        .map_err(|e| documents::DocumentError::Invalid(format!("{what} {e}")))
}

fn update_result(result: UpdateResult) -> documents::UpdateResult {
    documents::UpdateResult {
        matched: result.matched,
        modified: result.modified,
        upserted_id: result.upserted_id.map(|id| id.to_string()),
    }
}

fn document_text(document: &Document) -> String {
    serde_json::to_string(document).unwrap_or_else(|_| "{}".into())
}

impl documents::Host for InvocationState {
    async fn find(
        &mut self,
        filter: String,
        options: documents::FindOptions,
    ) -> Result<Vec<String>, documents::DocumentError> {
        let (store, at) = self.documents()?;
        let at = &at;
        let filter = parse("filter", &filter)?;
        let projection =
            options.projection.as_deref().map(|p| parse("projection", p)).transpose()?;
        let sort = options.sort.as_deref().map(|s| parse("sort", s)).transpose()?;
        let found = store
            .find(at, &filter, projection.as_ref(), sort.as_ref(), options.skip, options.limit)
            .await
            .map_err(doc_error)?;
        Ok(found.iter().map(document_text).collect())
    }

    async fn count(&mut self, filter: String) -> Result<u64, documents::DocumentError> {
        let (store, at) = self.documents()?;
        let at = &at;
        let filter = parse("filter", &filter)?;
        store.count(at, &filter).await.map_err(doc_error)
    }

    async fn insert(
        &mut self,
        documents: Vec<String>,
    ) -> Result<Vec<String>, documents::DocumentError> {
        let (store, at) = self.documents()?;
        let at = &at;
        let parsed =
            documents.iter().map(|d| parse("document", d)).collect::<Result<Vec<_>, _>>()?;
        let ids = store.insert(at, parsed).await.map_err(doc_error)?;
        Ok(ids.iter().map(Value::to_string).collect())
    }

    async fn update(
        &mut self,
        filter: String,
        update: String,
        many: bool,
        upsert: bool,
    ) -> Result<documents::UpdateResult, documents::DocumentError> {
        let (store, at) = self.documents()?;
        let at = &at;
        let (filter, update) = (parse("filter", &filter)?, parse("update", &update)?);
        let options = UpdateOptions { many, upsert };
        let result = store.update(at, &filter, &update, options).await;
        result.map(update_result).map_err(doc_error)
    }

    async fn replace(
        &mut self,
        filter: String,
        replacement: String,
        upsert: bool,
    ) -> Result<documents::UpdateResult, documents::DocumentError> {
        let (store, at) = self.documents()?;
        let at = &at;
        let (filter, replacement) =
            (parse("filter", &filter)?, parse("replacement", &replacement)?);
        let result = store.replace(at, &filter, &replacement, upsert).await;
        result.map(update_result).map_err(doc_error)
    }

    async fn delete(
        &mut self,
        filter: String,
        many: bool,
    ) -> Result<u64, documents::DocumentError> {
        let (store, at) = self.documents()?;
        let at = &at;
        let filter = parse("filter", &filter)?;
        store.delete(at, &filter, many).await.map_err(doc_error)
    }
}

// ---- objects ----

fn object_error(error: ObjectError) -> objects::ObjectError {
    use objects::ObjectError as E;
    match error {
        ObjectError::InvalidKey(m) => E::InvalidKey(m),
        ObjectError::NotFound(m) => E::NotFound(m),
        ObjectError::TooLarge(m) => E::TooLarge(m),
        // The object does not fit in what is left of the space's quota.
        ObjectError::QuotaExceeded(m) => E::TooLarge(m),
        ObjectError::Unavailable(m) => E::Unavailable(m),
    }
}

fn object_info(info: ObjectInfo) -> objects::ObjectInfo {
    objects::ObjectInfo {
        key: info.key,
        size: info.size,
        content_type: info.content_type,
        metadata: info.metadata.into_iter().collect(),
        last_modified: info.last_modified,
        etag: info.etag,
    }
}

/// The longest a presigned URL may be asked to live, in seconds.
const MAX_PRESIGN_SECS: u32 = 7 * 24 * 3600;

impl objects::Host for InvocationState {
    async fn put(
        &mut self,
        key: String,
        body: Vec<u8>,
        content_type: Option<String>,
        metadata: Vec<(String, String)>,
    ) -> Result<objects::ObjectInfo, objects::ObjectError> {
        let scope = self.scope().ok_or_else(|| objects::ObjectError::Unavailable(no_scope()))?;
        let metadata: BTreeMap<String, String> = metadata.into_iter().collect();
        let stored = scope
            .capabilities
            .objects
            .put(&scope.space, &key, body.into(), content_type, metadata)
            .await;
        stored.map(object_info).map_err(object_error)
    }

    async fn get(&mut self, key: String) -> Result<objects::Object, objects::ObjectError> {
        let scope = self.scope().ok_or_else(|| objects::ObjectError::Unavailable(no_scope()))?;
        let (info, body) =
            scope.capabilities.objects.get(&scope.space, &key).await.map_err(object_error)?;
        Ok(objects::Object { info: object_info(info), body: body.to_vec() })
    }

    async fn head(&mut self, key: String) -> Result<objects::ObjectInfo, objects::ObjectError> {
        let scope = self.scope().ok_or_else(|| objects::ObjectError::Unavailable(no_scope()))?;
        scope
            .capabilities
            .objects
            .head(&scope.space, &key)
            .await
            .map(object_info)
            .map_err(object_error)
    }

    async fn delete(&mut self, key: String) -> Result<bool, objects::ObjectError> {
        let scope = self.scope().ok_or_else(|| objects::ObjectError::Unavailable(no_scope()))?;
        scope.capabilities.objects.delete(&scope.space, &key).await.map_err(object_error)
    }

    async fn list_objects(
        &mut self,
        prefix: String,
        start_after: Option<String>,
        max_keys: u32,
    ) -> Result<objects::Listing, objects::ObjectError> {
        let scope = self.scope().ok_or_else(|| objects::ObjectError::Unavailable(no_scope()))?;
        let listing = scope
            .capabilities
            .objects
            .list(&scope.space, &prefix, start_after.as_deref(), max_keys as usize)
            .await
            .map_err(object_error)?;
        Ok(objects::Listing {
            objects: listing.objects.into_iter().map(object_info).collect(),
            next_start_after: listing.next_start_after,
        })
    }

    async fn presign(
        &mut self,
        key: String,
        method: String,
        expires_in: u32,
    ) -> Result<String, objects::ObjectError> {
        let scope = self.scope().ok_or_else(|| objects::ObjectError::Unavailable(no_scope()))?;
        wasmfn_host_apis::objects::check_key(&key).map_err(object_error)?;
        if expires_in == 0 || expires_in > MAX_PRESIGN_SECS {
            return Err(objects::ObjectError::InvalidKey(format!(
                "expires_in must be 1..={MAX_PRESIGN_SECS} seconds"
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        scope
            .capabilities
            .presigner
            .url(&method, &scope.space, &key, now + u64::from(expires_in))
            .map_err(|e| objects::ObjectError::InvalidKey(e.to_string()))
    }
}

// ---- IXON API ----

impl ixon_api::Host for InvocationState {
    async fn request(
        &mut self,
        req: ixon_api::ApiRequest,
    ) -> Result<ixon_api::ApiResponse, ixon_api::ApiError> {
        let Some(scope) = self.scope.as_ref() else {
            return Err(ixon_api::ApiError::Unavailable(no_scope()));
        };
        // The request waits on the network: another invocation may run meanwhile.
        if let Some(slot) = self.running.as_mut() {
            slot.park();
        }
        let result = ixon_request(scope, req).await;
        if let Some(slot) = self.running.as_mut() {
            slot.resume().await;
        }
        result
    }
}

async fn ixon_request(
    scope: &HostScope,
    req: ixon_api::ApiRequest,
) -> Result<ixon_api::ApiResponse, ixon_api::ApiError> {
    let call = ApiCall {
        method: req.method,
        url_name: req.url_name,
        url_args: req.url_args,
        query: req.query,
        headers: req.headers,
        body: req.body.map(Into::into),
    };
    let response = scope
        .capabilities
        .ixon_api
        .call(&scope.allowlist, &scope.credentials, call)
        .await
        .map_err(|error| match error {
            ApiError::Denied(m) => ixon_api::ApiError::Denied(m),
            ApiError::UnknownEndpoint(m) => ixon_api::ApiError::UnknownEndpoint(m),
            ApiError::TooLarge(m) => ixon_api::ApiError::TooLarge(m),
            ApiError::Unavailable(m) => ixon_api::ApiError::Unavailable(m),
        })?;
    Ok(ixon_api::ApiResponse {
        status: response.status,
        content_type: response.content_type,
        body: response.body.to_vec(),
    })
}

/// The `wasmfn:platform/tcp` error for a failed connection, read or write.
fn tcp_error(error: OutboundError) -> tcp::ConnectError {
    use tcp::ConnectError as E;
    let text = error.to_string();
    match error {
        OutboundError::NotAllowed(_) => E::NotAllowed(text),
        OutboundError::Dns { .. } | OutboundError::NoHost => E::Unresolved(text),
        OutboundError::Refused(_) => E::Refused(text),
        OutboundError::ConnectTimeout(_)
        | OutboundError::ResponseTimeout
        | OutboundError::ReadTimeout
        | OutboundError::Deadline => E::Timeout(text),
        OutboundError::Certificate(..) | OutboundError::Tls(..) => E::Tls(text),
        OutboundError::Connect(..) | OutboundError::TooLarge(_) | OutboundError::Protocol(_) => {
            E::Failed(text)
        }
    }
}

fn millis(ms: Option<u32>) -> Option<std::time::Duration> {
    ms.map(|ms| std::time::Duration::from_millis(ms.into()))
}

impl tcp::Host for InvocationState {
    async fn connect(
        &mut self,
        host: String,
        port: u16,
        tls: bool,
        timeout_ms: Option<u32>,
    ) -> Result<Resource<TcpConnection>, tcp::ConnectError> {
        let connection =
            TcpConnection::open(&mut self.outbound, host, port, tls, millis(timeout_ms))
                .await
                .map_err(tcp_error)?;
        self.table.push(connection).map_err(|e| tcp::ConnectError::Failed(e.to_string()))
    }
}

impl tcp::HostConnection for InvocationState {
    async fn read(
        &mut self,
        connection: Resource<TcpConnection>,
        max: u32,
        timeout_ms: Option<u32>,
    ) -> Result<Vec<u8>, tcp::ConnectError> {
        let connection = self.table.get_mut(&connection).map_err(gone)?;
        connection.read(max, millis(timeout_ms)).await.map_err(tcp_error)
    }

    async fn write(
        &mut self,
        connection: Resource<TcpConnection>,
        data: Vec<u8>,
    ) -> Result<(), tcp::ConnectError> {
        let connection = self.table.get_mut(&connection).map_err(gone)?;
        connection.write(&data).await.map_err(tcp_error)
    }

    async fn start_tls(
        &mut self,
        connection: Resource<TcpConnection>,
    ) -> Result<(), tcp::ConnectError> {
        let connection = self.table.get_mut(&connection).map_err(gone)?;
        connection.start_tls().await.map_err(tcp_error)
    }

    async fn drop(&mut self, connection: Resource<TcpConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

fn gone(_: wasmtime::component::ResourceTableError) -> tcp::ConnectError {
    tcp::ConnectError::Failed("the connection is closed".into())
}
