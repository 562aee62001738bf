//! The `wasmfn` binary: build errors with exit codes, `invoke` without a server, and `serve`
//! answering over HTTP and shutting down on SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::{fixture_bundle, fixture_dir, wasmfn, work_dir};

/// A throwaway function folder with the given files.
fn function_folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("wasmfn-fn").tempdir().unwrap();
    for (path, contents) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

fn build_failure(dir: &std::path::Path) -> String {
    let output = wasmfn().arg("build").arg(dir).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "build should fail: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const EXPOSED: &str = "from ixoncdkingress.function.context import FunctionContext\n\n@FunctionContext.expose\ndef f(context):\n    return 1\n";

#[test]
fn syntax_errors_name_the_file_and_line() {
    let dir = function_folder(&[(
        "functions.py",
        "from ixoncdkingress.function.context import FunctionContext\n\n@FunctionContext.expose\ndef f(context):\n    return {1:\n",
    )]);
    let stderr = build_failure(dir.path());
    assert!(stderr.contains("functions.py:5"), "{stderr}");
    assert!(stderr.contains("SyntaxError"), "{stderr}");
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");
}

#[test]
fn a_folder_without_exposed_functions_is_refused() {
    let dir = function_folder(&[("functions.py", "def f(context):\n    return 1\n")]);
    let stderr = build_failure(dir.path());
    assert!(stderr.contains("no exposed function"), "{stderr}");
}

#[test]
fn native_requirements_are_refused_by_name() {
    let dir = function_folder(&[
        ("functions.py", EXPOSED),
        ("requirements.txt", "ixoncdkingress==1.0.0\nnumpy==2.3.0\n"),
    ]);
    let stderr = build_failure(dir.path());
    assert!(stderr.contains("requirement 'numpy==2.3.0' has no pure-Python wheel"), "{stderr}");
}

#[test]
fn module_code_that_never_returns_stops_the_build_at_its_deadline() {
    let looping = format!("import time\nwhile True:\n    time.sleep(0.01)\n\n{EXPOSED}");
    let dir = function_folder(&[("functions.py", looping.as_str())]);
    let started = std::time::Instant::now();
    let output = wasmfn().arg("build").arg(dir.path()).args(["--timeout", "8s"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not finish within 8 s"), "{stderr}");
    assert!(stderr.contains("module-level code"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120), "stopped at its deadline");
    assert!(!dir.path().join("dist").exists(), "no bundle is written");
}

#[test]
fn invalid_function_toml_is_refused_before_building() {
    let dir = function_folder(&[
        ("functions.py", EXPOSED),
        ("function.toml", "name = \"x\"\ntimeout = 5\n"),
    ]);
    let stderr = build_failure(dir.path());
    assert!(stderr.contains("function.toml"), "{stderr}");
    assert!(stderr.contains("unknown field `timeout`"), "{stderr}");
}

#[test]
fn invoke_runs_one_call_without_a_server() {
    fixture_bundle("behave");
    let bundle = work_dir().join("bundles").join("behave-1.0.0.wasm");
    let output = wasmfn()
        .arg("invoke")
        .arg(&bundle)
        .arg("behave.greet")
        .args(["--args", r#"{"name": "Ada"}"#])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "\"Hello, Ada!\"");

    let output = wasmfn().arg("invoke").arg(&bundle).arg("behave.boom").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["error"]["type"], "ValueError");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("status: 500 (function_exception)"), "{stderr}");
    assert!(stderr.contains("Traceback"), "{stderr}");

    let output = wasmfn().arg("invoke").arg(&bundle).args(["--args", "[1]"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--args must be a JSON object"));
}

#[test]
fn invoke_builds_a_folder_and_passes_config() {
    let output = wasmfn()
        .arg("invoke")
        .arg(fixture_dir("behave"))
        .arg("behave.echo")
        .args(["--config", "region=mars"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["config"]["region"], "mars");
    assert_eq!(body["trigger"], "cli");
}

#[test]
fn build_precompile_fills_the_cache_that_invoke_then_loads_from() {
    let folder = function_folder(&[("pre.py", EXPOSED)]);
    let cache = tempfile::tempdir().unwrap();
    let cwasm = || -> Vec<_> {
        std::fs::read_dir(cache.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };
    let output = wasmfn()
        .arg("build")
        .arg(folder.path())
        .arg("--precompile")
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("compiled now"), "{stderr}");
    let bundle = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(bundle.ends_with(".wasm"), "stdout is the bundle's path: {bundle}");
    let compiled = cwasm();
    assert_eq!(compiled.len(), 1, "one compiled bundle in the cache: {compiled:?}");
    let written = std::fs::metadata(&compiled[0]).unwrap().modified().unwrap();

    // `invoke` with the same cache finds it: no compile, so the file is not rewritten.
    let output = wasmfn()
        .arg("invoke")
        .arg(&bundle)
        .arg("pre.f")
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1");
    assert_eq!(cwasm(), compiled);
    assert_eq!(std::fs::metadata(&compiled[0]).unwrap().modified().unwrap(), written);
}

/// `wasmfn bench --json` of the behave fixture's `entry` (no builds, compiles, live instances
/// or throughput runs), with `extra` arguments.
fn bench_behave(entry: &str, extra: &[&str]) -> std::process::Output {
    fixture_bundle("behave");
    let bundle = work_dir().join("bundles").join("behave-1.0.0.wasm");
    wasmfn()
        .arg("bench")
        .arg(&bundle)
        .args(["--entry", entry, "--builds", "0", "--compiles", "0"])
        .args(["--live", "0", "--seconds", "0", "--json"])
        .args(extra)
        .arg("--cache-dir")
        .arg(work_dir().join("compiled"))
        .output()
        .unwrap()
}

/// The step named `name` of a `bench --json` report.
fn bench_step<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name:?} in {report}"))
}

#[test]
fn bench_counts_a_function_error_as_a_call_only_when_asked() {
    let refused = bench_behave("behave.boom", &["--runs", "3"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad value from the function"), "{stderr}");
    assert!(stderr.contains("--allow-function-errors"), "{stderr}");

    let counted = bench_behave("behave.boom", &["--runs", "3", "--allow-function-errors"]);
    assert!(counted.status.success(), "{counted:?}");
    let report: serde_json::Value = serde_json::from_slice(&counted.stdout).unwrap();
    assert_eq!(bench_step(&report, "first call on the fresh instance")["n"], 3);
}

#[test]
fn bench_gives_each_call_the_function_timeout_and_names_a_timeout() {
    let once = ["--runs", "1", "--pool-per-function", "0"];
    // Two 700 ms naps on one instance, with a 1 s timeout: each call has its own.
    let napped = bench_behave("behave.nap", &once);
    assert!(napped.status.success(), "{}", String::from_utf8_lossy(&napped.stderr));
    let report: serde_json::Value = serde_json::from_slice(&napped.stdout).unwrap();
    let live = bench_step(&report, "call on a live (already called) instance");
    assert!(live["min_ms"].as_f64().unwrap() >= 700.0, "{live}");

    // A call that never ends is stopped at the timeout, and said so.
    let spun = bench_behave("behave.spin", &once);
    let stderr = String::from_utf8_lossy(&spun.stderr);
    assert_eq!(spun.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not finish within its timeout of 1000 ms"), "{stderr}");
}

/// `wasmfn bench` of the behave fixture's `scatter` (no builds or compiles) with `args`: its
/// JSON report.
fn bench_scatter(args: &[&str]) -> serde_json::Value {
    fixture_bundle("behave");
    let bundle = work_dir().join("bundles").join("behave-1.0.0.wasm");
    let output = wasmfn()
        .arg("bench")
        .arg(&bundle)
        .args(["--entry", "behave.scatter", "--builds", "0", "--compiles", "0", "--json"])
        .args(args)
        .arg("--cache-dir")
        .arg(work_dir().join("compiled"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn bench_reports_each_step_and_a_reused_slot_takes_no_page_faults() {
    let report = bench_scatter(&[
        "--runs",
        "50",
        "--live",
        "2",
        "--seconds",
        "1",
        "--keep-resident-mb",
        "16",
    ]);
    let steps: Vec<&str> =
        report["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    for step in ["instantiate a fresh instance", "first call on the fresh instance"] {
        assert!(steps.contains(&step), "{step} missing from {steps:?}");
    }
    let rates = report["invocations_per_second"].as_array().unwrap();
    assert_eq!(rates.len(), 2, "1 and 2 callers: {rates:?}");
    assert!(rates.iter().all(|r| r[1].as_f64().unwrap() > 0.0), "{rates:?}");
    // `scatter` writes 512 separate pages. Where the kernel reports written pages, a reused
    // slot's memory is reset by copying them back and they stay mapped: the next instance's
    // first call takes (almost) no page faults. Upstream wasmtime 48 gave up after 32 regions
    // and unmapped the rest: hundreds of faults per call. (The average includes the first
    // run, on a slot nothing had written yet: about 800 faults over 50 runs.)
    let faults = report["page_faults"]["first_call"].as_f64().unwrap();
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        assert!(faults < 64.0, "{faults} page faults per first call on a reused slot");
    } else {
        // Older kernels: wasmtime copies the lowest 16 MiB whole, so wasmfn's default is 0.
        assert_eq!(wasmfn_runtime::limits::default_keep_resident_mb(), 0);
    }
}

#[test]
fn a_function_that_writes_more_than_slots_keep_gets_what_it_writes_kept_resident() {
    if !wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        // Nothing to learn from without the kernel's scan: no learning, by default.
        assert_eq!(wasmfn_runtime::limits::default_keep_resident_max_mb(), 0);
        return;
    }
    // `scatter` dirties ~2.4 MiB per call (512 separate pages of its 4 MiB, 2 MiB, plus the
    // interpreter's own ~90 pages), more than the 2 MiB every slot keeps by default.
    let first_call_faults = |extra: &[&str]| {
        let runs = ["--runs", "100", "--live", "0", "--seconds", "0", "--keep-resident-mb", "2"];
        let report = bench_scatter(&[&runs[..], extra].concat());
        report["page_faults"]["first_call"].as_f64().unwrap()
    };
    // Fixed at 2 MiB: the rest is given back after every call and faults in again in the next.
    let fixed = first_call_faults(&["--keep-resident-max-mb", "0"]);
    // Learned (the default bound): after a few calls the function's slots keep what it writes.
    // The average includes the calls before there was anything to learn from (the first on a
    // slot nothing had written, then the ones whose slot was given back to measure it again).
    let learned = first_call_faults(&[]);
    // (~140 here since the build fills the heap's holes and a call writes fewer pages of its
    // own; learned stays under 64.)
    assert!(fixed > 100.0, "{fixed} page faults per first call with 2 MiB kept, fixed");
    assert!(learned < 64.0, "{learned} page faults per first call, learned (fixed: {fixed})");
}

/// `command` (`wasmfn`, or what execs it) serving the behave fixture on a free port with its
/// state in `state`, stdout and stderr piped; stdout's first line says where it listens.
/// The server, killed when dropped (also when the test fails).
fn serve_behave(mut command: Command, state: &std::path::Path) -> support::ServeProcess {
    fixture_bundle("behave");
    let bundle = work_dir().join("bundles").join("behave-1.0.0.wasm");
    command
        .arg("serve")
        .arg(&bundle)
        .args(["--listen", "127.0.0.1:0", "--space", "tests", "--default-access", "public"])
        .arg("--data-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .into()
}

#[test]
fn serve_answers_http_and_stops_on_sigterm() {
    let state = tempfile::tempdir().unwrap();
    let mut child = serve_behave(wasmfn(), state.path());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.strip_prefix("wasmfn: listening on ").expect("listening line").to_string();
    let url = format!("{base}/spaces/tests/functions/behave:behave.greet/invoke?name=Ada");
    let body = reqwest::blocking_get(&url);
    assert_eq!(body, "\"Hello, Ada!\"");
    let failing = format!("{base}/spaces/tests/functions/behave:behave.boom/invoke");
    assert!(reqwest::blocking_get(&failing).contains("ValueError"));
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let (exit, log) = child.exit_and_stderr_within(
        std::time::Duration::from_secs(30),
        "SIGTERM did not stop the server",
    );
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?} {log}");
    // The caller got type and message; the operator's log has the traceback.
    assert!(log.contains("invocation failed"), "{log}");
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    // Not a terminal: plain text, no colour escape codes in the operator's log.
    assert!(!log.contains('\x1b'), "{log}");
    assert!(log.contains(" WARN wasmfn_core::invoker: invocation failed "), "{log}");
}

#[test]
fn serve_started_with_sigint_ignored_stops_on_sigint_once_it_says_it_listens() {
    // As in the background of a non-interactive script: SIGINT is ignored until the server
    // installs its handler. A signal sent as soon as the server says it listens must stop it
    // (a handler installed only when the accept loop first waited lost such signals).
    let state = tempfile::tempdir().unwrap();
    let server = wasmfn();
    let mut ignoring = Command::new("sh");
    ignoring
        .args(["-c", "trap '' INT; exec \"$0\" \"$@\""])
        .arg(server.get_program())
        .envs(server.get_envs().filter_map(|(key, value)| Some((key, value?))))
        .env("WASMFN_LOG", "info");
    let mut child = serve_behave(ignoring, state.path());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("wasmfn: listening on "), "{first}");
    // Both handlers are in place before the line (bits 2 and 15 of the caught-signal mask).
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let caught = status.lines().find_map(|line| line.strip_prefix("SigCgt:")).unwrap();
    let caught = u64::from_str_radix(caught.trim(), 16).unwrap();
    assert_eq!(caught & (1 << 1 | 1 << 14), 1 << 1 | 1 << 14, "SigCgt {caught:x}");
    let status = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    // Drain stdout so the server never blocks writing it, then wait with a bound.
    std::thread::spawn(move || lines.for_each(drop));
    let exit =
        child.exit_within(std::time::Duration::from_secs(30), "SIGINT did not stop the server");
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn help_lists_the_commands() {
    let output = wasmfn().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    let commands =
        ["new", "dev", "serve", "build", "invoke", "deploy", "config", "secrets", "logs"];
    for command in commands.iter().chain(&["triggers", "doctor"]) {
        assert!(help.contains(&format!("  {command} ")), "{command}: {help}");
    }
    // One call has no server: its help shows no pool, run-slot or thread settings.
    let output = wasmfn().args(["invoke", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--timeout-ms") && help.contains("--storage-dir"), "{help}");
    for server_only in
        ["--pool-per-function", "--max-running", "--guest-threads", "--max-instances"]
    {
        assert!(!help.contains(server_only), "{server_only}: {help}");
    }
    let output = wasmfn().args(["serve", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("--pool-per-function"));
}

mod reqwest {
    /// A blocking GET on a throwaway runtime (the test itself is synchronous).
    pub fn blocking_get(url: &str) -> String {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async { ::reqwest::get(url).await.unwrap().text().await.unwrap() })
    }
}
