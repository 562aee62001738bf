"""Driver of the HTTP benchmark: wasmfn against its peers, one machine, one load generator.

For each system (wasmfn, ixoncdkingress, gunicorn, uvicorn, CPython process per call, wasmtime
serve) it installs or builds what is needed (benches/.cache), starts the server on a free
127.0.0.1 port, polls until one call answers with "Hello World", then runs wrk at each
concurrency (a short warm-up, then the measured run) and stops the server. Systems run one
after another, never together. Results go to benches/out/http.json and http.md, plots to
benches/plots/.

Usually started by benches/run.sh, which installs wrk and the plotting virtualenv first.
Standard library only; plots need matplotlib (benches/requirements.txt).
"""

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from load import LoadError, error_count, run_wrk, wrk_version
from report import write_markdown
from systems import ALL_SYSTEMS, SetupError, System, Workspace, last_line

BENCHES = Path(__file__).resolve().parent.parent
CONNECTIONS = (1, 2, 4, 16, 64)
# A server that takes longer than this to stop after SIGTERM is killed.
STOP_GRACE_S = 15
# Longest wait for the call that follows a warm-up (a slow system may still be busy with it).
SETTLE_TIMEOUT_S = 120


def parse_args() -> argparse.Namespace:
    names = ", ".join(system.name for system in ALL_SYSTEMS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short runs (3 s, 1 s warm-up) for trying the suite out")
    parser.add_argument("--duration", type=int, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up before each run (default 2)")
    parser.add_argument("--only", help=f"comma-separated systems to run ({names}); default all")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)),
                        help="comma-separated concurrency levels (default %(default)s)")
    parser.add_argument("--wasmfn-bin", type=Path, default=BENCHES.parent / "target/release/wasmfn",
                        help="wasmfn binary to serve with (default %(default)s)")
    parser.add_argument("--spin-bin", type=Path, default=os.environ.get("SPIN_BIN"),
                        help="Fermyon Spin binary for the spin peers (default $SPIN_BIN); "
                             "without one they run only when --only names them, and fail")
    parser.add_argument("--build-wasmfn", action="store_true",
                        help="run `cargo build --release --bin wasmfn` first")
    parser.add_argument("--out", type=Path, default=BENCHES / "out")
    parser.add_argument("--plots", type=Path, default=BENCHES / "plots")
    parser.add_argument("--command", default=os.environ.get("BENCH_COMMAND"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.duration = args.duration or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    return args


def select_systems(only: str | None, workspace: Workspace) -> list[System]:
    if not only:
        return [system(workspace) for system in ALL_SYSTEMS if system.available(workspace)]
    by_name = {system.name: system for system in ALL_SYSTEMS}
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    # `storage` names run.sh's storage benchmark, not an HTTP system.
    unknown = [name for name in wanted if name not in by_name and name != "storage"]
    if unknown:
        sys.exit(f"http bench: unknown system(s) {', '.join(unknown)}; "
                 f"choose from {', '.join(by_name)}")
    return [by_name[name](workspace) for name in wanted if name in by_name]


def machine_info() -> dict:
    cpu = "unknown"
    memory_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    os_name = ""
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "os": os_name,
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(port: int, system: System, timeout_s: float = 10) -> tuple[int, str]:
    request = system.request()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request(request.method, request.path, request.body.encode(), request.headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(process: subprocess.Popen, port: int, system: System, log: Path) -> str:
    """Polls one call until it answers 200 with the system's `ready_text` ("Hello World" for
    hello world); returns that body."""
    deadline = time.monotonic() + system.ready_timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_tail(log)
            raise SetupError(f"{system.name}: the server exited with {process.returncode} before "
                             f"it was ready: {last_line(tail.splitlines())} (log {log})\n{tail}")
        try:
            status, body = call(port, system)
        except (OSError, http.client.HTTPException) as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if status == 200 and system.ready_text in body:
                return body
            if status == 200:
                raise SetupError(f"{system.name}: answered 200 without {system.ready_text!r}: "
                                 f"{body[:300]}")
            last = f"HTTP {status}: {body[:300]}"
        time.sleep(0.2)
    raise SetupError(f"{system.name}: not ready after {system.ready_timeout_s:.0f} s "
                     f"(last answer: {last}) (log {log})\n{log_tail(log)}")


def settle(port: int, system: System) -> None:
    """Waits for one call to go through, so work queued by the warm-up (requests wrk gave up
    on when it stopped) is mostly done before the measured run starts."""
    try:
        call(port, system, timeout_s=SETTLE_TIMEOUT_S)
    except (OSError, http.client.HTTPException) as error:
        raise SetupError(f"{system.name}: no answer after the warm-up: {error}") from error


def start(system: System, port: int, log: Path) -> subprocess.Popen:
    launch = system.launch(port)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        out.write(f"$ {system.info.get('command', ' '.join(launch.argv))}\n")
        out.flush()
        try:
            # A session of its own, so stopping it also stops what it started (children).
            return subprocess.Popen(
                launch.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **launch.env}, cwd=launch.cwd, start_new_session=True,
            )
        except OSError as error:
            raise SetupError(f"{system.name}: could not start {launch.argv[0]}: {error}") from error


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def measure(system: System, args: argparse.Namespace, workspace: Workspace) -> dict:
    """Starts the system, checks its answer, runs wrk at each concurrency, stops it."""
    port = free_port()
    log = workspace.logs / f"{system.name}.log"
    base_url = f"http://127.0.0.1:{port}"
    process = start(system, port, log)
    result: dict = {"runs": [], "failed_runs": []}
    try:
        started = time.monotonic()
        result["probe_body"] = wait_ready(process, port, system, log)
        result["ready_after_s"] = round(time.monotonic() - started, 2)
        print(f"  ready after {result['ready_after_s']} s, answers {result['probe_body'].strip()[:200]}",
              flush=True)
        for connections in args.connections:
            if process.poll() is not None:
                reason = (f"the server exited with {process.returncode}: "
                          f"{last_line(log_tail(log).splitlines())} (log {log})")
                result["failed_runs"].append({"connections": connections, "error": reason})
                print(f"  c={connections}: FAILED, {reason}", flush=True)
                continue
            script = workspace.out / "wrk" / f"{system.name}-c{connections}.lua"
            try:
                request = system.request(valid_for_s=args.warmup + args.duration + 10)
                if args.warmup:
                    try:
                        run_wrk(base_url, request, connections, args.warmup, script)
                    except LoadError:
                        pass  # a slow system may complete nothing in a short warm-up
                    settle(port, system)
                run = run_wrk(base_url, request, connections, args.duration, script,
                              server_pid=process.pid)
            except (LoadError, SetupError) as error:
                result["failed_runs"].append({"connections": connections, "error": str(error)})
                print(f"  c={connections}: FAILED, {error}", flush=True)
                continue
            result["runs"].append(run)
            latency = run["latency_ms"]
            errors = error_count(run)
            cores = run["cpu_cores"]
            print(f"  c={connections:>2}: {run['requests_per_s']:>9,.1f} req/s   "
                  f"p50 {latency['p50']:>9.3f} ms   p99 {latency['p99']:>9.3f} ms   "
                  f"cores: server {cores['server']:.2f} wrk {cores['wrk']:.2f} "
                  f"other {cores['other']:.2f}"
                  + (f"   ERRORS {errors} (non-2xx {run['non_2xx']}, socket "
                     f"{run['socket_errors']})" if errors else ""), flush=True)
    finally:
        stop(process)
    return result


def write_results(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "http.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "http.md").write_text(write_markdown(results))


def main() -> int:
    args = parse_args()
    repo = BENCHES.parent
    workspace = Workspace(
        repo=repo,
        cache=BENCHES / ".cache",
        out=args.out.resolve(),
        wasmfn_bin=args.wasmfn_bin.resolve(),
        build_wasmfn=args.build_wasmfn,
        spin_bin=args.spin_bin.resolve() if args.spin_bin else None,
    )
    systems = select_systems(args.only, workspace)
    began = time.monotonic()
    results = {
        "benchmark": "HTTP hello world, wrk",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": args.command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine_info(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "wrk_threads": "min(connections, 2)",
            "wrk_timeout": "30s",
        },
        "versions": {"wrk": wrk_version(), "driver_python": platform.python_version()},
        "function": "examples/hello-world/functions.py (hello_world -> {'message': 'Hello World'})",
        "systems": [],
    }

    print("== preparing", ", ".join(system.name for system in systems), flush=True)
    for system in systems:
        entry = {"name": system.name, "label": system.label, "status": "ok"}
        print(f"[{system.name}] preparing", flush=True)
        try:
            system.prepare()
        except SetupError as error:
            entry.update(status="failed", error=str(error))
            print(f"[{system.name}] FAILED to prepare: {error}", file=sys.stderr, flush=True)
        results["systems"].append(entry)

    for system, entry in zip(systems, results["systems"]):
        if entry["status"] != "ok":
            continue
        print(f"== [{system.name}] measuring", flush=True)
        try:
            entry.update(measure(system, args, workspace))
        except SetupError as error:
            entry.update(status="failed", error=str(error))
            print(f"[{system.name}] FAILED: {error}", file=sys.stderr, flush=True)
        if entry["status"] == "ok" and not entry.get("runs"):
            entry.update(status="failed", error="no run succeeded")
        entry["config"] = system.describe()
        write_results(results, workspace.out)

    for system, entry in zip(systems, results["systems"]):
        entry.setdefault("config", system.describe())
    results["wall_time_s"] = round(time.monotonic() - began, 1)
    write_results(results, workspace.out)
    print(f"== wrote {workspace.out / 'http.json'} and {workspace.out / 'http.md'}", flush=True)

    try:
        from plots import plot_latency, plot_throughput
    except ImportError as error:
        print(f"== plots skipped: {error} (benches/run.sh installs matplotlib into "
              f"benches/.cache/venv)", file=sys.stderr)
    else:
        args.plots.mkdir(parents=True, exist_ok=True)
        for path in (plot_throughput(results, args.plots / "http_throughput.png"),
                     plot_latency(results, args.plots / "http_latency.png")):
            print(f"== wrote {path}", flush=True)

    failed = [entry["name"] for entry in results["systems"] if entry["status"] != "ok"]
    if failed:
        print(f"== failed: {', '.join(failed)} (see {workspace.out / 'http.md'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
