//! `wasmfn bench`: the cold-start breakdown of one bundle, step by step, in this process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::RunArgs;
use crate::bindings::Function;
use crate::bundle::sha256_hex;
use crate::invoker::{Invocation, RequestData};
use crate::pool;
use crate::python_build::{self, BuildOptions};
use crate::registry::FunctionVersion;
use crate::runtime::Runtime;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A function folder (rebuilt with componentize-py for the build step) or a `.wasm` bundle.
    pub path: PathBuf,
    /// The exposed function to call (`module.function`; default: the function's default entry).
    #[arg(long)]
    pub entry: Option<String>,
    /// Measured runs of each per-instance step.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Builds to time (a folder only; each takes seconds). 0 skips the build step.
    #[arg(long, default_value_t = 1)]
    pub builds: usize,
    /// Cranelift compiles to time (each takes seconds on a CPython bundle). 0 skips the step
    /// and uses the shared compiled cache.
    #[arg(long, default_value_t = 1)]
    pub compiles: usize,
    /// Live instances held at once to measure private memory per instance.
    #[arg(long, default_value_t = 50)]
    pub live: usize,
    /// Seconds each throughput measurement (1 and 2 concurrent callers) lasts; 0 skips it.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Count a call that ends in the function's own exception, or in its arguments refused
    /// (`bench` calls with none), as a call: for a function that needs arguments, the document
    /// store, object storage or the IXON API, which `bench` does not provide (the call then
    /// stops there).
    #[arg(long)]
    pub allow_function_errors: bool,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

