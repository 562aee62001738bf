//! Running a build tool (componentize-py, pip) with a deadline: in a process group of its own,
//! so when the deadline passes the tool and every process it started are killed together, and
//! with the tail of its stderr kept for error messages.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The most of a tool's stderr kept (its tail: where a traceback is).
const MAX_KEPT_STDERR: usize = 1 << 20;
/// How long the stderr of a finished tool may take to close (a process that left its group
/// could hold it open for ever).
const STDERR_GRACE: Duration = Duration::from_secs(5);

/// Runs `command` (no stdin, stdout discarded): its exit status and the tail of its stderr, or
/// `None` when `deadline` passed first and the group was killed.
pub(crate) fn run_bounded(
    mut command: Command,
    deadline: Duration,
) -> std::io::Result<Option<(ExitStatus, Vec<u8>)>> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&chunk[..n]);
            if kept.len() > MAX_KEPT_STDERR {
                kept.drain(..kept.len() - MAX_KEPT_STDERR);
            }
        }
        let _ = sender.send(kept);
    });
    let kill_group = |pid: u32| {
        if let Some(group) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    };
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            // What the tool left running in its group goes with it.
            kill_group(child.id());
            let stderr = receiver.recv_timeout(STDERR_GRACE).unwrap_or_default();
            return Ok(Some((status, stderr)));
        }
        if started.elapsed() >= deadline {
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
