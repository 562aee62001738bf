//! Outbound deliveries: a function's outcome POSTed to a callback URL, retried with exponential
//! back-off and a per-attempt timeout, each attempt logged and the last results kept for the
//! admin API ([`log`]: in the state store, so across restarts and, with shared state, one log
//! for the cluster). Deliveries run in tasks of their own, so a slow receiver never blocks the
//! trigger that produced the outcome.
//!
//! What leaves the server is bounded here: destinations pass [`destination`]'s checks, only the
//! function's own headers minus the ones that steer HTTP or carry credentials are forwarded
//! ([`forwarded_headers`]), and each callback carries its depth ([`DEPTH_HEADER`]) so that a
//! chain of callbacks into invocations ends ([`MAX_CALLBACK_DEPTH`]).

pub mod destination;
pub mod log;

pub use crate::manifest::callback::parse_callback_url;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::invoker::Outcome;
use destination::{CheckedResolver, DestinationError, DestinationPolicy, DestinationRefused};
pub use log::DeliveryLog;

/// Deliveries in flight at once; more wait for a slot in their own task.
const MAX_IN_FLIGHT: usize = 64;

/// Request header carrying how many callbacks led to this request (1 for the callback of an
/// invocation that no callback started).
pub const DEPTH_HEADER: &str = "x-wasmfn-callback-depth";
/// Invocations whose request carries a callback depth above this are refused (508): a
/// receiver that turns callbacks into new invocations cannot loop for ever.
pub const MAX_CALLBACK_DEPTH: u32 = 4;

/// Response headers of a function never forwarded in a callback: hop-by-hop and framing
/// headers (the client sets its own), routing (`host`, forwarding headers), credentials, the
/// platform's own headers (a function cannot forge them) and `x-callback-url`, which would
/// let a callback start further async invocations.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "host",
    "forwarded",
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-callback-url",
    "x-function-status",
    "x-invocation-id",
    "x-event",
    "x-event-id",
    DEPTH_HEADER,
];

/// The headers of a function's response a callback forwards: see [`NOT_FORWARDED`]; also no
/// `x-forwarded-*`. Values were checked when the function returned them.
pub fn forwarded_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !NOT_FORWARDED.contains(&name.as_str()) && !name.starts_with("x-forwarded-")
        })
        .cloned()
        .collect()
}

/// The callback depth a request carries (0 when none; unreadable values count as too deep).
pub fn request_depth<'a>(mut headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> u32 {
    headers
        .find(|(name, _)| name.eq_ignore_ascii_case(DEPTH_HEADER))
        .map(|(_, value)| {
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u32>().ok())
                .unwrap_or(u32::MAX)
        })
        .unwrap_or(0)
}

/// Retry policy of deliveries.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Timeout of one attempt, connection included.
    pub timeout: Duration,
    /// Which addresses deliveries may reach.
    pub destinations: DestinationPolicy,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            destinations: DestinationPolicy::default(),
        }
    }
}

/// One POST to make.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// What produced it, e.g. `mqtt:<space>/<trigger>`.
    pub source: String,
    pub invocation_id: uuid::Uuid,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

impl Delivery {
    /// An outcome as a callback: the function's body and headers, `X-Function-Status` and
    /// `X-Invocation-Id`; an error outcome sends its JSON error body.
    pub fn of_outcome(source: String, url: url::Url, outcome: &Outcome, depth: u32) -> Self {
        let (headers, body) = match &outcome.result {
            Ok(response) => (response.headers.clone(), response.body.clone()),
            Err(error) => (
                vec![("content-type".into(), "application/json".into())],
                bytes::Bytes::from(error.body().to_string()),
            ),
        };
        Self::callback(source, outcome.id, url, outcome.status(), &headers, body, depth)
    }

