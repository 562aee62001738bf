//! What one client connection may hold: the cap on open connections (beyond it a connection is
//! answered `503` and closed at once, so the accept loop never stops accepting), the idle
//! timeout that closes connections with no request in flight (HTTP/1 keep-alive and HTTP/2
//! alike — an idle HTTP/2 connection would otherwise be held for ever), and the process's
//! file descriptor limit, raised at start because every connection is one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Descriptors kept for everything but client connections (state database, bundles, compiled
/// code, outbound deliveries, MQTT): the automatic connection cap leaves this many free.
const RESERVED_DESCRIPTORS: u64 = 256;
/// The automatic connection cap never exceeds this.
const MAX_AUTO_CONNECTIONS: u64 = 10_000;

/// Raises the soft `RLIMIT_NOFILE` to the hard one; returns the (soft, hard) limits in force
/// afterwards (`None`: unlimited).
pub fn raise_open_files_limit() -> (Option<u64>, Option<u64>) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, soft = ?limit.current, hard = ?limit.maximum,
                "could not raise the open files limit");
        }
    }
    let limit = getrlimit(Resource::Nofile);
    (limit.current, limit.maximum)
}

/// The connection cap when none is given: most of the descriptor limit, leaving
/// [`RESERVED_DESCRIPTORS`] for the rest of the server.
pub fn automatic_cap(open_files: Option<u64>) -> usize {
    let limit = open_files.unwrap_or(MAX_AUTO_CONNECTIONS + RESERVED_DESCRIPTORS);
    limit.saturating_sub(RESERVED_DESCRIPTORS).clamp(16, MAX_AUTO_CONNECTIONS) as usize
}

/// The answer to a connection over the cap: written once, without waiting, then the
/// connection is closed.
pub const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 94\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"the server has too many open connections\"}}";

/// Logs refusals and accept failures at most once a second, with how many there were, so a
/// flood cannot flood the log too.
#[derive(Debug)]
pub struct ThrottledWarning {
    what: &'static str,
    state: Mutex<(Option<Instant>, u64)>,
}

impl ThrottledWarning {
    pub const fn new(what: &'static str) -> Self {
        Self { what, state: Mutex::new((None, 0)) }
    }

    /// Counts one occurrence; logs (with `detail`) when the last line is a second old.
    pub fn occurred(&self, detail: &dyn std::fmt::Display) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += 1;
        if state.0.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(count = state.1, %detail, "{}", self.what);
            *state = (Some(Instant::now()), 0);
        }
    }
}

/// When a connection last did something, and how many of its requests are in flight.
#[derive(Debug)]
pub struct Activity {
    /// tokio's clock, which tests can pause.
    started: tokio::time::Instant,
    /// Milliseconds since `started` of the last request start or end.
    last: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
            in_flight: 0.into(),
        })
    }

    fn touch(&self) {
        self.last.store(self.started.elapsed().as_millis() as u64, Ordering::SeqCst);
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::SeqCst));
            let quiet = self.started.elapsed().saturating_sub(last);
            if self.in_flight.load(Ordering::SeqCst) == 0 && quiet >= idle {
                return;
            }
            // Busy: look again after a full period (a request ending touches `last`).
            tokio::time::sleep(idle.saturating_sub(quiet).max(Duration::from_millis(10))).await;
        }
    }
}

/// A service that records its connection's [`Activity`] around every request, and gives
/// each request its client's address (`axum::extract::ConnectInfo`).
#[derive(Clone, Debug)]
pub struct Tracked<S> {
    pub inner: S,
    pub activity: Arc<Activity>,
    pub peer: std::net::SocketAddr,
}

/// Ends a request's activity when dropped (also when the client goes away mid-request).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

impl<S, B> tower::Service<axum::http::Request<B>> for Tracked<S>
where
    S: tower::Service<axum::http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(axum::extract::ConnectInfo(self.peer));
        self.activity.in_flight.fetch_add(1, Ordering::SeqCst);
        self.activity.touch();
        let guard = InFlight(self.activity.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            drop(guard);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{text}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
    }

    #[test]
    fn the_automatic_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(automatic_cap(Some(1024)), 768);
        assert_eq!(automatic_cap(Some(100)), 16);
        assert_eq!(automatic_cap(Some(1 << 20)), 10_000);
        assert_eq!(automatic_cap(None), 10_000);
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_with_no_request_in_flight() {
        let activity = Activity::new();
        let guard = {
            activity.in_flight.fetch_add(1, Ordering::SeqCst);
            InFlight(activity.clone())
        };
        let idle = Duration::from_millis(50);
        // However long it waits, a connection with a request in flight never becomes idle.
        let busy = tokio::time::timeout(Duration::from_millis(300), activity.idle_for(idle));
        assert!(busy.await.is_err(), "a request in flight keeps it busy");
        drop(guard);
        let quiet = tokio::time::timeout(Duration::from_secs(5), activity.idle_for(idle));
        assert!(quiet.await.is_ok(), "idle once the request ended");
    }
}
