//! The wasmtime `Engine`: the only place that tunes wasmtime.
//!
//! Pooling allocator sized for CPython components (falling back to on-demand allocation with a
//! warning where the address space is too small for the reservation), epoch interruption driven
//! by one ticker thread per engine (asleep while no store exists), and the compile settings the
//! `.cwasm` cache depends on.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::function_cache::FunctionCache;

/// Set (to anything but `0`) to have wasmtime write a perf map of compiled guest code.
pub const PERFMAP_ENV: &str = "WASMFN_PERFMAP";

/// How often the epoch advances; timeouts are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Builds the engine; pooling when the machine can reserve it, on-demand otherwise. With
/// `functions`, Cranelift looks up every function there before compiling it (and adds what it
/// compiles): see [`crate::function_cache`].
pub fn build_engine(
    limits: &EngineLimits,
    functions: Option<Arc<FunctionCache>>,
) -> Result<Engine> {
    let config = |pooling| -> Result<Config> {
        let mut config = config(limits, pooling);
        if let Some(functions) = &functions {
            config.enable_incremental_compilation(functions.clone())?;
        }
        Ok(config)
    };
    match Engine::new(&config(true)?) {
        Ok(engine) => Ok(engine),
        Err(error) => {
            tracing::warn!(
                %error,
                max_instances = limits.max_instances,
                "cannot reserve the pooling allocator's address space; using on-demand allocation \
                 (lower --max-instances or --max-memory-mb to use pooling)"
            );
            Engine::new(&config(false)?)
                .map_err(anyhow::Error::from)
                .context("creating the wasmtime engine")
        }
    }
}

/// The baseline tier's engine: Winch, wasmtime's single-pass compiler, which compiles a CPython
/// component several times faster than Cranelift into code that runs slower. It serves a
/// version whose Cranelift code is not compiled yet, while Cranelift compiles it in the
/// background (see [`crate::registry::load_version`]). Instances are allocated on demand:
/// they only serve for the seconds until the swap, so the pooling allocator's reservation
/// would be wasted. Winch's frames are larger than Cranelift's, so the guest gets twice the
/// stack, for Python code to reach the same recursion depth before its RecursionError.
pub fn build_baseline_engine(limits: &EngineLimits) -> Result<Engine> {
    let mut config = config(limits, false);
    config.strategy(wasmtime::Strategy::Winch);
    // Winch hands trampolines (~9,000 in a CPython component; one per signature is compiled and
    // the others copied, vendored patch 9) to Cranelift: unoptimised and with the single-pass
    // register allocator they compile faster, and they only serve until
    // Cranelift's own code replaces them. Without the address map (native offset -> wasm
    // offset, used only by wasm backtraces, which wasmfn does not show) Winch's functions
    // compile and link faster too. Together: Winch's compile of hello world 0.93 s instead of
    // 1.08-1.37 s, the same code speed (benches/RESULTS.md, 2026-12-06 afternoon).
    config.cranelift_opt_level(wasmtime::OptLevel::None);
    config.cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
    config.generate_address_map(false);
    // .eh_frame is only for outside unwinders (debuggers); wasmtime's traces do not need it.
    config.native_unwind_info(false);
    config.max_wasm_stack(4 * 1024 * 1024);
    config.async_stack_size(6 * 1024 * 1024);
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the baseline (Winch) engine")
}

fn config(limits: &EngineLimits, pooling: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    // CPython recurses deeply before it raises RecursionError; give the guest room.
    config.max_wasm_stack(2 * 1024 * 1024);
    config.async_stack_size(4 * 1024 * 1024);
    config.memory_init_cow(true);
    // `perf` can then name guest functions (CPython's, in a Python bundle): wasmtime writes
    // /tmp/perf-<pid>.map as code is loaded. Off by default: the file grows with every load.
    if std::env::var_os(PERFMAP_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(limits)));
    }
    config
}

