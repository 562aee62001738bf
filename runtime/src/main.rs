//! The `wasmfn` binary: parses the command line, sets up logging, runs the command.

use clap::Parser;
use wasmfn_runtime::cli::{run, Cli};
use wasmfn_runtime::guest_threads::EVENT_INTERVAL;

/// mimalloc rather than glibc's malloc: Winch and Cranelift allocate a lot while they compile,
/// and with it a deploy answers its first call ~17 % sooner and the HTTP path serves a few
/// percent more (benches/RESULTS.md, 2026-12-06 evening). Built without transparent huge pages
/// (Cargo.toml's `no_thp`), whose 2 MiB page clears made a deploy's first answer ~1.5x slower;
/// with 1,000 live instances it then holds about what glibc's malloc does (RESULTS.md,
/// 2026-12-07).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(cli.log_filter())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: log files and journald get plain text (escape codes made
    // them hard to grep, and formatting them cost throughput).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    // Guests yield their worker every few milliseconds (core/src/pool.rs), and tokio polls
    // for new I/O only every `event_interval` task polls: at the default 61, with CPU-bound
    // guests on every worker, a new connection (a `/healthz` probe) waited ~300 ms to be seen.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(EVENT_INTERVAL)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
