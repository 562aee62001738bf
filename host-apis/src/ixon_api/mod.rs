//! The IXON API client functions use as `context.api_client`: the host runs discovery (cached
//! with a TTL across invocations), formats the discovered URL template with the call's
//! arguments, adds the caller's credentials, and sends the request with reqwest, limited to the
//! API's own origin, a timeout and a response size bound. Calls to endpoints outside the
//! function's [`Allowlist`] are refused before any network traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

// What a function may call is declared in its manifest.
pub use wasmfn_manifest::allowlist::{self, Allowlist};

/// The public IXON API.
pub const DEFAULT_BASE_URL: &str = "https://portal.ixon.cloud/api/";

/// Why an API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    UnknownEndpoint(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Who the call is made for: the invocation's caller.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The caller's `Authorization` header value (`Bearer ...`); the function never sees it.
    pub authorization: Option<String>,
    pub company: Option<String>,
    pub application: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("company", &self.company)
            .field("application", &self.application)
            .finish()
    }
}

/// One call from a function.
#[derive(Debug, Clone, Default)]
pub struct ApiCall {
    pub method: String,
    pub url_name: String,
    pub url_args: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

/// The API's answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub discovery_ttl: Duration,
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            discovery_ttl: Duration::from_secs(600),
            timeout: Duration::from_secs(10),
            max_response_bytes: 8 << 20,
        }
    }
}

#[derive(Deserialize)]
struct Discovery {
    #[serde(rename = "type")]
    kind: String,
    data: Vec<DiscoveryEntry>,
}

#[derive(Deserialize)]
struct DiscoveryEntry {
    rel: String,
    href: String,
}

type Links = Arc<HashMap<String, String>>;

/// The host's IXON API client, shared by every invocation.
pub struct IxonApi {
    client: reqwest::Client,
    base_url: url::Url,
    options: ApiOptions,
    discovery: Mutex<Option<(Instant, Links)>>,
}

impl std::fmt::Debug for IxonApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IxonApi").field("base_url", &self.base_url.as_str()).finish()
    }
}

