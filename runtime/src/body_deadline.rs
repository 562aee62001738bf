//! A whole-request deadline on reading bodies: a client that sends its body too slowly (or
//! stops halfway) gets an error after `--body-read-timeout-ms` instead of holding the
//! connection and a request slot for ever. The header timeout covers the request head; this
//! covers what follows.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// The error a body read gets once its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// A body that fails once `deadline` passes.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Gives the request's body a deadline `limit` from now.
pub fn with_deadline(request: Request, limit: Duration) -> Request {
    let (parts, body) = request.into_parts();
    if http_body::Body::is_end_stream(&body) {
        return Request::from_parts(parts, body);
    }
    let deadline = Box::pin(tokio::time::sleep(limit));
    Request::from_parts(parts, Body::new(DeadlineBody { inner: body, deadline, limit }))
}

/// Whether a body-read error is (caused by) the deadline.
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<BodyTimeout>() {
            return true;
        }
        current = error.source();
    }
    false
}
