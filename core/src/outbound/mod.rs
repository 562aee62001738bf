//! The host side of `wasi:http/outgoing-handler` for one invocation: every request a function
//! sends goes through [`OutboundHooks::send_request`], which counts it against the
//! invocation's connection limit, bounds it by the invocation's deadline and sends it with the
//! node's [`OutboundClient`] against the function's `[network] allow`. Redirects are new
//! requests from the guest, so each hop is checked too. What was called is kept for the
//! invocation log.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use wasmfn_host_apis::outbound::{NetworkAllowlist, OutboundClient, OutboundError, RequestBounds};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub mod tcp;

/// Bounds of a function's outbound requests, the same for every invocation of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimits {
    /// HTTP requests and TCP connections (each request its own connection) one invocation
    /// may make.
    pub max_connections: u32,
    /// Bytes one response body may have.
    pub max_response_bytes: u64,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        Self { max_connections: 32, max_response_bytes: 16 << 20 }
    }
}

/// The node's outbound client and limits, shared by every invocation.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub client: OutboundClient,
    pub limits: OutboundLimits,
}

/// One outbound request of an invocation, as the invocation log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundCall {
    pub method: String,
    /// `scheme://host:port` (no path: it may hold tokens).
    pub origin: String,
    /// The response's status; none when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Response body bytes the function received.
    pub bytes: u64,
    /// Until the response head arrived (or the request failed).
    pub ms: u64,
}

struct CallRecord {
    call: Mutex<OutboundCall>,
    bytes: Mutex<Option<Arc<AtomicU64>>>,
}

/// The `wasi:http` hooks of one invocation's store.
pub struct OutboundHooks {
    outbound: Option<Outbound>,
    allow: Arc<NetworkAllowlist>,
    deadline: Option<Instant>,
    sent: u32,
    calls: Vec<Arc<CallRecord>>,
}

impl Default for OutboundHooks {
    /// Refuses every request (no scope: nothing is allowed).
    fn default() -> Self {
        Self { outbound: None, allow: Arc::default(), deadline: None, sent: 0, calls: Vec::new() }
    }
}

impl OutboundHooks {
    /// Binds an invocation's client, allowlist and deadline.
    pub fn bind(
        &mut self,
        outbound: Option<Outbound>,
        allow: Arc<NetworkAllowlist>,
        deadline: Instant,
    ) {
        self.outbound = outbound;
        self.allow = allow;
        self.deadline = Some(deadline);
    }

    /// Starts a plain TCP (or TLS) connection of the invocation: counted against the same
    /// limit as its HTTP requests and recorded (`tcp://` or `tls://` origin). `None` for the
    /// client when the invocation may not connect anywhere.
    fn begin_connection(
        &mut self,
        host: &str,
        port: u16,
        tls: bool,
        connect_timeout: Option<std::time::Duration>,
    ) -> Result<(Outbound, Arc<NetworkAllowlist>, RequestBounds, Arc<CallRecord>), OutboundError>
    {
        let scheme = if tls { "tls" } else { "tcp" };
        let (Some(outbound), Some(deadline)) = (self.outbound.clone(), self.deadline) else {
            let refusal = NetworkAllowlist::default()
                .check_host(wasmfn_host_apis::outbound::Scheme::Tcp, host, port)
                .unwrap_err();
            return Err(OutboundError::NotAllowed(refusal));
        };
        if self.sent >= outbound.limits.max_connections {
            return Err(OutboundError::Connect(
                format!("{host}:{port}"),
                format!(
                    "this invocation has opened {} outbound connections, the node's limit",
                    outbound.limits.max_connections
                ),
            ));
        }
        self.sent += 1;
        let record = Arc::new(CallRecord {
            call: Mutex::new(OutboundCall {
                method: "CONNECT".into(),
                origin: format!("{scheme}://{host}:{port}"),
                status: None,
                error: None,
                bytes: 0,
                ms: 0,
            }),
            bytes: Mutex::new(None),
        });
        self.calls.push(record.clone());
        let bounds = RequestBounds {
            deadline: tokio::time::Instant::from_std(deadline),
            connect_timeout,
            first_byte_timeout: None,
            between_bytes_timeout: None,
            max_response_bytes: outbound.limits.max_response_bytes,
        };
        Ok((outbound, self.allow.clone(), bounds, record))
    }

