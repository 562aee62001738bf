//! In-process cold-start benchmark: for one bundle, how long each step of a fresh-instance
//! invocation takes, and how many fresh-instance invocations per second one process sustains
//! with 1 and 2 concurrent callers.
//!
//! `cargo run --release -p wasmfn-benches --bin cold-start -- examples/hello-world`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use wasmfn_runtime::bundle::sha256_hex;
use wasmfn_runtime::invoker::Invocation;
use wasmfn_runtime::limits::{EngineLimits, Limits};
use wasmfn_runtime::runtime::{Runtime, RuntimeConfig};

#[derive(Debug, Parser)]
#[command(about = "Cold-start breakdown and fresh-instance throughput of one bundle")]
struct Args {
    /// A function folder (built if stale) or a `.wasm` bundle.
    #[arg(default_value = "examples/hello-world")]
    path: PathBuf,
    /// The entry to call (default: the bundle's default entry).
    #[arg(long)]
    entry: Option<String>,
    /// Measured runs per step.
    #[arg(long, default_value_t = 500)]
    runs: usize,
    /// Seconds each throughput measurement lasts.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let bytes = wasmfn_runtime::cli::bundle_bytes(&args.path).await?;
    let sha = sha256_hex(&bytes);
    let scratch = std::env::temp_dir().join(format!("wasmfn-bench-{}", std::process::id()));
    let config = RuntimeConfig {
        cache_dir: scratch.join("compiled"),
        engine: EngineLimits::default(),
        default_limits: Limits::default(),
    };
    let runtime = Arc::new(Runtime::new(config)?);
    println!(
        "bundle: {} ({:.1} MB, sha256 {})",
        args.path.display(),
        bytes.len() as f64 / 1e6,
        &sha[..12]
    );

    let started = Instant::now();
    runtime.cache().load(runtime.engine(), &bytes, &sha).context("compiling")?;
    println!("first compile (Cranelift) + write .cwasm: {:.2} s", started.elapsed().as_secs_f64());

    let mut cache_loads = Vec::with_capacity(args.runs.min(50));
    for _ in 0..args.runs.min(50) {
        let started = Instant::now();
        runtime.cache().load(runtime.engine(), &bytes, &sha)?;
        cache_loads.push(started.elapsed());
    }
    report("load from compiled cache (mmap)", &mut cache_loads);

    let version = runtime.load(bytes, "bench", None).await?;
    let invocation = Invocation {
        space: "bench".into(),
        function: version.name.clone(),
        entry: args.entry.clone(),
        trigger: "bench".into(),
        ..Invocation::default()
    };
    let (mut instantiate, mut call, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let outcome = runtime.invoker().invoke(invocation.clone()).await;
        if outcome.status() != 200 {
            bail!("the bundle answered {}: {:?}", outcome.status(), outcome.result.err());
        }
        instantiate.push(outcome.timing.instantiate);
        call.push(outcome.timing.call);
        total.push(outcome.timing.total);
    }
    report("instantiate a fresh instance", &mut instantiate);
    report("first call on the fresh instance", &mut call);
    report("whole invocation (acquire + instantiate + call)", &mut total);

    let one = throughput(&runtime, &invocation, 1, args.seconds).await;
    let two = throughput(&runtime, &invocation, 2, args.seconds).await;
    println!("fresh-instance invocations/s, 1 caller:  {one:.0}");
    println!("fresh-instance invocations/s, 2 callers: {two:.0} ({:.2}x)", two / one);
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}

async fn throughput(
    runtime: &Arc<Runtime>,
    invocation: &Invocation,
    callers: usize,
    seconds: u64,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (runtime, invocation) = (runtime.clone(), invocation.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                runtime.invoker().invoke(invocation.clone()).await;
                done += 1;
            }
            done
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap_or(0);
    }
    done as f64 / seconds as f64
}

fn report(step: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{step:<50} min {:>7.3} ms  p50 {:>7.3} ms  p95 {:>7.3} ms  p99 {:>7.3} ms  (n={})",
        ms(samples[0]),
        ms(at(0.5)),
        ms(at(0.95)),
        ms(at(0.99)),
        samples.len()
    );
}
