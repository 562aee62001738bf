//! Functions' connections to outside services: every one checked against the function's
//! `[network] allow` (host and port first, then each address the name resolves to, so that a
//! name cannot lead to a private or loopback address), bounded in time by the invocation's
//! deadline and in size, and made by the host: TCP here, TLS with rustls against Mozilla's
//! root certificates (webpki-roots, the same in every container) plus the operator's CA
//! bundle, HTTP/1.1 with hyper.
//!
//! The host resolves the name once and connects to the addresses it checked, so a DNS answer
//! that changes between the check and the connection (rebinding) changes nothing.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

pub use wasmfn_manifest::network::{NetworkAllowlist, Refusal, Scheme};

/// How long a connection may take to open when the function sets no timeout of its own.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an outbound request failed; each maps to the exception Python code expects.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error(transparent)]
    NotAllowed(Refusal),
    #[error("the URL has no host")]
    NoHost,
    #[error("{host} could not be resolved: {why}")]
    Dns { host: String, why: String },
    #[error("connecting to {0} was refused")]
    Refused(String),
    #[error("connecting to {0} failed: {1}")]
    Connect(String, String),
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("the certificate of {0} was not accepted: {1}")]
    Certificate(String, String),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("the server answered no response in time")]
    ResponseTimeout,
    #[error("the server sent nothing for longer than the read timeout")]
    ReadTimeout,
    #[error("the invocation's deadline passed while the response was read")]
    Deadline,
    #[error("the response is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("HTTP error: {0}")]
    Protocol(String),
}

/// What bounds one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestBounds {
    /// The invocation's deadline: nothing outlives it.
    pub deadline: Instant,
    pub connect_timeout: Option<Duration>,
    pub first_byte_timeout: Option<Duration>,
    pub between_bytes_timeout: Option<Duration>,
    /// Response body bytes at most.
    pub max_response_bytes: u64,
}

impl RequestBounds {
    fn until_deadline(&self, timeout: Option<Duration>) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        timeout.map_or(left, |t| t.min(left))
    }
}

/// The node's outbound client: its TLS settings, shared by every invocation.
#[derive(Clone)]
pub struct OutboundClient {
    /// For HTTPS (ALPN `http/1.1`).
    tls: Arc<rustls::ClientConfig>,
    /// For TLS over plain TCP (SMTP and the like: no ALPN).
    tls_raw: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClient").finish_non_exhaustive()
    }
}

