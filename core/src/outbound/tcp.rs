//! Plain TCP and TLS connections of a function, for what is not HTTP (mail with `smtplib`), to
//! the host:port pairs its `[network] allow` lists without a scheme. The same limits as its
//! HTTP requests: they count against `--outbound-max-requests`, wait at most until the
//! invocation's deadline, and read at most `--outbound-response-mib` each; each is in the
//! invocation log (`tcp://` or `tls://`). The `wasmfn:platform/tcp` bindings delegate here
//! (`host_calls`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmfn_host_apis::outbound::{OutboundClient, OutboundError, RawStream, RequestBounds};

use super::OutboundHooks;

/// Bytes one read hands to the guest at most.
const MAX_READ: u32 = 64 * 1024;

/// An open connection of a function.
pub struct TcpConnection {
    host: String,
    /// `None` once it broke (or while it turns into TLS).
    stream: Option<RawStream>,
    client: OutboundClient,
    bounds: RequestBounds,
    read: Arc<AtomicU64>,
}

impl TcpConnection {
    /// Opens `host:port` for the invocation whose hooks these are (TLS at once when `tls`).
    pub async fn open(
        hooks: &mut OutboundHooks,
        host: String,
        port: u16,
        tls: bool,
        timeout: Option<Duration>,
    ) -> Result<Self, OutboundError> {
        let started = Instant::now();
        let (outbound, allow, bounds, record) =
            hooks.begin_connection(&host, port, tls, timeout)?;
        let opened = outbound.client.open_tcp(&allow, &host, port, tls, &bounds).await;
        let mut call = record.call.lock().expect("call record");
        call.ms = started.elapsed().as_millis() as u64;
        let stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                call.error = Some(error.to_string());
                return Err(error);
            }
        };
        drop(call);
        let read = Arc::new(AtomicU64::new(0));
        *record.bytes.lock().expect("call record") = Some(read.clone());
        Ok(Self { host, stream: Some(stream), client: outbound.client, bounds, read })
    }

    fn left(&self, timeout: Option<Duration>) -> Duration {
        let left = self.bounds.deadline.saturating_duration_since(tokio::time::Instant::now());
        timeout.map_or(left, |t| t.min(left))
    }

    fn broken(&mut self, what: &str, error: impl std::fmt::Display) -> OutboundError {
        self.stream = None;
        OutboundError::Connect(self.host.clone(), format!("{what}: {error}"))
    }

    fn closed(host: &str) -> OutboundError {
        OutboundError::Connect(host.to_string(), "the connection is closed".into())
    }

    /// Up to `max` bytes (empty: the other side closed), waiting at most `timeout`.
    pub async fn read(
        &mut self,
        max: u32,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, OutboundError> {
        let wait = self.left(timeout);
        let mut buffer = vec![0; max.clamp(1, MAX_READ) as usize];
        let host = &self.host;
        let read = match self.stream.as_mut().ok_or_else(|| Self::closed(host))? {
            RawStream::Plain(stream) => tokio::time::timeout(wait, stream.read(&mut buffer)).await,
            RawStream::Tls(stream) => tokio::time::timeout(wait, stream.read(&mut buffer)).await,
        };
        let count = match read {
            Err(_) => return Err(OutboundError::ReadTimeout),
            Ok(Err(error)) => return Err(self.broken("reading", error)),
            Ok(Ok(count)) => count,
        };
        let total = self.read.fetch_add(count as u64, Ordering::Relaxed) + count as u64;
        if total > self.bounds.max_response_bytes {
            self.stream = None;
            return Err(OutboundError::TooLarge(self.bounds.max_response_bytes));
        }
        buffer.truncate(count);
        Ok(buffer)
    }

    /// Writes all of `data`, by the deadline.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), OutboundError> {
        let wait = self.left(None);
        let host = &self.host;
        let written = match self.stream.as_mut().ok_or_else(|| Self::closed(host))? {
            RawStream::Plain(stream) => tokio::time::timeout(wait, stream.write_all(data)).await,
            RawStream::Tls(stream) => {
                tokio::time::timeout(wait, async {
                    stream.write_all(data).await?;
                    stream.flush().await
                })
                .await
            }
        };
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.broken("writing", error)),
            Err(_) => Err(OutboundError::Deadline),
        }
    }

    /// Turns the connection into TLS, checking the certificate for its host.
    pub async fn start_tls(&mut self) -> Result<(), OutboundError> {
        let plain = match self.stream.take() {
            Some(RawStream::Plain(plain)) => plain,
            Some(tls @ RawStream::Tls(_)) => {
                self.stream = Some(tls);
                return Err(OutboundError::Tls(self.host.clone(), "it already uses TLS".into()));
            }
            None => return Err(Self::closed(&self.host)),
        };
        let tls = self.client.start_tls(&self.host, plain, &self.bounds).await?;
        self.stream = Some(RawStream::Tls(Box::new(tls)));
        Ok(())
    }
}
