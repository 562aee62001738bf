//! Outbound deliveries: a function's outcome POSTed to a callback URL, retried with exponential
//! back-off and a per-attempt timeout, each attempt logged and the last results kept for the
//! admin API. Deliveries run in tasks of their own, so a slow receiver never blocks the trigger
//! that produced the outcome.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::invoker::Outcome;

/// How many finished deliveries the log keeps.
const LOG_CAPACITY: usize = 1000;
/// Deliveries in flight at once; more wait for a slot in their own task.
const MAX_IN_FLIGHT: usize = 64;

/// Checks a callback URL: absolute `http` or `https` with a host.
pub fn parse_callback_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text)
        .map_err(|e| format!("callback URL '{text}' is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "callback URL '{text}' must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
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
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
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
    pub fn of_outcome(source: String, url: url::Url, outcome: &Outcome) -> Self {
        let (headers, body) = match &outcome.result {
            Ok(response) => (response.headers.clone(), response.body.clone()),
            Err(error) => (
                vec![("content-type".into(), "application/json".into())],
                bytes::Bytes::from(error.body().to_string()),
            ),
        };
        Self::callback(source, outcome.id, url, outcome.status(), headers, body)
    }

    /// A result as a callback: its headers but the hop-by-hop ones, plus `X-Function-Status`
    /// and `X-Invocation-Id`.
    pub fn callback(
        source: String,
        invocation_id: uuid::Uuid,
        url: url::Url,
        status: u16,
        mut headers: Vec<(String, String)>,
        body: bytes::Bytes,
    ) -> Self {
        headers.retain(|(name, _)| {
            !["content-length", "transfer-encoding", "connection", "host"]
                .contains(&name.to_ascii_lowercase().as_str())
        });
        headers.push(("x-function-status".into(), status.to_string()));
        headers.push(("x-invocation-id".into(), invocation_id.to_string()));
        Self { source, invocation_id, url, headers, body }
    }
}

/// How a delivery ended.
#[derive(Clone, Debug, Serialize)]
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
    log: Mutex<VecDeque<DeliveryRecord>>,
    slots: Semaphore,
}

impl Deliverer {
    pub fn new(policy: DeliveryPolicy) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("wasmfn/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("building the delivery HTTP client");
        Arc::new(Self {
            client,
            policy,
            log: Mutex::new(VecDeque::new()),
            slots: Semaphore::new(MAX_IN_FLIGHT),
        })
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
        let mut log = self.log.lock().expect("delivery log lock");
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(record.clone());
        record
    }

    /// One POST: (receiver's status, error if not delivered, whether trying again may help).
    async fn attempt(&self, delivery: &Delivery) -> (Option<u16>, Option<String>, bool) {
        let mut request = self.client.post(delivery.url.clone()).body(delivery.body.clone());
        for (name, value) in &delivery.headers {
            request = request.header(name, value);
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
            // Without the URL: it may carry tokens.
            Err(error) => (None, Some(describe(error)), true),
        }
    }

    /// The most recent deliveries, oldest first.
    pub fn recent(&self) -> Vec<DeliveryRecord> {
        self.log.lock().expect("delivery log lock").iter().cloned().collect()
    }
}

fn describe(error: reqwest::Error) -> String {
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
}