impl OutboundClient {
    /// Trusts Mozilla's roots and the certificates of `extra_ca_pem` (an operator's CA bundle,
    /// PEM); the error says what is wrong with the bundle.
    pub fn new(extra_ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let raw = crate::tls::client_config(extra_ca_pem)?;
        let mut http = raw.clone();
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { tls: Arc::new(http), tls_raw: Arc::new(raw) })
    }

    /// The addresses `host:port` may be reached at: the host checked against `allow`, then
    /// each address it resolves to (a private one only when listed itself).
    pub async fn resolve(
        &self,
        allow: &NetworkAllowlist,
        scheme: Scheme,
        host: &str,
        port: u16,
        bounds: &RequestBounds,
    ) -> Result<Vec<SocketAddr>, OutboundError> {
        allow.check_host(scheme, host, port).map_err(OutboundError::NotAllowed)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let lookup = tokio::net::lookup_host((bare, port));
                let wait = bounds.until_deadline(bounds.connect_timeout);
                match tokio::time::timeout(wait, lookup).await {
                    Ok(Ok(found)) => found.collect(),
                    Ok(Err(e)) => {
                        return Err(OutboundError::Dns { host: bare.into(), why: e.to_string() })
                    }
                    Err(_) => {
                        return Err(OutboundError::Dns {
                            host: bare.into(),
                            why: "the lookup timed out".into(),
                        })
                    }
                }
            }
        };
        let mut refusal = None;
        let allowed: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(|addr| match check_address(allow, scheme, bare, addr.ip(), port) {
                Ok(()) => true,
                Err(why) => {
                    refusal.get_or_insert(why);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refusal) {
            (true, Some(why)) => Err(OutboundError::NotAllowed(why)),
            (true, None) => Err(OutboundError::Dns {
                host: bare.into(),
                why: "the name has no addresses".into(),
            }),
            (false, _) => Ok(allowed),
        }
    }

    /// A TCP connection to the first of `addresses` that answers, within the connect timeout.
    pub async fn connect(
        &self,
        host: &str,
        addresses: &[SocketAddr],
        bounds: &RequestBounds,
    ) -> Result<TcpStream, OutboundError> {
        let wait =
            bounds.until_deadline(Some(bounds.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)));
        let attempt = async {
            let mut last = None;
            for address in addresses {
                match TcpStream::connect(address).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(stream);
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(match last {
                Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    OutboundError::Refused(host.into())
                }
                Some(e) => OutboundError::Connect(host.into(), e.to_string()),
                None => OutboundError::Connect(host.into(), "no address".into()),
            })
        };
        tokio::time::timeout(wait, attempt)
            .await
            .unwrap_or_else(|_| Err(OutboundError::ConnectTimeout(host.into())))
    }

    /// A plain TCP connection to `host:port` (checked as [`Scheme::Tcp`]), with TLS at once
    /// when `tls`.
    pub async fn open_tcp(
        &self,
        allow: &NetworkAllowlist,
        host: &str,
        port: u16,
        tls: bool,
        bounds: &RequestBounds,
    ) -> Result<RawStream, OutboundError> {
        let addresses = self.resolve(allow, Scheme::Tcp, host, port, bounds).await?;
        let tcp = self.connect(host, &addresses, bounds).await?;
        if tls {
            Ok(RawStream::Tls(Box::new(self.start_tls(host, tcp, bounds).await?)))
        } else {
            Ok(RawStream::Plain(tcp))
        }
    }

    /// TLS over an open plain connection (STARTTLS), verifying the certificate for `host`.
    pub async fn start_tls(
        &self,
        host: &str,
        stream: TcpStream,
        bounds: &RequestBounds,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, OutboundError> {
        Self::handshake(&self.tls_raw, host, stream, bounds).await
    }

    /// TLS over `stream` for HTTPS, verifying the certificate for `host`.
    pub async fn tls(
        &self,
        host: &str,
        stream: TcpStream,
        bounds: &RequestBounds,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, OutboundError> {
        Self::handshake(&self.tls, host, stream, bounds).await
    }

    async fn handshake(
        config: &Arc<rustls::ClientConfig>,
        host: &str,
        stream: TcpStream,
        bounds: &RequestBounds,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, OutboundError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = match bare.parse::<IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(bare.to_string())
                .map_err(|e| OutboundError::Tls(host.into(), e.to_string()))?,
        };
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let wait =
            bounds.until_deadline(Some(bounds.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)));
        match tokio::time::timeout(wait, connector.connect(name, stream)).await {
            Err(_) => Err(OutboundError::ConnectTimeout(host.into())),
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => {
                let certificate = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)));
                Err(if certificate {
                    OutboundError::Certificate(host.into(), e.to_string())
                } else {
                    OutboundError::Tls(host.into(), e.to_string())
                })
            }
        }
    }

    /// Sends `request` (its URI absolute: scheme, host, port) and answers with the response
    /// head and a body bounded by `bounds`, and the connection's task, which the caller drives
    /// while the body is read.
    pub async fn send<B>(
        &self,
        allow: &NetworkAllowlist,
        mut request: http::Request<B>,
        bounds: RequestBounds,
    ) -> Result<(http::Response<ResponseBody>, ConnectionTask), OutboundError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let uri = request.uri().clone();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        let host = uri.host().ok_or(OutboundError::NoHost)?.to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addresses = self.resolve(allow, scheme, &host, port, &bounds).await?;
        let tcp = self.connect(&host, &addresses, &bounds).await?;
        let stream: Box<dyn Stream> =
            if https { Box::new(self.tls(&host, tcp, &bounds).await?) } else { Box::new(tcp) };
        let handshake = hyper::client::conn::http1::handshake(TokioIo::new(stream));
        let (mut sender, connection) = handshake.await.map_err(protocol)?;
        // The request line carries the path only; Host (set by the caller) names the server.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = path.parse().map_err(|_| OutboundError::NoHost)?;

        let mut connection: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>> =
            Box::pin(connection);
        let first_byte = bounds.until_deadline(bounds.first_byte_timeout);
        let mut response = Box::pin(tokio::time::timeout(first_byte, sender.send_request(request)));
        let response = tokio::select! {
            response = &mut response => response,
            ended = &mut connection => match ended {
                // A server that answers and closes (`Connection: close`, HTTP/1.0) ends the
                // connection in the same poll that hands the response over: the response is
                // there to take. Otherwise the server hung up first.
                Ok(()) => {
                    connection = Box::pin(std::future::ready(Ok(())));
                    match response.await {
                        Ok(Err(e)) if e.is_canceled() || e.is_incomplete_message() => {
                            return Err(OutboundError::Protocol(
                                "the server closed the connection".into(),
                            ))
                        }
                        answered => answered,
                    }
                }
                Err(e) => return Err(protocol(e)),
            },
        };
        let response = match response {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(protocol(e)),
            Err(_) if Instant::now() >= bounds.deadline => return Err(OutboundError::Deadline),
            Err(_) => return Err(OutboundError::ResponseTimeout),
        };
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > bounds.max_response_bytes) {
            return Err(OutboundError::TooLarge(bounds.max_response_bytes));
        }
        let (head, incoming) = response.into_parts();
        let body = ResponseBody::new(incoming, &bounds);
        let task = ConnectionTask(Box::pin(async move { connection.await.map_err(protocol) }));
        Ok((http::Response::from_parts(head, body), task))
    }
}

/// [`NetworkAllowlist::check_address`], and an address of one of this server's own interfaces
/// (a UDP bind succeeds only on those) counts as private: the node itself, whatever it listens
/// on.
fn check_address(
    allow: &NetworkAllowlist,
    scheme: Scheme,
    host: &str,
    ip: IpAddr,
    port: u16,
) -> Result<(), Refusal> {
    allow.check_address(scheme, host, ip, port)?;
    if !allow.lists_address(scheme, ip, port)
        && std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
    {
        return Err(Refusal::PrivateAddress {
            host: host.into(),
            ip,
            kind: "an address of this server",
        });
    }
    Ok(())
}