    /// What was called, in order, with the bytes read so far.
    pub fn take_calls(&mut self) -> Vec<OutboundCall> {
        std::mem::take(&mut self.calls)
            .into_iter()
            .map(|record| {
                let mut call = record.call.lock().expect("call record").clone();
                if let Some(bytes) = record.bytes.lock().expect("call record").as_ref() {
                    call.bytes = bytes.load(Ordering::Relaxed);
                }
                call
            })
            .collect()
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        let uri = request.uri();
        let origin = format!(
            "{}://{}:{}",
            uri.scheme_str().unwrap_or("http"),
            uri.host().unwrap_or(""),
            uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 })
        );
        let record = Arc::new(CallRecord {
            call: Mutex::new(OutboundCall {
                method: request.method().to_string(),
                origin,
                status: None,
                error: None,
                bytes: 0,
                ms: 0,
            }),
            bytes: Mutex::new(None),
        });
        let started = Instant::now();
        let fail = move |record: &Arc<CallRecord>, error: OutboundError| {
            let mut call = record.call.lock().expect("call record");
            call.error = Some(error.to_string());
            call.ms = started.elapsed().as_millis() as u64;
            to_wasi(error)
        };
        let (Some(outbound), Some(deadline)) = (self.outbound.clone(), self.deadline) else {
            let refused = OutboundError::NotAllowed(
                NetworkAllowlist::default()
                    .check_host(scheme_of(&request), request.uri().host().unwrap_or(""), 0)
                    .unwrap_err(),
            );
            return Box::new(std::future::ready(Err(fail(&record, refused))));
        };
        // Refused requests are not kept: a loop of them must not grow the log without bound.
        if self.sent >= outbound.limits.max_connections {
            return Box::new(std::future::ready(Err(HttpError::ConnectionLimitReached)));
        }
        self.sent += 1;
        self.calls.push(record.clone());
        let allow = self.allow.clone();
        let bounds = RequestBounds {
            deadline: tokio::time::Instant::from_std(deadline),
            connect_timeout: options.and_then(|o| o.connect_timeout),
            first_byte_timeout: options.and_then(|o| o.first_byte_timeout),
            between_bytes_timeout: options.and_then(|o| o.between_bytes_timeout),
            max_response_bytes: outbound.limits.max_response_bytes,
        };
        Box::new(async move {
            match outbound.client.send(&allow, request, bounds).await {
                Ok((response, connection)) => {
                    {
                        let mut call = record.call.lock().expect("call record");
                        call.status = Some(response.status().as_u16());
                        call.ms = started.elapsed().as_millis() as u64;
                    }
                    *record.bytes.lock().expect("call record") = Some(response.body().counter());
                    let response = response.map(|body| body.map_err(to_wasi).boxed_unsync());
                    let connection: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                        Box::new(async move { connection.await.map_err(to_wasi) });
                    Ok((response, connection))
                }
                Err(error) => Err(fail(&record, error)),
            }
        })
    }
}

fn scheme_of(request: &http::Request<WasiBody>) -> wasmfn_host_apis::outbound::Scheme {
    if request.uri().scheme_str() == Some("https") {
        wasmfn_host_apis::outbound::Scheme::Https
    } else {
        wasmfn_host_apis::outbound::Scheme::Http
    }
}

/// The `wasi:http` error code for each failure; the guest turns the code into the exception
/// Python code expects (see `guest-python/wasmfn/outbound.py`).
fn to_wasi(error: OutboundError) -> HttpError {
    use wasmfn_host_apis::outbound::Refusal;
    match error {
        OutboundError::NotAllowed(Refusal::NotListed { .. }) => HttpError::HttpRequestDenied,
        OutboundError::NotAllowed(Refusal::PrivateAddress { .. }) => {
            HttpError::DestinationIpProhibited
        }
        OutboundError::NoHost => HttpError::HttpRequestUriInvalid,
        OutboundError::Dns { why, .. } => HttpError::DnsError { rcode: Some(why), info_code: None },
        OutboundError::Refused(_) => HttpError::ConnectionRefused,
        OutboundError::Connect(_, why) => HttpError::InternalError(Some(why)),
        OutboundError::ConnectTimeout(_) => HttpError::ConnectionTimeout,
        OutboundError::Certificate(..) => HttpError::TlsCertificateError,
        OutboundError::Tls(..) => HttpError::TlsProtocolError,
        OutboundError::ResponseTimeout => HttpError::ConnectionReadTimeout,
        OutboundError::ReadTimeout => HttpError::ConnectionReadTimeout,
        OutboundError::Deadline => HttpError::HttpResponseTimeout,
        OutboundError::TooLarge(limit) => HttpError::HttpResponseBodySize(Some(limit)),
        OutboundError::Protocol(_) => HttpError::HttpProtocolError,
    }
}