/// One step's figures, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub n: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Step {
    fn of(step: &'static str, samples: &mut [Duration]) -> Self {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        Self {
            step,
            n: samples.len(),
            min_ms: ms(samples[0]),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PageFaults {
    pub instantiate: f64,
    pub first_call: f64,
    pub live_call_and_drop: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub bundle: String,
    pub bundle_bytes: usize,
    pub sha256: String,
    pub steps: Vec<Step>,
    /// Private (dirty) memory one live, called instance adds, in KiB.
    pub private_kib_per_called_instance: Option<f64>,
    /// The same for an instance made but never called (what a pooled instance holds).
    pub private_kib_per_pooled_instance: Option<f64>,
    /// Private dirty memory of the whole process before the `--live` instances are made, in
    /// MiB (the two per-instance figures are measured from it).
    pub private_mib_before_live: Option<f64>,
    /// The same while the `--live` instances are all held, each called once: what a node holds
    /// with that many invocations in flight.
    pub private_mib_with_live: Option<f64>,
    /// Minor page faults (the process's) per step, averaged.
    pub page_faults: Option<PageFaults>,
    /// Private dirty memory of the whole process when the run ends, in MiB: what used instance
    /// slots keep resident (see --keep-resident-mb).
    pub private_mib_at_end: Option<f64>,
    /// Fresh-instance invocations per second with 1 and 2 concurrent callers.
    pub invocations_per_second: Vec<(usize, f64)>,
    /// CPU cores the process kept busy during each of those runs (user + system time over
    /// wall time): one caller already uses more than one, since the pool's keeper makes the
    /// next instance and the last one's memory is reset beside the call. `taskset -c 0` pins
    /// the whole run to one core (`benches/run.sh` compares the two).
    pub cores_busy: Vec<(usize, f64)>,
    /// Of the functions Cranelift looked up compiling another bundle of the same code after
    /// the first compile, the share it found in the function cache.
    pub function_cache_hit_rate: Option<f64>,
}

pub async fn bench(args: BenchArgs) -> Result<std::process::ExitCode> {
    let mut report = Report::default();
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };

    // 1. Build: a folder is rebuilt from scratch with componentize-py.
    let wasm = if args.path.is_dir() {
        let mut builds = Vec::new();
        let mut wasm = None;
        for _ in 0..args.builds {
            let dir = args.path.clone();
            let options =
                BuildOptions { out_dir: None, progress: false, ..BuildOptions::default() };
            let started = Instant::now();
            let built =
                tokio::task::spawn_blocking(move || python_build::build(&dir, &options)).await??;
            builds.push(started.elapsed());
            wasm = Some(built.wasm);
        }
        if !builds.is_empty() {
            report.steps.push(Step::of("build (componentize-py)", &mut builds));
        }
        match wasm {
            Some(wasm) => wasm,
            None => {
                let dir = args.path.clone();
                let options =
                    BuildOptions { out_dir: None, progress: true, ..BuildOptions::default() };
                tokio::task::spawn_blocking(move || python_build::build_if_stale(&dir, &options))
                    .await??
                    .wasm
            }
        }
    } else if args.path.exists() {
        args.path.clone()
    } else {
        bail!("{} does not exist", args.path.display());
    };
    // What a node does first with a bundle it has never seen: read it and hash it (the key of
    // its compiled cache and of its version).
    let started = Instant::now();
    let bytes =
        tokio::fs::read(&wasm).await.with_context(|| format!("reading {}", wasm.display()))?;
    report.sha256 = sha256_hex(&bytes);
    report.steps.push(Step::of("read the bundle + sha256", &mut [started.elapsed()]));
    report.bundle = wasm.display().to_string();
    report.bundle_bytes = bytes.len();
    say(format!(
        "bundle: {} ({:.1} MB, sha256 {})",
        report.bundle,
        bytes.len() as f64 / 1e6,
        &report.sha256[..12]
    ));

    // 2. Compile into a scratch cache (so it really compiles), then 3. load from it.
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let mut config = args.run.runtime_config();
    // Cranelift's code is what it measures (the baseline tier serves only until it is ready).
    config.baseline_tier = false;
    if args.compiles > 0 {
        config.cache_dir = scratch.path().join("compiled");
    }
    // The pool is measured explicitly below; the plain steps instantiate on demand.
    let pool_settings = config.pool.clone();
    config.pool.per_function = 0;
    let mut compiles = Vec::new();
    let mut compiled = None;
    for _ in 0..args.compiles {
        // A node that never compiled anything: no .cwasm, an empty function cache (a new
        // runtime, whose engine has not seen the function cache removed with the directory).
        let _ = std::fs::remove_dir_all(scratch.path().join("compiled"));
        let runtime = Runtime::new(config.clone())?;
        let started = Instant::now();
        runtime
            .cache()
            .load(runtime.engine(), &bytes, &report.sha256)
            .context("compiling the bundle")?;
        compiles.push(started.elapsed());
        compiled = Some(runtime);
    }
    let runtime = match compiled {
        Some(runtime) => runtime,
        None => Runtime::new(config.clone())?,
    };
    if compiles.is_empty() {
        // Compiled into the shared cache once if need be, but not timed.
        runtime.cache().load(runtime.engine(), &bytes, &report.sha256)?;
    } else {
        report.steps.push(Step::of("first compile (Cranelift) + write .cwasm", &mut compiles));
        if let Some(functions) = runtime.cache().functions() {
            // A new version of the same app (or another app of the same componentize-py) on
            // this node: another bundle, whose functions the first compile has cached.
            let (mut warm, before) = (Vec::new(), functions.stats());
            for n in 0..args.compiles {
                let other = crate::bundle::with_custom_section(
                    &bytes,
                    "wasmfn:bench",
                    n.to_le_bytes().to_vec(),
                );
                let sha256 = crate::bundle::sha256_hex(&other);
                let started = Instant::now();
                runtime.cache().load(runtime.engine(), &other, &sha256)?;
                warm.push(started.elapsed());
            }
            let after = functions.stats();
            let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
            report.function_cache_hit_rate = Some(hits as f64 / (hits + misses).max(1) as f64);
            report.steps.push(Step::of(
                "compile another bundle of the same code (function cache warm)",
                &mut warm,
            ));
        }
    }
    let mut loads = Vec::new();
    for _ in 0..args.runs.clamp(1, 50) {
        let started = Instant::now();
        runtime.cache().load(runtime.engine(), &bytes, &report.sha256)?;
        loads.push(started.elapsed());
    }
    report.steps.push(Step::of("load from the compiled cache (mmap)", &mut loads));

    // A bundle built without `wasmfn build` carries no name: call it after its file.
    let unnamed = crate::bundle::read_meta(&bytes).ok().flatten().is_none_or(|m| m.name.is_empty());
    let name =
        unnamed.then(|| wasm.file_stem().map(|s| s.to_string_lossy().into_owned())).flatten();
    let version = runtime.load(bytes.clone(), "bench", name.clone()).await?;
    let entry = version.resolve_entry(args.entry.as_deref())?;
    let invocation = Invocation {
        space: "bench".into(),
        function: version.name.clone(),
        entry: Some(entry.clone()),
        request: RequestData { method: "GET".into(), path: "/".into(), ..Default::default() },
        trigger: "bench".into(),
        ..Invocation::default()
    };
    let wit = crate::invoker::to_wit(&version, &entry, &invocation, &version.config);

    // 4.-6. Instantiate, first call, later calls on the same (live) instance.
    let (mut instantiate, mut first, mut live, mut dropped) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut faults = [0u64; 3];
    for _ in 0..args.runs.max(1) {
        let pre = version.pre();
        let mut store = pool::new_store(&pre, &version);
        let (started, faults_before) = (Instant::now(), minor_faults());
        let instance = pre.instantiate_async(&mut store).await?;
        instantiate.push(started.elapsed());
        let (started, faults_instantiated) = (Instant::now(), minor_faults());
        call(&instance, &mut store, &version, &wit, args.allow_function_errors).await?;
        first.push(started.elapsed());
        let (started, faults_called) = (Instant::now(), minor_faults());
        call(&instance, &mut store, &version, &wit, args.allow_function_errors).await?;
        live.push(started.elapsed());
        let started = Instant::now();
        drop(store);
        dropped.push(started.elapsed());
        faults[0] += faults_instantiated - faults_before;
        faults[1] += faults_called - faults_instantiated;
        faults[2] += minor_faults() - faults_called;
    }
    let runs = args.runs.max(1) as f64;
    report.page_faults = Some(PageFaults {
        instantiate: faults[0] as f64 / runs,
        first_call: faults[1] as f64 / runs,
        live_call_and_drop: faults[2] as f64 / runs,
    });
    report.steps.push(Step::of("instantiate a fresh instance", &mut instantiate));
    report.steps.push(Step::of("first call on the fresh instance", &mut first));
    report.steps.push(Step::of("call on a live (already called) instance", &mut live));
    report.steps.push(Step::of("drop the instance (memory reset for reuse)", &mut dropped));

    // 7. What a server does per call: the whole invocation, on demand and from the pool.
    let mut on_demand = Vec::new();
    for _ in 0..args.runs.max(1) {
        on_demand.push(invoke_ok(&runtime, &invocation, args.allow_function_errors).await?.total);
    }
    report.steps.push(Step::of("invocation, instantiated on demand", &mut on_demand));

    // 8. The baseline tier: Winch's compile, and a fresh instance + call on its code (what a
    // call costs in the seconds before Cranelift's code is swapped in).
    if args.compiles > 0 {
        let baseline = crate::tiers::Baseline::new(&config.engine)?;
        let mut compiles = Vec::new();
        let mut component = None;
        for _ in 0..args.compiles {
            let started = Instant::now();
            let compiled = wasmtime::component::Component::new(baseline.engine(), &bytes)
                .map_err(|e| anyhow::anyhow!("Winch cannot compile the bundle: {e:#}"))?;
            compiles.push(started.elapsed());
            component = Some(compiled);
        }
        report.steps.push(Step::of("baseline tier: compile (Winch)", &mut compiles));
        let pre = baseline.compiler().link(&component.expect("compiled at least once"))?;
        let mut calls = Vec::new();
        for _ in 0..args.runs.max(1) {
            let mut store = pool::new_store(&pre, &version);
            let started = Instant::now();
            let instance = pre.instantiate_async(&mut store).await?;
            call(&instance, &mut store, &version, &wit, args.allow_function_errors).await?;
            calls.push(started.elapsed());
        }
        report.steps.push(Step::of("baseline tier: instantiate + first call", &mut calls));
    }
    {
        // Measured whether or not the server flags turn the pool on (default 4 per function).
        let mut pooled_config = config.clone();
        pooled_config.pool = pool_settings;
        if pooled_config.pool.per_function == 0 {
            pooled_config.pool.per_function = 4;
        }
        let pooled_runtime = Runtime::new(pooled_config)?;
        pooled_runtime.load(bytes.clone(), "bench", name).await?;
        // Twice: back to back, each call as soon as an instance is ready (what a steady
        // stream of requests sees), then spaced out by 10 ms idle gaps, as at low load, where
        // each call starts with caches other work has evicted meanwhile.
        for (idle, label) in [
            (Duration::ZERO, "pooled: take a never-used instance + call"),
            (Duration::from_millis(10), "pooled, after 10 ms idle: take + call"),
        ] {
            let (mut acquire_call, mut hits) = (Vec::new(), 0usize);
            for _ in 0..args.runs.max(1) {
                wait_for_pool(&pooled_runtime, idle).await;
                let timing =
                    invoke_ok(&pooled_runtime, &invocation, args.allow_function_errors).await?;
                if timing.instantiate < Duration::from_micros(100) {
                    hits += 1;
                }
                acquire_call.push(timing.instantiate + timing.call);
            }
            report.steps.push(Step::of(label, &mut acquire_call));
            say(format!("({label}: pool hits {hits} of {})", args.runs.max(1)));
        }
    }

    // Memory: many live instances at once; the private memory each one adds.
    if args.live > 0 {
        if let Some(held) =
            held_instances_memory(&version, &wit, args.live, args.allow_function_errors).await?
        {
            report.private_mib_before_live = Some(held.before_mib);
            report.private_kib_per_pooled_instance = Some(held.kib_per_made_instance);
            report.private_kib_per_called_instance = Some(held.kib_per_called_instance);
            report.private_mib_with_live = Some(held.process_mib);
        }
    }

    // Throughput of fresh instances, 1 and 2 concurrent callers.
    if args.seconds > 0 {
        for callers in [1, 2] {
            let (cpu_before, started) = (cpu_seconds(), Instant::now());
            let rate = throughput(&runtime, &invocation, callers, args.seconds).await;
            report.invocations_per_second.push((callers, rate));
            if let (Some(before), Some(after)) = (cpu_before, cpu_seconds()) {
                let busy = (after - before) / started.elapsed().as_secs_f64();
                report.cores_busy.push((callers, busy));
            }
        }
    }

    report.private_mib_at_end = private_dirty_kib().map(|kib| kib / 1024.0);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// One call on `instance`, with the function's timeout from now; the function's own exception
/// is an error unless `allow_errors`.
async fn call(
    instance: &Function,
    store: &mut wasmtime::Store<crate::host::InvocationState>,
    version: &FunctionVersion,
    wit: &crate::bindings::types::Invocation,
    allow_errors: bool,
) -> Result<()> {
    pool::deadline_for_call(store, &version.limits);
    let answer = match instance.wasmfn_platform_handler().call_handle(&mut *store, wit).await {
        Ok(answer) => answer,
        // Named as an invocation's would be (past the timeout, over the memory limit, ...).
        Err(error) => {
            let exceeded = store.data().limiter.exceeded;
            let meaning = crate::invoker::classify_trap(&error, exceeded, &version.limits);
            return Err(anyhow::Error::from(error).context(meaning.to_string()));
        }
    };
    match answer {
        Ok(_) => Ok(()),
        Err(
            crate::bindings::types::FunctionError::Exception(_)
            | crate::bindings::types::FunctionError::BadArguments(_),
        ) if allow_errors => Ok(()),
        Err(error) => {
            bail!("the function failed: {error:?} (--allow-function-errors counts such calls)")
        }
    }
}

async fn invoke_ok(
    runtime: &Runtime,
    invocation: &Invocation,
    allow_errors: bool,
) -> Result<crate::invoker::Timing> {
    let outcome = runtime.invoker().invoke(invocation.clone()).await;
    match outcome.result {
        Ok(_) => Ok(outcome.timing),
        Err(
            crate::error::InvokeError::FunctionException { .. }
            | crate::error::InvokeError::BadArguments(_),
        ) if allow_errors => Ok(outcome.timing),
        Err(error) => bail!("the function answered {}: {error}", error.status()),
    }
}

/// Waits `idle`, then until the keeper has made the next instance (at most 100 ms), yielding
/// to the runtime meanwhile rather than sleeping, so that a back-to-back call starts at once.
async fn wait_for_pool(runtime: &Runtime, idle: Duration) {
    if !idle.is_zero() {
        tokio::time::sleep(idle).await;
    }
    let deadline = Instant::now() + Duration::from_millis(100);
    while runtime.invoker().pooled_instances() == 0 && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// Numeric fields `N..` of `/proc/self/stat`, numbered as in proc(5) (Linux; `None`
/// elsewhere). Counting starts after the command name, which is in parentheses and may hold
/// spaces: the state is field 3.
fn self_stat<const K: usize>(first: usize) -> Option<[u64; K]> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')').map(|(_, rest)| rest)?;
    let mut fields = after.split_whitespace().skip(first.checked_sub(3)?);
    let mut values = [0; K];
    for value in &mut values {
        *value = fields.next()?.parse().ok()?;
    }
    Some(values)
}