/// A function's plain TCP connection, or TLS over one.
pub enum RawStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

fn protocol(e: hyper::Error) -> OutboundError {
    if e.is_timeout() {
        OutboundError::ReadTimeout
    } else {
        OutboundError::Protocol(e.to_string())
    }
}

/// Drives a connection's I/O until its response is read.
pub struct ConnectionTask(Pin<Box<dyn Future<Output = Result<(), OutboundError>> + Send>>);

impl Future for ConnectionTask {
    type Output = Result<(), OutboundError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// A response body that ends with an error past the size limit, when the server pauses longer
/// than the read timeout, or at the invocation's deadline. Counts the bytes it passed on.
pub struct ResponseBody {
    incoming: hyper::body::Incoming,
    limit: u64,
    read: Arc<AtomicU64>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    deadline: Pin<Box<Sleep>>,
}

impl ResponseBody {
    fn new(incoming: hyper::body::Incoming, bounds: &RequestBounds) -> Self {
        Self {
            incoming,
            limit: bounds.max_response_bytes,
            read: Arc::default(),
            idle: bounds
                .between_bytes_timeout
                .map(|idle| (idle, Box::pin(tokio::time::sleep(idle)))),
            deadline: Box::pin(tokio::time::sleep_until(bounds.deadline)),
        }
    }

    /// The bytes passed on so far (shared: it keeps counting after the body moves on).
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.read.clone()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = OutboundError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OutboundError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let total = this.read.fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    if total > this.limit {
                        return Poll::Ready(Some(Err(OutboundError::TooLarge(this.limit))));
                    }
                }
                if let Some((idle, timer)) = &mut this.idle {
                    timer.as_mut().reset(Instant::now() + *idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(protocol(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(OutboundError::Deadline)));
                }
                if let Some((_, timer)) = &mut this.idle {
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err(OutboundError::ReadTimeout)));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> RequestBounds {
        RequestBounds {
            deadline: Instant::now() + Duration::from_secs(5),
            connect_timeout: None,
            first_byte_timeout: None,
            between_bytes_timeout: None,
            max_response_bytes: 1 << 20,
        }
    }

    fn client() -> OutboundClient {
        OutboundClient::new(None).unwrap()
    }

    #[tokio::test]
    async fn a_listed_name_that_resolves_to_loopback_is_refused() {
        let allow = NetworkAllowlist::parse(&["http://localhost:*"]).unwrap();
        let refused =
            client().resolve(&allow, Scheme::Http, "localhost", 8080, &bounds()).await.unwrap_err();
        let OutboundError::NotAllowed(Refusal::PrivateAddress { host, kind, .. }) = &refused else {
            panic!("not a private address refusal: {refused:?}");
        };
        assert_eq!((host.as_str(), *kind), ("localhost", "a loopback address"));
        assert!(refused.to_string().contains("[network] allow"), "{refused}");
    }

    #[tokio::test]
    async fn the_address_entry_opens_loopback_to_the_name_too() {
        let allow = NetworkAllowlist::parse(&["http://localhost:*", "127.0.0.1:8080"]).unwrap();
        let found =
            client().resolve(&allow, Scheme::Http, "localhost", 8080, &bounds()).await.unwrap();
        assert!(found.iter().all(|a| a.ip() == IpAddr::from([127, 0, 0, 1])), "{found:?}");
        assert!(!found.is_empty());
        // Another port of the same address stays closed.
        let other = client().resolve(&allow, Scheme::Http, "localhost", 8081, &bounds()).await;
        assert!(matches!(other, Err(OutboundError::NotAllowed(_))), "{other:?}");
    }

    #[tokio::test]
    async fn an_unlisted_host_is_refused_before_any_lookup() {
        let allow = NetworkAllowlist::parse(&["https://api.example.com"]).unwrap();
        let refused = client()
            .resolve(&allow, Scheme::Https, "does-not-resolve.invalid", 443, &bounds())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, OutboundError::NotAllowed(Refusal::NotListed { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_listed_name_that_does_not_resolve_is_a_dns_error_naming_it() {
        let allow = NetworkAllowlist::parse(&["https://no-such-host.invalid"]).unwrap();
        let failed = client()
            .resolve(&allow, Scheme::Https, "no-such-host.invalid", 443, &bounds())
            .await
            .unwrap_err();
        assert!(
            matches!(&failed, OutboundError::Dns { host, .. } if host == "no-such-host.invalid"),
            "{failed:?}"
        );
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_refused_and_a_bad_ca_bundle_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let refused = client().connect("127.0.0.1", &[address], &bounds()).await.unwrap_err();
        assert!(matches!(refused, OutboundError::Refused(_)), "{refused:?}");
        let error = OutboundClient::new(Some(b"not a certificate")).unwrap_err();
        assert!(error.contains("no certificate"), "{error}");
    }
}