impl IxonApi {
    pub fn new(base_url: &str, options: ApiOptions) -> Result<Self, String> {
        let base_url = url::Url::parse(base_url)
            .map_err(|e| format!("IXON API base URL {base_url:?}: {e}"))?;
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(format!("IXON API base URL must be http(s): {base_url}"));
        }
        let origin = base_url.origin();
        // Redirects only within the API's own origin: a redirect elsewhere would carry the
        // caller's token to another host.
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 || attempt.url().origin() != origin {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("IXON API client: {e}"))?;
        Ok(Self { client, base_url, options, discovery: Mutex::new(None) })
    }

    pub fn base_url(&self) -> &str {
        self.base_url.as_str()
    }

    /// Sends `call` for `credentials` if `allow` permits it.
    pub async fn call(
        &self,
        allow: &Allowlist,
        credentials: &Credentials,
        call: ApiCall,
    ) -> Result<ApiResponse, ApiError> {
        let method = reqwest::Method::from_bytes(call.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                ApiError::UnknownEndpoint(format!("{:?} is not an HTTP method", call.method))
            })?;
        if !allow.allows(method.as_str(), &call.url_name) {
            return Err(ApiError::Denied(format!(
                "{method} {} is not allowed for this function: add it to [ixon_api] allow in \
                 function.toml",
                call.url_name
            )));
        }
        let links = self.links().await?;
        let template = links.get(&call.url_name).ok_or_else(|| {
            ApiError::UnknownEndpoint(format!(
                "the IXON API has no endpoint named {:?}",
                call.url_name
            ))
        })?;
        let url = self.resolve(&call.url_name, template, &call.url_args)?;
        let mut request =
            self.client.request(method, url).headers(headers(credentials, &call.headers)?);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = call.body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = self.read_limited(response).await?;
        Ok(ApiResponse { status, content_type, body })
    }

    /// The discovery links, from the cache while fresh.
    async fn links(&self) -> Result<Links, ApiError> {
        {
            let cached = self.discovery.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, links)) = cached.as_ref() {
                if at.elapsed() < self.options.discovery_ttl {
                    return Ok(links.clone());
                }
            }
        }
        let response = self
            .client
            .get(self.base_url.clone())
            .header("Api-Version", "2")
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(ApiError::Unavailable(format!(
                "IXON API discovery failed with status {}",
                response.status().as_u16()
            )));
        }
        let body = self.read_limited(response).await?;
        let discovery: Discovery = serde_json::from_slice(&body).map_err(|_| {
            ApiError::Unavailable("IXON API discovery answered no discovery document".into())
        })?;
        if discovery.kind != "Discovery" {
            return Err(ApiError::Unavailable(
                "IXON API discovery answered no discovery document".into(),
            ));
        }
        let links: Links = Arc::new(discovery.data.into_iter().map(|d| (d.rel, d.href)).collect());
        *self.discovery.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), links.clone()));
        Ok(links)
    }

    /// The discovered template with `{placeholders}` filled (each value percent-encoded, so an
    /// argument cannot change the path), limited to the API's origin.
    fn resolve(
        &self,
        name: &str,
        template: &str,
        args: &[(String, String)],
    ) -> Result<url::Url, ApiError> {
        let mut formatted = template.to_string();
        for (key, value) in args {
            let encoded: String = percent_encoding::utf8_percent_encode(value, SEGMENT).to_string();
            formatted = formatted.replace(&format!("{{{key}}}"), &encoded);
        }
        if let Some(start) = formatted.find('{') {
            let missing: String =
                formatted[start + 1..].chars().take_while(|c| *c != '}').collect();
            return Err(ApiError::UnknownEndpoint(format!(
                "endpoint {name} needs url_args[{missing:?}]"
            )));
        }
        let url = self
            .base_url
            .join(&formatted)
            .map_err(|_| ApiError::UnknownEndpoint(format!("endpoint {name} has no valid URL")))?;
        if url.origin() != self.base_url.origin() {
            return Err(ApiError::Denied(format!(
                "endpoint {name} points outside the IXON API ({})",
                url.host_str().unwrap_or("?")
            )));
        }
        Ok(url)
    }

    async fn read_limited(&self, mut response: reqwest::Response) -> Result<Bytes, ApiError> {
        let limit = self.options.max_response_bytes;
        if response.content_length().is_some_and(|length| length as usize > limit) {
            return Err(too_large(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.into())
    }
}

/// Characters escaped in a URL argument: everything but unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn too_large(limit: usize) -> ApiError {
    ApiError::TooLarge(format!("the IXON API answer is larger than {limit} bytes"))
}

fn unreachable(error: reqwest::Error) -> ApiError {
    let what = if error.is_timeout() { "timed out" } else { "could not be reached" };
    tracing::warn!(error = %error.without_url(), "IXON API call failed");
    ApiError::Unavailable(format!("the IXON API {what}"))
}

/// The request headers: the platform's, the caller's credentials, then the function's own.
fn headers(credentials: &Credentials, own: &[(String, String)]) -> Result<HeaderMap, ApiError> {
    let mut map = HeaderMap::new();
    let mut set = |name: &str, value: &str| -> Result<(), ApiError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::UnknownEndpoint(format!("{name:?} is not a header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            ApiError::UnknownEndpoint(format!("header {name} has an invalid value"))
        })?;
        map.insert(name, value);
        Ok(())
    };
    set("Api-Version", "2")?;
    if let Some(application) = &credentials.application {
        set("Api-Application", application)?;
    }
    if let Some(company) = &credentials.company {
        set("Api-Company", company)?;
    }
    if let Some(authorization) = &credentials.authorization {
        set("Authorization", authorization)?;
    }
    for (name, value) in own {
        set(name, value)?;
    }
    Ok(map)
}

#[cfg(test)]
mod tests;