    /// A result as a callback: its [`forwarded_headers`], plus `X-Function-Status`,
    /// `X-Invocation-Id` and the callback's depth (`depth`: that of the request that started
    /// the invocation, plus one).
    pub fn callback(
        source: String,
        invocation_id: uuid::Uuid,
        url: url::Url,
        status: u16,
        headers: &[(String, String)],
        body: bytes::Bytes,
        depth: u32,
    ) -> Self {
        let mut headers = forwarded_headers(headers);
        headers.push(("x-function-status".into(), status.to_string()));
        headers.push(("x-invocation-id".into(), invocation_id.to_string()));
        headers.push((DEPTH_HEADER.into(), depth.max(1).to_string()));
        Self { source, invocation_id, url, headers, body }
    }
}

/// How a delivery ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub source: String,
    pub invocation_id: uuid::Uuid,
    /// The receiver's host and port (the rest of a URL may carry tokens, so it is not kept).
    pub target: String,
    pub delivered: bool,
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub finished_at: String,
}

/// Sends deliveries and remembers how they ended.
#[derive(Debug)]
pub struct Deliverer {
    client: reqwest::Client,
    policy: DeliveryPolicy,
    log: DeliveryLog,
    slots: Semaphore,
}

impl Deliverer {
    /// A deliverer whose log is kept in memory only.
    pub fn new(policy: DeliveryPolicy) -> Arc<Self> {
        Self::with_log(policy, DeliveryLog::memory())
    }

