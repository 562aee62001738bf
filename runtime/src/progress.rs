//! Progress of the steps that take seconds (componentize-py, pip, the Cranelift compile, a
//! deploy's upload and remote compile). The step is always announced on a line of its own;
//! on a terminal, a second line then counts the seconds while the step runs and is cleared
//! when it ends. Elsewhere (CI logs, pipes, tests) nothing more is written, so captured output
//! stays plain lines.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counts the seconds of a running step on stderr while it lives (on a terminal only).
pub struct Elapsed {
    stop: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Elapsed {
    /// Starts counting after `label` (e.g. `"  componentize-py"`).
    pub fn start(label: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { stop: None };
        }
        let (send, receive) = mpsc::channel::<()>();
        let label = label.to_string();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut shown = false;
            while let Err(RecvTimeoutError::Timeout) = receive.recv_timeout(Duration::from_secs(1))
            {
                let mut stderr = std::io::stderr().lock();
                let _ = write!(stderr, "\r\x1b[2K{label}: {} s", started.elapsed().as_secs());
                let _ = stderr.flush();
                shown = true;
            }
            if shown {
                let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            }
        });
        Self { stop: Some((send, thread)) }
    }
}

impl Drop for Elapsed {
    fn drop(&mut self) {
        if let Some((send, thread)) = self.stop.take() {
            drop(send);
            let _ = thread.join();
        }
    }
}
