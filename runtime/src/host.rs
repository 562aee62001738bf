//! Per-invocation host state: what one fresh instance's `Store` holds, and the host side of the
//! `config` and `log` interfaces. Built anew for every invocation and dropped with the instance.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::wasmfn::platform::{config, log};
use crate::output::CapturedOutput;

/// One line a function logged through Python's `logging` (or the `log` interface).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// Raised (as a trap) when an instance tries to grow past its memory limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_mb} MiB exceeded")]
pub struct MemoryLimitExceeded {
    pub limit_mb: u64,
}

/// Caps linear memory and tables per instance.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.exceeded = true;
            // Trapping (rather than failing the grow) ends the invocation deterministically: a
            // CPython that sees a failed allocation may retry, abort or corrupt its state.
            return Err(MemoryLimitExceeded { limit_mb: (self.limit_bytes >> 20) as u64 }.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one invocation's `Store`.
pub struct InvocationState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    config: Arc<BTreeMap<String, String>>,
    logs: Vec<LogLine>,
    log_bytes: usize,
    log_capacity: usize,
    logs_dropped: usize,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
}

impl InvocationState {
    pub fn new(
        config: Arc<BTreeMap<String, String>>,
        memory_limit_bytes: usize,
        output_capacity: usize,
    ) -> Self {
        let stdout = CapturedOutput::new(output_capacity);
        let stderr = CapturedOutput::new(output_capacity);
        // No filesystem, network, environment or arguments: a function reaches the outside
        // world only through the interfaces of the `function` world.
        let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).stderr(stderr.clone()).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit_bytes: memory_limit_bytes, exceeded: false },
            config,
            logs: Vec::new(),
            log_bytes: 0,
            log_capacity: output_capacity,
            logs_dropped: 0,
            stdout,
            stderr,
        }
    }

    /// The lines logged, with a final marker line when some did not fit.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        let mut logs = std::mem::take(&mut self.logs);
        if self.logs_dropped > 0 {
            logs.push(LogLine {
                level: "warning",
                message: format!("[wasmfn: {} more log lines not kept]", self.logs_dropped),
            });
        }
        logs
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl config::Host for InvocationState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn keys(&mut self) -> Vec<String> {
        self.config.keys().cloned().collect()
    }
}

impl log::Host for InvocationState {
    fn log(&mut self, level: log::Level, message: String) {
        if self.log_bytes + message.len() > self.log_capacity {
            self.logs_dropped += 1;
            return;
        }
        self.log_bytes += message.len();
        let level = match level {
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warning => "warning",
            log::Level::Error => "error",
        };
        self.logs.push(LogLine { level, message });
    }
}