    /// A deliverer keeping its log in `log`.
    pub fn with_log(policy: DeliveryPolicy, log: DeliveryLog) -> Arc<Self> {
        // Redirects are not followed (a 3xx is a failed delivery), so the checked address is
        // the only one; no proxy from the environment, so the connection goes to that address.
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("wasmfn/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver(Arc::new(policy.destinations.clone()))))
            .build()
            .expect("building the delivery HTTP client");
        Arc::new(Self { client, policy, log, slots: Semaphore::new(MAX_IN_FLIGHT) })
    }

    /// Delivers in the background.
    pub fn submit(self: &Arc<Self>, delivery: Delivery) -> tokio::task::JoinHandle<DeliveryRecord> {
        let deliverer = self.clone();
        tokio::spawn(async move { deliverer.deliver(delivery).await })
    }

    /// Delivers, retrying until the receiver takes it, refuses it for good, or attempts run out.
    pub async fn deliver(&self, delivery: Delivery) -> DeliveryRecord {
        let target = match (delivery.url.host_str(), delivery.url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => String::new(),
        };
        let mut backoff = self.policy.initial_backoff;
        let mut attempts = 0;
        let (delivered, status, error) = loop {
            attempts += 1;
            // A slot per attempt, not across the back-off: a dead receiver must not hold
            // slots that other deliveries could use.
            let (status, error, retry) = {
                let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
                self.attempt(&delivery).await
            };
            let last = attempts >= self.policy.attempts.max(1);
            if error.is_none() || !retry || last {
                break (error.is_none(), status, error);
            }
            tracing::warn!(
                source = %delivery.source, invocation_id = %delivery.invocation_id, %target,
                attempt = attempts, error = error.as_deref().unwrap_or(""),
                retry_in_ms = backoff.as_millis() as u64, "delivery failed; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        };
        if delivered {
            tracing::info!(source = %delivery.source, invocation_id = %delivery.invocation_id,
                %target, attempts, "delivered");
        } else {
            tracing::warn!(source = %delivery.source, invocation_id = %delivery.invocation_id,
                %target, attempts, error = error.as_deref().unwrap_or(""), "delivery given up");
        }
        let record = DeliveryRecord {
            source: delivery.source,
            invocation_id: delivery.invocation_id,
            target,
            delivered,
            attempts,
            status,
            error,
            finished_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        self.log.add(record.clone()).await;
        record
    }

    /// Which addresses deliveries may reach.
    pub fn destinations(&self) -> &DestinationPolicy {
        &self.policy.destinations
    }

    /// One POST: (receiver's status, error if not delivered, whether trying again may help).
    async fn attempt(&self, delivery: &Delivery) -> (Option<u16>, Option<String>, bool) {
        // Checked first for a clear reason; the client's resolver checks again what it
        // connects to.
        match self.policy.destinations.check_url(&delivery.url).await {
            Ok(()) => {}
            Err(DestinationError::Refused(why)) => return (None, Some(why.to_string()), false),
            Err(error @ DestinationError::Lookup { .. }) => {
                return (None, Some(error.to_string()), true)
            }
        }
        let mut request = self.client.post(delivery.url.clone()).body(delivery.body.clone());
        for (name, value) in &delivery.headers {
            // Bytes, as the function's answer allows them (UTF-8 beyond ASCII included).
            match reqwest::header::HeaderValue::from_bytes(value.as_bytes()) {
                Ok(value) => request = request.header(name, value),
                Err(_) => tracing::debug!(header = %name, "not forwarding an invalid header"),
            }
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                (Some(response.status().as_u16()), None, false)
            }
            Ok(response) => {
                let status = response.status();
                let retry = status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT;
                (Some(status.as_u16()), Some(format!("receiver answered {status}")), retry)
            }
            // Without the URL: it may carry tokens. A refused address or a request that
            // cannot be built (an invalid header) fails the same way every time.
            Err(error) => {
                let retry = !error.is_builder() && refused_by_policy(&error).is_none();
                (None, Some(describe(error)), retry)
            }
        }
    }

    /// The log of finished deliveries.
    pub fn log(&self) -> &DeliveryLog {
        &self.log
    }
}

/// The policy's refusal behind a failed request, if that is why it failed (the resolver
/// refused every address of the name).
fn refused_by_policy(error: &reqwest::Error) -> Option<&DestinationRefused> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<DestinationRefused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

fn describe(error: reqwest::Error) -> String {
    if let Some(refused) = refused_by_policy(&error) {
        return refused.to_string();
    }
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        error.without_url().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_must_be_absolute_http() {
        assert!(parse_callback_url("http://127.0.0.1:9000/cb?token=x").is_ok());
        assert!(parse_callback_url("https://hooks.example.com/x").is_ok());
        assert!(parse_callback_url("ftp://x/y").unwrap_err().contains("http:// or https://"));
        assert!(parse_callback_url("/relative").unwrap_err().contains("not an absolute URL"));
        assert!(parse_callback_url("not a url").is_err());
    }

    #[tokio::test]
    async fn a_refused_destination_fails_at_once_with_the_reason() {
        let deliverer = Deliverer::new(DeliveryPolicy::default());
        let delivery = Delivery::callback(
            "test".into(),
            uuid::Uuid::new_v4(),
            "http://127.0.0.1:9/hook?token=secret".parse().unwrap(),
            200,
            &[],
            bytes::Bytes::new(),
            1,
        );
        let record = deliverer.deliver(delivery).await;
        assert!(!record.delivered);
        assert_eq!(record.attempts, 1, "a refusal is not retried");
        let error = record.error.unwrap();
        assert!(error.contains("loopback") && !error.contains("secret"), "{error}");
    }

    #[test]
    fn only_the_functions_own_safe_headers_are_forwarded() {
        let given: Vec<(String, String)> = [
            ("X-Kept", "1"),
            ("X-Callback-Url", "http://x/"),
            ("Authorization", "Bearer t"),
            ("Keep-Alive", "5"),
            ("X-Forwarded-Host", "h"),
            ("x-wasmfn-callback-depth", "0"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(forwarded_headers(&given), vec![("X-Kept".to_string(), "1".to_string())]);
        let depth = |value: &'static [u8]| request_depth([(DEPTH_HEADER, value)].into_iter());
        assert_eq!((depth(b"3"), depth(b" 2 "), depth(b"x")), (3, 2, u32::MAX));
        assert_eq!(request_depth(std::iter::empty()), 0);
    }
}