/// Minor page faults of this process so far (field 10, minflt; 0 where unknown).
fn minor_faults() -> u64 {
    self_stat::<1>(10).map_or(0, |[minflt]| minflt)
}

/// CPU time (user + system, fields 14 and 15) this process has used so far, in seconds.
fn cpu_seconds() -> Option<f64> {
    let [user, system] = self_stat::<2>(14)?;
    // Clock ticks; 100 per second on every Linux configuration wasmfn runs on.
    Some((user + system) as f64 / 100.0)
}

/// Private dirty memory of this process, in KiB (Linux; `None` elsewhere).
fn private_dirty_kib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text.lines().find(|line| line.starts_with("Private_Dirty:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What `count` instances held at once cost in private memory.
struct HeldMemory {
    /// The process's before the first of them is made, in MiB.
    before_mib: f64,
    /// What each one adds once made (what a pooled instance holds), in KiB.
    kib_per_made_instance: f64,
    /// What each one adds once it has also been called, in KiB.
    kib_per_called_instance: f64,
    /// The whole process's while they are all held, called, in MiB.
    process_mib: f64,
}

/// Makes `count` instances and holds them all, then calls each once and still holds them; both
/// figures are measured from the process before the first was made, in one pass, so neither
/// is lowered by memory an earlier pass left resident (a used slot keeps its pages, mimalloc
/// reuses what it freed).
async fn held_instances_memory(
    version: &Arc<FunctionVersion>,
    wit: &crate::bindings::types::Invocation,
    count: usize,
    allow_errors: bool,
) -> Result<Option<HeldMemory>> {
    let Some(before) = private_dirty_kib() else { return Ok(None) };
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let pre = version.pre();
        let mut store = pool::new_store(&pre, version);
        let instance = pre.instantiate_async(&mut store).await?;
        held.push((store, instance));
    }
    let made = private_dirty_kib().unwrap_or(before);
    for (store, instance) in &mut held {
        call(instance, store, version, wit, allow_errors).await?;
    }
    let called = private_dirty_kib().unwrap_or(made);
    drop(held);
    let per_instance = |after: f64| (after - before).max(0.0) / count as f64;
    Ok(Some(HeldMemory {
        before_mib: before / 1024.0,
        kib_per_made_instance: per_instance(made),
        kib_per_called_instance: per_instance(called),
        process_mib: called / 1024.0,
    }))
}

async fn throughput(
    runtime: &Runtime,
    invocation: &Invocation,
    callers: usize,
    seconds: u64,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (invoker, invocation) = (runtime.invoker().clone(), invocation.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                invoker.invoke(invocation.clone()).await;
                done += 1;
            }
            done
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap_or(0);
    }
    done as f64 / started.elapsed().as_secs_f64()
}

