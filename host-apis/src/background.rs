//! Host work done for functions (document store scans and writes, bundle compiles) runs on
//! blocking threads at a lower scheduling priority than the threads that accept connections and
//! answer requests, so that however much of it runs, the operating system still gives the
//! serving threads the CPU as soon as a request arrives (`/healthz` keeps answering in
//! milliseconds while abusive calls run; see docs/security.md).

use std::cell::Cell;

/// The nice value of background threads: well below the serving threads (nice 0), so they get
/// about a tenth of a core's time when both want it, yet never starve.
pub const BACKGROUND_NICE: i32 = 10;

thread_local! {
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`], once per thread (the threads of
/// tokio's blocking pool are reused). On Linux a thread's nice value is its own; elsewhere, or
/// when the call fails, the thread keeps its priority.
pub fn enter() {
    LOWERED.with(|lowered| {
        if !lowered.replace(true) {
            #[cfg(target_os = "linux")]
            if let Err(error) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
                tracing::debug!(%error, "could not lower a background thread's priority");
            }
        }
    });
}

/// Runs `work` on tokio's blocking pool, at background priority.
pub async fn spawn<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        enter();
        work()
    })
    .await
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn background_threads_run_at_the_lower_priority_and_others_keep_theirs() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let inside = std::thread::spawn(|| {
            enter();
            enter();
            rustix::process::getpriority_process(None).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inside, BACKGROUND_NICE);
        // Only the thread that entered is lowered, not the process.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }
}
