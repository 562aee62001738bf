//! The threads that run functions: a runtime of their own, at a lower scheduling priority than
//! the threads that accept connections and answer requests.
//!
//! Guests yield their thread every few milliseconds (`pool::YIELD_SLICE_TICKS`), but a thread
//! that yields to another CPU-bound guest is still busy: with every serving thread running
//! guests, a `/healthz` probe or a new connection waited for the operating system to give one
//! of them the CPU (p99 ~150 ms under the reliability suite's abuse on 2 cores). On threads of
//! their own at nice [`BACKGROUND_NICE`], guests still get every idle cycle, but the kernel runs
//! a serving thread as soon as it has work. A call moves here only when it first waits (after
//! its first slice, or at a host call that waits for I/O): a hand-off costs two thread
//! wake-ups, a third of hello world's throughput when every call paid it (benches/RESULTS.md).

use std::future::Future;
use std::sync::OnceLock;
use std::task::Poll;

use tokio::runtime::{Builder, Handle, Runtime};
use wasmfn_host_apis::background::{self, BACKGROUND_NICE};

/// Task polls between two checks for I/O on a busy worker, on the serving runtime (main.rs:
/// at tokio's default of 61, a new connection waited ~300 ms behind CPU-bound tasks) and on
/// the guest runtime, where host calls of guests (IXON API, object storage) wait for I/O.
pub const EVENT_INTERVAL: u32 = 2;

/// Where functions run.
#[derive(Clone, Debug)]
pub enum GuestThreads {
    /// On the runtime of whoever invokes (tests, `wasmfn invoke`, `--guest-threads 0`).
    Caller,
    /// On the process's guest runtime.
    Own(Handle),
}

/// The process's guest runtime, made on first use with `threads` worker threads; later calls
/// get the same one whatever they ask (one per process: it is never shut down, so it cannot be
/// dropped from inside an async context or from one of its own threads).
fn runtime(threads: usize) -> Option<&'static Runtime> {
    static GUESTS: OnceLock<Option<Runtime>> = OnceLock::new();
    GUESTS
        .get_or_init(|| {
            let built = Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("wasmfn-guest")
                .enable_all()
                .event_interval(EVENT_INTERVAL)
                .on_thread_start(background::enter)
                .build();
            match built {
                Ok(runtime) => {
                    tracing::info!(
                        threads,
                        nice = BACKGROUND_NICE,
                        "functions run on threads of their own, below the serving threads"
                    );
                    Some(runtime)
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot start the guest threads; functions run on the serving threads");
                    None
                }
            }
        })
        .as_ref()
}

impl GuestThreads {
    /// `threads` guest threads (0: run on the caller's runtime).
    pub fn new(threads: usize) -> Self {
        match threads {
            0 => Self::Caller,
            n => runtime(n).map_or(Self::Caller, |runtime| Self::Own(runtime.handle().clone())),
        }
    }

    /// Runs `work` and waits for its result: in place until it first has to wait (a guest
    /// yields after its first slice of CPU time, ~5 ms, or a host call waits for I/O), then on
    /// the guest threads. Short calls, most of them, so cost no hand-off at all (moving every
    /// call cost hello world a third of its throughput: two thread wake-ups per call), and a
    /// serving thread is held for at most one slice. Dropping the returned future stops the
    /// work, as if it ran in place (a caller that goes away cancels its call). `None` when the
    /// work panicked on the guest threads.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let handle = match self {
            Self::Caller => return Some(work.await),
            Self::Own(handle) => handle,
        };
        let mut work = Box::pin(work);
        let first = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await;
        if let Poll::Ready(value) = first {
            return Some(value);
        }
        struct AbortOnDrop(tokio::task::AbortHandle);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let task = handle.spawn(work);
        let _abort = AbortOnDrop(task.abort_handle());
        match task.await {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::error!(%error, "a function's task ended without an outcome");
                None
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_waits_moves_to_lower_priority_threads_and_stops_when_its_caller_goes_away() {
        let guests = GuestThreads::new(1);
        let before = rustix::process::getpriority_process(None).unwrap();
        let here = std::thread::current().id();
        // Work that finishes at once runs in place: no hand-off.
        let ran_on = guests.run(async { std::thread::current().id() }).await.unwrap();
        assert_eq!(ran_on, here);
        // Work that has to wait (as a guest yielding its slice does) goes on elsewhere.
        let (name, nice) = guests
            .run(async {
                tokio::task::yield_now().await;
                let name = std::thread::current().name().map(str::to_string);
                (name, rustix::process::getpriority_process(None).unwrap())
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("wasmfn-guest"));
        assert_eq!(nice, BACKGROUND_NICE);
        // The caller's thread keeps its priority.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);

        // A caller that goes away stops its work: the task is dropped, so its sender is.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let work = guests.run(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), work).await;
        assert!(rx.await.is_err(), "the abandoned work still runs");

        // A panic on the guest threads is no outcome, and the threads go on.
        let panics = guests.run(async {
            tokio::task::yield_now().await;
            panic!("boom")
        });
        assert_eq!(panics.await, None::<()>);
        assert_eq!(guests.run(async { 7 }).await, Some(7));
        assert_eq!(GuestThreads::Caller.run(async { 8 }).await, Some(8));
    }
}
