//! `wasmfn:platform/response-body`: the body of a call's response, handed over in pieces while
//! the function produces it.
//!
//! Defined by hand rather than by `bindgen!` (which copies every argument out of the instance
//! before the host sees it): the piece arrives as a [`WasmList`], a view of the instance's
//! memory, so its length is checked against the function's `max_response_bytes` first and a
//! piece that would pass the limit is never copied. The host so holds at most the limit, however
//! large a body the function tries to send.

use wasmtime::component::{Linker, WasmList};
use wasmtime::StoreContextMut;

/// The interface's name as guests import it (the package version of `wit/world.wit`).
pub const INTERFACE: &str = "wasmfn:platform/response-body@0.3.0";

/// The body one call has written so far.
#[derive(Debug, Default)]
pub struct ResponseBody {
    bytes: Vec<u8>,
    limit: usize,
    /// The size the body would have had when a piece was refused.
    refused: Option<u64>,
}

impl ResponseBody {
    pub fn new(limit: usize) -> Self {
        Self { bytes: Vec::new(), limit, refused: None }
    }

    /// Appends `piece` unless the body would pass the limit; the error is the size it would
    /// have had. After one refusal every later piece is refused too.
    pub fn append(&mut self, piece: &[u8]) -> Result<(), u64> {
        self.check(piece.len())?;
        self.bytes.extend_from_slice(piece);
        Ok(())
    }

    /// Refuses, and remembers the refusal of, a piece of `len` bytes that would take the body
    /// over the limit.
    fn check(&mut self, len: usize) -> Result<(), u64> {
        let total = self.bytes.len().saturating_add(len);
        if self.refused.is_some() || total > self.limit {
            let size = u64::try_from(total).unwrap_or(u64::MAX);
            let size = self.refused.map_or(size, |earlier| earlier.max(size));
            self.refused = Some(size);
            return Err(size);
        }
        Ok(())
    }

    /// The size the body would have had when a piece was refused, if one was.
    pub fn refused(&self) -> Option<u64> {
        self.refused
    }

    /// The body written, leaving this one empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

/// Adds `response-body.write` to `linker`, writing to the body `body` finds in a store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    body: fn(&mut T) -> &mut ResponseBody,
) -> wasmtime::Result<()> {
    linker.instance(INTERFACE)?.func_wrap(
        "write",
        move |mut store: StoreContextMut<'_, T>, (piece,): (WasmList<u8>,)| {
            if let Err(size) = body(store.data_mut()).check(piece.len()) {
                return Ok((Err(size),));
            }
            // Taken out of the state while the instance's memory is borrowed, then put back.
            let mut bytes = body(store.data_mut()).take();
            bytes.extend_from_slice(piece.as_le_slice(&store));
            body(store.data_mut()).bytes = bytes;
            Ok((Ok(()),))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_add_up_to_the_limit_and_no_further() {
        let mut body = ResponseBody::new(10);
        assert_eq!(body.append(b"hello"), Ok(()));
        assert_eq!(body.append(b"world"), Ok(()));
        assert_eq!(body.refused(), None);
        assert_eq!(body.append(b"!"), Err(11));
        assert_eq!(body.refused(), Some(11));
        // Once refused, always refused: a body with a hole in it is never sent.
        assert_eq!(body.append(b""), Err(11));
        assert_eq!(body.take(), b"helloworld");
    }

    #[test]
    fn a_piece_over_the_limit_is_refused_whole() {
        let mut body = ResponseBody::new(4);
        assert_eq!(body.append(b"12345678"), Err(8));
        assert!(body.take().is_empty());
    }
}
