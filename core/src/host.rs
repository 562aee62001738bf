//! Per-invocation host state: what one fresh instance's `Store` holds, and the host side of the
//! `config` and `log` interfaces. Built anew for every invocation and dropped with the instance.

use wasmfn_host_apis::config::FunctionConfig;
use wasmfn_host_apis::log::{FunctionLog, Level, LogLine};
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::wasmfn::platform::{config, log};
use crate::capabilities::HostScope;
use crate::engine::{ActiveStore, Activity};
use crate::outbound::OutboundHooks;
use crate::output::CapturedOutput;
use crate::response_body::ResponseBody;
use crate::running::RunSlot;

/// Raised (as a trap) when an instance tries to grow past its memory limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_mb} MiB exceeded")]
pub struct MemoryLimitExceeded {
    pub limit_mb: u64,
}

/// Caps the linear memory of an instance (all its memories together) and its tables.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: usize,
    /// Bytes of linear memory across the instance's memories: wasmtime reports each memory's
    /// creation as growth from 0, so the running sum is the instance's total.
    total_bytes: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total_bytes.saturating_add(desired.saturating_sub(current));
        if total > self.limit_bytes {
            self.exceeded = true;
            // Trapping (rather than failing the grow) ends the invocation deterministically: a
            // CPython that sees a failed allocation may retry, abort or corrupt its state.
            return Err(MemoryLimitExceeded { limit_mb: (self.limit_bytes >> 20) as u64 }.into());
        }
        self.total_bytes = total;
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
    pub(crate) table: ResourceTable,
    http: WasiHttpCtx,
    /// The function's outbound requests (`wasi:http`), checked and bounded per invocation.
    pub(crate) outbound: OutboundHooks,
    pub limiter: MemoryLimiter,
    config: FunctionConfig,
    log: FunctionLog,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    /// The storage and IXON API this invocation may use; none for commands without them.
    pub(crate) scope: Option<HostScope>,
    /// The node's run slot this invocation holds while it runs (none before it is called).
    pub(crate) running: Option<RunSlot>,
    /// When the invocation times out: host calls (the document store's) end by then too.
    pub(crate) deadline: Option<std::time::Instant>,
    /// The response body the function has written so far (`response-body.write`), bounded by
    /// its `max_response_bytes` (none for commands that call no handler).
    pub(crate) response: ResponseBody,
    /// Keeps the epoch tickers going while this store exists (they sleep when none does).
    _active: ActiveStore,
}

impl InvocationState {
    pub fn new(
        config: FunctionConfig,
        memory_limit_bytes: usize,
        output_capacity: usize,
        scope: Option<HostScope>,
    ) -> Self {
        let stdout = CapturedOutput::new(output_capacity);
        let stderr = CapturedOutput::new(output_capacity);
        // No filesystem, sockets, environment or arguments: a function reaches the outside
        // world only through the interfaces of the `function` world (outbound HTTP through
        // `wasi:http`, checked by `outbound`).
        let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).stderr(stderr.clone()).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: OutboundHooks::default(),
            limiter: MemoryLimiter {
                limit_bytes: memory_limit_bytes,
                total_bytes: 0,
                exceeded: false,
            },
            config,
            log: FunctionLog::new(output_capacity),
            stdout,
            stderr,
            scope,
            running: None,
            deadline: None,
            response: ResponseBody::default(),
            _active: Activity::process().enter(),
        }
    }

    /// Bounds the response body of the call this state is made for.
    pub(crate) fn limit_response(&mut self, max_response_bytes: usize) {
        self.response = ResponseBody::new(max_response_bytes);
    }

    /// Binds what is particular to one call to a state made ahead of it (a pooled instance's):
    /// its configuration, its caller's scope, its deadline and the run slot it holds until the
    /// store drops.
    pub(crate) fn bind(
        &mut self,
        config: FunctionConfig,
        scope: Option<HostScope>,
        deadline: std::time::Instant,
        slot: RunSlot,
    ) {
        self.config = config;
        if let Some(scope) = &scope {
            let outbound = Some(scope.capabilities.outbound.clone());
            self.outbound.bind(outbound, scope.network.clone(), deadline);
        }
        self.scope = scope;
        self.deadline = Some(deadline);
        self.running = Some(slot);
    }

    /// The lines logged, with a final marker line when some did not fit.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log).into_lines()
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

impl config::Host for InvocationState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get_json(&key)
    }

    fn keys(&mut self) -> Vec<String> {
        self.config.keys().map(str::to_string).collect()
    }
}

impl log::Host for InvocationState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warning => Level::Warning,
            log::Level::Error => Level::Error,
        };
        self.log.push(level, message);
    }
}
