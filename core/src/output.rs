//! Bounded capture of what a guest prints: stdout and stderr become part of the invocation's
//! record, never the server's own output, and a chatty function cannot grow host memory.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Keeps the first `capacity` bytes written and counts the rest; writes never fail.
#[derive(Clone, Debug)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    capacity: usize,
    dropped: usize,
}

impl CapturedOutput {
    pub fn new(capacity: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(Captured { capacity, ..Captured::default() })) }
    }

    fn push(&self, bytes: &[u8]) {
        let mut captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = captured.capacity.saturating_sub(captured.kept.len());
        let take = room.min(bytes.len());
        captured.kept.extend_from_slice(&bytes[..take]);
        captured.dropped += bytes.len() - take;
    }

    /// What was kept, as text, with a marker when something was cut off.
    pub fn text(&self) -> String {
        let captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::from_utf8_lossy(&captured.kept).into_owned();
        if captured.dropped > 0 {
            text.push_str(&format!("\n[wasmfn: {} more bytes not kept]", captured.dropped));
        }
        text
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let mut out = CapturedOutput::new(5);
        out.write(Bytes::from_static(b"hello world")).unwrap();
        assert_eq!(out.text(), "hello\n[wasmfn: 6 more bytes not kept]");
    }
}