fn pooling_config(limits: &EngineLimits) -> PoolingAllocationConfig {
    let instances = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    // A componentize-py component holds a few dozen core instances, several memories and
    // tables (CPython, its libc, the WASI adapter); the defaults reject it.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(32))
        .total_memories(instances.saturating_mul(4))
        .total_tables(instances.saturating_mul(16))
        .total_stacks(instances)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(32)
        .table_elements(100_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .max_memory_size(usize::try_from(limits.max_memory_mb << 20).unwrap_or(usize::MAX));
    // With --keep-resident-mb, a used memory is reset by copying its dirty pages back from the
    // image instead of by madvise: no page-table changes, so no TLB shootdowns between cores
    // and no page faults in the next instance's first call. PAGEMAP_SCAN (Linux 6.7+) finds the
    // dirty pages, so only those are copied and stay resident (up to this bound per slot; the
    // rest is madvised). Without the ioctl, wasmtime copies the lowest N MiB whole.
    //
    // --keep-resident-max-mb (vendored patch 8): a memory whose module's instances typically
    // write more than that keeps what they write, learned per module from the scans, up to
    // this bound; an occasional instance that writes much more (a memory bomb) does not make
    // every slot it used keep that much.
    let keep_resident = usize::try_from(limits.keep_resident_mb << 20).unwrap_or(usize::MAX);
    // Nothing kept (--keep-resident-mb 0) means nothing learned either: every reset gives the
    // memory back.
    let keep_resident_max = match limits.keep_resident_mb {
        0 => 0,
        _ => usize::try_from(limits.keep_resident_max_mb << 20).unwrap_or(usize::MAX),
    };
    // Slots that keep their pages (vendored patch 11): no fault-around in the image, so a slot's
    // image mapping holds the pages its instances read, not ~16 times as many. The reset's scan
    // looks up every present page of it (file page or written copy?), in every reset: hello
    // world's slots held ~2,070 present pages with fault-around and ~325 without; HTTP throughput
    // 1.11-1.18x at 16 connections in three A/B runs, 0.94-1.19x at 4 (benches/RESULTS.md).
    // With nothing kept, every reset gives the pages back, so fault-around saves page faults and
    // stays on.
    let fault_around = keep_resident == 0 || !PoolingAllocationConfig::is_pagemap_scan_available();
    pool.linear_memory_keep_resident(keep_resident)
        .linear_memory_keep_resident_max(keep_resident_max)
        .linear_memory_image_fault_around(fault_around)
        .table_keep_resident(keep_resident)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// The stores that exist (made, possibly running guest code), for the epoch tickers: a ticker
/// with no store to interrupt sleeps instead of waking a thousand times a second. Every
/// [`crate::host::InvocationState`] holds an [`ActiveStore`] of [`Activity::process`] for its
/// whole life, so no guest code can run while the tickers sleep.
#[derive(Debug, Default)]
pub struct Activity {
    stores: AtomicUsize,
    lock: Mutex<()>,
    woken: Condvar,
}

impl Activity {
    /// The process's own, which every store counts in.
    pub fn process() -> &'static Arc<Activity> {
        static PROCESS: OnceLock<Arc<Activity>> = OnceLock::new();
        PROCESS.get_or_init(Default::default)
    }

    /// Counts a store in until the guard is dropped; wakes sleeping tickers.
    pub fn enter(self: &Arc<Self>) -> ActiveStore {
        if self.stores.fetch_add(1, Ordering::SeqCst) == 0 {
            // Under the lock, so a ticker about to sleep either sees the store or is woken.
            let _locked = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.woken.notify_all();
        }
        ActiveStore(self.clone())
    }

    /// Blocks while no store exists (and `stop` is not set).
    fn wait_for_store(&self, stop: &AtomicBool, parked: &AtomicBool) {
        let mut locked = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.stores.load(Ordering::SeqCst) == 0 && !stop.load(Ordering::SeqCst) {
            parked.store(true, Ordering::SeqCst);
            locked = self.woken.wait(locked).unwrap_or_else(|e| e.into_inner());
        }
        parked.store(false, Ordering::SeqCst);
    }

    fn wake_all(&self) {
        let _locked = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.woken.notify_all();
    }
}

/// One store counted in an [`Activity`]; counted out when dropped.
#[derive(Debug)]
pub struct ActiveStore(Arc<Activity>);

impl Drop for ActiveStore {
    fn drop(&mut self) {
        self.0.stores.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while a store exists, until dropped. An
/// idle node's tickers sleep: ticking with nothing to interrupt cost ~2 % of a core per engine.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    activity: Arc<Activity>,
    ticks: Arc<AtomicU64>,
    parked: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Self {
        Self::start_for(engine, Activity::process().clone())
    }

    /// A ticker that ticks while `activity` counts a store.
    pub fn start_for(engine: &Engine, activity: Arc<Activity>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let parked = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("wasmfn-epoch".into())
            .spawn({
                let engine = engine.weak();
                let (stop, activity) = (stop.clone(), activity.clone());
                let (ticks, parked) = (ticks.clone(), parked.clone());
                move || loop {
                    activity.wait_for_store(&stop, &parked);
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
            .expect("spawning the epoch ticker thread");
        Self { stop, activity, ticks, parked, thread: Some(thread) }
    }

    /// Epochs advanced so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Whether the ticker sleeps for want of a store.
    pub fn parked(&self) -> bool {
        self.parked.load(Ordering::SeqCst)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.activity.wake_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Engine-wide settings: what the pooling allocator reserves up front.
#[derive(Clone, Debug)]
pub struct EngineLimits {
    /// Component instances alive at once across all functions.
    pub max_instances: u32,
    /// The most memory any function may be configured for, in MiB.
    pub max_memory_mb: u64,
    /// How much of each used memory slot is reset by copying its dirty pages and kept
    /// resident, in MiB (0: give every slot's memory back to the kernel after each instance).
    pub keep_resident_mb: u64,
    /// How much a used memory slot may keep resident when its function's instances typically
    /// write more than `keep_resident_mb`, in MiB (learned per function from the last 16
    /// resets; not larger than `keep_resident_mb`: no learning).
    pub keep_resident_max_mb: u64,
}

/// 2 where the kernel can tell which pages an instance wrote (PAGEMAP_SCAN, Linux 6.7+): a used
/// memory's dirty pages are copied back from the image and stay resident, up to 2 MiB per slot
/// (a CPython hello world writes about 1 MiB), or what the function's calls typically write up
/// to [`default_keep_resident_max_mb`], and anything beyond is given back with madvise;
/// several times the fresh-instance throughput of the madvise-only reset on 2 cores
/// (benches/RESULTS.md). Without uffd write-protection the kernel reports every page still
/// resident as written, so what a slot keeps is the union of what its instances wrote: a fixed
/// 16 MiB let memory-hungry calls (memory bombs) leave up to 16 MiB behind in every slot they
/// used, and the reliability suite's RSS grew by 40 %; 2 MiB keeps it flat. 0 elsewhere:
/// without the scan, wasmtime would copy the lowest N MiB of every used memory whole.
pub fn default_keep_resident_mb() -> u64 {
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        2
    } else {
        0
    }
}

/// 32 where the kernel has PAGEMAP_SCAN, else 0 (nothing to learn from). A CPython function that
/// imports a few packages writes ~3 MiB per call, one that calls a REST service with
/// `requests` 5-8 MiB: with a fixed 2 MiB each call took ~200 page faults or more for the rest
/// (0.6x the throughput, benches/RESULTS.md). Learned per bundle (vendored wasmtime patch 8),
/// what a slot keeps follows what the bundle's calls typically write, so a hello world still
/// keeps ~1 MiB and a rare memory bomb leaves nothing behind; the bound caps the worst case.
pub fn default_keep_resident_max_mb() -> u64 {
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        32
    } else {
        0
    }
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            max_instances: 256,
            max_memory_mb: 1024,
            keep_resident_mb: default_keep_resident_mb(),
            keep_resident_max_mb: default_keep_resident_max_mb(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `done` every millisecond; fails after 10 s.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < until, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_ticker_ticks_only_while_a_store_exists() {
        let engine = Engine::default();
        let activity = Arc::new(Activity::default());
        let ticker = EpochTicker::start_for(&engine, activity.clone());
        wait_until("the ticker sleeps", || ticker.parked());
        std::thread::sleep(EPOCH_TICK * 30);
        assert_eq!(ticker.ticks(), 0, "no store, no tick");

        let store = activity.enter();
        wait_until("three ticks", || ticker.ticks() >= 3);
        let second = activity.enter();
        drop(store);
        let ticks = ticker.ticks();
        wait_until("a tick with one store left", || ticker.ticks() > ticks);

        drop(second);
        wait_until("the ticker sleeps again", || ticker.parked());
        let ticks = ticker.ticks();
        std::thread::sleep(EPOCH_TICK * 30);
        assert_eq!(ticker.ticks(), ticks, "asleep: no tick");
        assert!(ticker.parked());
        drop(ticker); // wakes the thread to stop it, and joins it
    }
}