fn print_table(report: &Report) {
    for step in &report.steps {
        println!(
            "{:<44} min {:>9.3} ms  p50 {:>9.3} ms  p95 {:>9.3} ms  p99 {:>9.3} ms  (n={})",
            step.step, step.min_ms, step.p50_ms, step.p95_ms, step.p99_ms, step.n
        );
    }
    if let Some(faults) = &report.page_faults {
        println!(
            "minor page faults per run: instantiate {:.0}, first call {:.0}, live call + drop {:.0}",
            faults.instantiate, faults.first_call, faults.live_call_and_drop
        );
    }
    if let Some(kib) = report.private_kib_per_pooled_instance {
        println!("private memory per never-called instance: {:.0} KiB", kib);
    }
    if let Some(kib) = report.private_kib_per_called_instance {
        println!("private memory per live instance (called once): {:.0} KiB", kib);
    }
    if let (Some(before), Some(with)) =
        (report.private_mib_before_live, report.private_mib_with_live)
    {
        println!(
            "private memory of the process: {before:.0} MiB before the live instances, {with:.0} MiB \
             with them all live and called"
        );
    }
    if let Some(mib) = report.private_mib_at_end {
        println!("private memory of the process at the end: {mib:.0} MiB");
    }
    if let Some(rate) = report.function_cache_hit_rate {
        println!(
            "function cache hits compiling another bundle of the same code: {:.1} %",
            rate * 100.0
        );
    }
    if let Some((_, one)) = report.invocations_per_second.first().copied() {
        for (callers, rate) in &report.invocations_per_second {
            let busy = report.cores_busy.iter().find(|(c, _)| c == callers);
            let busy = busy.map(|(_, b)| format!(", {b:.2} cores busy")).unwrap_or_default();
            println!(
                "fresh-instance invocations/s, {callers} caller(s): {rate:.0} ({:.2}x of 1{busy})",
                rate / one
            );
        }
    }
}
