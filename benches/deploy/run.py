#!/usr/bin/env python3
"""Deploy -> first response, end to end, with and without precompilation at build time.

For a function folder (default: examples/hello-world), each run starts a real `wasmfn serve`
with an empty data directory and no bundle, deploys the bundle through the admin API
(`POST /admin/spaces/default/functions/<name>/versions`, wait=true) and polls the function's
invoke URL until it answers 200. Four cases:

  compile on deploy   the node has never compiled this bundle (empty compiled cache): Winch
                      compiles it (the baseline tier, the default) and it serves while Cranelift
                      compiles in the background; the time until the admin API reports
                      Cranelift's code in service (`"tier": "optimized"`) is reported too;
  compile on deploy, no baseline tier
                      the same with `--baseline-tier false`: the first call waits for Cranelift;
  another app compiled before
                      the node has compiled another bundle (default examples/greet) but not this
                      one: Cranelift's function cache (the default) finds most functions there;
                      measured with the baseline tier, without it, and without it and with the
                      function cache off (`--function-cache-mb 0`), the A/B of the cache;
  precompiled         `wasmfn build --precompile` filled the node's cache beforehand (the build
                      time, compile included, is reported separately);
  restart             `wasmfn serve BUNDLE` with that cache: process start -> first 200.

Writes <out>/deploy.json and <out>/deploy.md.

    python3 benches/deploy/run.py --wasmfn target/release/wasmfn --out benches/out [--runs N]

A/B of two builds (`--ab OTHER_WASMFN`): only "compile on deploy", the two binaries
alternating for N rounds on the same bundle (built by --wasmfn), each run on an empty node;
prints the medians, their ratio and the per-round pairs (nothing written).

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOKEN = "bench-deploy-token"
READY_TIMEOUT_S = 120
FIRST_RESPONSE_TIMEOUT_S = 600


class BenchError(Exception):
    """A failure that ends the run with a message (no traceback)."""


def log(message: str) -> None:
    print(f"[deploy] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, data: bytes | None = None, timeout: float = 600) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {TOKEN}"} if "/admin/" in url else {}
    req = urllib.request.Request(url, data=data, headers=headers,
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Server:
    """`wasmfn serve` with its own data directory; killed on stop."""

    def __init__(self, wasmfn: Path, data_dir: Path, cache_dir: Path, bundles: list[Path],
                 extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.command = [str(wasmfn), "serve", *map(str, bundles),
                        "--listen", f"127.0.0.1:{self.port}", "--admin-token", TOKEN,
                        "--default-access", "public",
                        "--data-dir", str(data_dir), "--cache-dir", str(cache_dir), *extra]
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Starts the process; returns time.monotonic() just before it."""
        self.log_file = open(self.log_path, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(self.command, stdout=self.log_file,
                                        stderr=subprocess.STDOUT)
        return started

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])

    def until(self, url: str, what: str, timeout_s: float) -> float:
        """Polls `url` every 2 ms until 200; returns time.monotonic() of that answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"wasmfn serve exited ({self.process.returncode}) before "
                                 f"{what}:\n{self.log_tail()}")
            try:
                status, _ = request(url, timeout=timeout_s)
                if status == 200:
                    return time.monotonic()
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"no {what} after {timeout_s} s:\n{self.log_tail()}")
            time.sleep(0.002)

    def until_optimized(self, name: str, timeout_s: float) -> float:
        """Polls the admin API every 10 ms until `name` runs Cranelift's code; returns
        time.monotonic() of that answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, body = request(f"{self.base}/admin/functions", timeout=timeout_s)
            if status == 200 and any(f.get("name") == name and f.get("tier") == "optimized"
                                     for f in json.loads(body)["functions"]):
                return time.monotonic()
            if time.monotonic() > deadline:
                raise BenchError(f"{name} still not optimized after {timeout_s} s:\n"
                                 f"{self.log_tail()}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


def build(wasmfn: Path, function_dir: Path, out_dir: Path, *extra: str) -> Path:
    """`wasmfn build`; returns the bundle's path (its stdout)."""
    built = subprocess.run([str(wasmfn), "build", str(function_dir), "--out-dir", str(out_dir),
                            *extra], check=True, capture_output=True, text=True)
    return Path(built.stdout.strip())


def deploy_once(wasmfn: Path, bundle: Path, name: str, cache_dir: Path, work: Path,
                extra: tuple[str, ...] = ()) -> dict:
    """An empty node; deploy; first 200; Cranelift's code in service. Times in seconds."""
    data_dir = Path(tempfile.mkdtemp(dir=work))
    server = Server(wasmfn, data_dir, cache_dir, [], extra)
    try:
        server.start()
        server.until(f"{server.base}/readyz", "readiness", READY_TIMEOUT_S)
        invoke = f"{server.base}/spaces/default/functions/{name}/invoke"
        body = bundle.read_bytes()
        started = time.monotonic()
        status, answer = request(
            f"{server.base}/admin/spaces/default/functions/{name}/versions", data=body)
        deployed = time.monotonic()
        if status != 201:
            raise BenchError(f"deploy answered {status}: {answer[:500]!r}")
        first = server.until(invoke, "first response", FIRST_RESPONSE_TIMEOUT_S)
        optimized = server.until_optimized(name, FIRST_RESPONSE_TIMEOUT_S)
        return {"deploy_answer_s": deployed - started, "first_response_s": first - started,
                "optimized_s": optimized - started}
    finally:
        server.stop()


def restart_once(wasmfn: Path, bundle: Path, name: str, cache_dir: Path, work: Path) -> dict:
    """`wasmfn serve BUNDLE` on a warm cache: process start -> first 200."""
    data_dir = Path(tempfile.mkdtemp(dir=work))
    server = Server(wasmfn, data_dir, cache_dir, [bundle])
    try:
        started = server.start()
        first = server.until(f"{server.base}/spaces/default/functions/{name}/invoke",
                             "first response", FIRST_RESPONSE_TIMEOUT_S)
        return {"first_response_s": first - started}
    finally:
        server.stop()


def summary(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "runs": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasmfn", type=Path, default=REPO / "target/release/wasmfn")
    parser.add_argument("--function", type=Path, default=REPO / "examples/hello-world")
    parser.add_argument("--other", type=Path, default=REPO / "examples/greet",
                        help="the app the node compiled before, for the function cache cases")
    parser.add_argument("--out", type=Path, default=REPO / "benches/out")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ab", type=Path, metavar="OTHER_WASMFN",
                        help="compare with another build: compile on deploy only, alternating")
    args = parser.parse_args()
    if not args.wasmfn.exists():
        raise BenchError(f"{args.wasmfn} does not exist: cargo build --release --bin wasmfn")
    if args.ab:
        return ab(args)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wasmfn-deploy-bench-"))
    try:
        bundle = build(args.wasmfn, args.function, work / "dist")
        name = bundle.name.rsplit("-", 1)[0]
        log(f"bundle {bundle.name} ({bundle.stat().st_size / 2**20:.1f} MiB), {args.runs} runs")
        results: dict[str, dict] = {}

        def deploy_cases(cases, starting_cache) -> None:
            """Each case `args.runs` times, on a node whose cache starting_cache() makes."""
            for case, extra in cases:
                runs = []
                for run in range(args.runs):
                    runs.append(deploy_once(args.wasmfn, bundle, name, starting_cache(), work,
                                            extra))
                    log(f"{case}, run {run + 1}: first response "
                        f"{runs[-1]['first_response_s']:.3f} s, Cranelift's code in service "
                        f"{runs[-1]['optimized_s']:.3f} s")
                results[case] = {
                    key: summary([r[key] for r in runs])
                    for key in ("first_response_s", "deploy_answer_s", "optimized_s")}

        # A node that has compiled nothing.
        deploy_cases((("compile on deploy", ()),
                      ("compile on deploy, no baseline tier", ("--baseline-tier", "false"))),
                     lambda: Path(tempfile.mkdtemp(dir=work)))

        # A node that compiled another app: its compile cache, copied for each run.
        other_cache = work / "other-compiled"
        build(args.wasmfn, args.other, work / "dist-other", "--precompile",
              "--cache-dir", str(other_cache))

        def copy_of_other_cache() -> Path:
            cache = Path(tempfile.mkdtemp(dir=work)) / "compiled"
            shutil.copytree(other_cache, cache)
            return cache

        deploy_cases((("another app compiled before", ()),
                      ("another app compiled before, no baseline tier",
                       ("--baseline-tier", "false")),
                      ("another app compiled before, no baseline tier, no function cache",
                       ("--baseline-tier", "false", "--function-cache-mb", "0"))),
                     copy_of_other_cache)

        warm, builds, restarts = [], [], []
        for run in range(args.runs):
            cache = Path(tempfile.mkdtemp(dir=work))
            started = time.monotonic()
            # Deploy exactly what this build made and compiled.
            built = build(args.wasmfn, args.function, work / f"dist-{run}", "--precompile",
                          "--cache-dir", str(cache))
            builds.append(time.monotonic() - started)
            warm.append(deploy_once(args.wasmfn, built, name, cache, work))
            restarts.append(restart_once(args.wasmfn, built, name, cache, work))
            log(f"precompiled, run {run + 1}: build {builds[-1]:.1f} s, first response "
                f"{warm[-1]['first_response_s']:.3f} s, restart "
                f"{restarts[-1]['first_response_s']:.3f} s")
        results["precompiled"] = {
            "first_response_s": summary([r["first_response_s"] for r in warm]),
            "deploy_answer_s": summary([r["deploy_answer_s"] for r in warm]),
            "optimized_s": summary([r["optimized_s"] for r in warm]),
            "build_with_precompile_s": summary(builds)}
        results["restart"] = {"first_response_s": summary([r["first_response_s"]
                                                           for r in restarts])}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cold_median = results["compile on deploy"]["first_response_s"]["median"]
    waiting_median = results["compile on deploy, no baseline tier"]["first_response_s"]["median"]
    warm_median = results["precompiled"]["first_response_s"]["median"]
    cache_on = results["another app compiled before, no baseline tier"]["first_response_s"]
    cache_off = results["another app compiled before, no baseline tier, no function cache"][
        "first_response_s"]
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "function": str(args.function.relative_to(REPO)) if args.function.is_relative_to(REPO)
        else str(args.function),
        "results": results,
        "ratio_compile_to_precompiled": cold_median / warm_median,
        "ratio_no_baseline_to_baseline": waiting_median / cold_median,
        "ratio_no_function_cache_to_function_cache": cache_off["median"] / cache_on["median"],
        "other": str(args.other.relative_to(REPO)) if args.other.is_relative_to(REPO)
        else str(args.other),
    }
    (args.out / "deploy.json").write_text(json.dumps(report, indent=2) + "\n")
    ms = lambda s: f"{s * 1000:,.0f} ms" if s < 10 else f"{s:.1f} s"  # noqa: E731
    lines = [
        f"Deploy -> first response, {report['function']}, {report['machine']}, "
        f"{report['date']} (median of {args.runs}; min-max)",
        "",
        "| case | deploy answered | first 200 after the deploy request | Cranelift's code "
        "in service |",
        "|---|---:|---:|---:|",
    ]
    for case in ("compile on deploy", "compile on deploy, no baseline tier",
                 "another app compiled before", "another app compiled before, no baseline tier",
                 "another app compiled before, no baseline tier, no function cache",
                 "precompiled"):
        r = results[case]
        lines.append(f"| {case} | {ms(r['deploy_answer_s']['median'])} | "
                     f"{ms(r['first_response_s']['median'])} "
                     f"({ms(r['first_response_s']['min'])}-{ms(r['first_response_s']['max'])}) "
                     f"| {ms(r['optimized_s']['median'])} |")
    r = results["restart"]["first_response_s"]
    lines += [f"| restart (`serve BUNDLE`, cache warm): process start -> first 200 | | "
              f"{ms(r['median'])} ({ms(r['min'])}-{ms(r['max'])}) | |",
              "",
              f"`wasmfn build --precompile` took {ms(results['precompiled']['build_with_precompile_s']['median'])} "
              f"(componentize-py build + compile). Compile on deploy / precompiled: "
              f"{report['ratio_compile_to_precompiled']:.1f}x. Without the baseline tier / "
              f"with it: {report['ratio_no_baseline_to_baseline']:.1f}x. The other app: "
              f"{report['other']}; without the function cache / with it (no baseline tier): "
              f"{report['ratio_no_function_cache_to_function_cache']:.1f}x."]
    (args.out / "deploy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def ab(args: argparse.Namespace) -> int:
    """`--ab`: compile on deploy, --wasmfn (A) and --ab (B) alternating."""
    if not args.ab.exists():
        raise BenchError(f"{args.ab} does not exist")
    work = Path(tempfile.mkdtemp(prefix="wasmfn-deploy-ab-"))
    binaries = {"A": args.wasmfn, "B": args.ab}
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    try:
        bundle = build(args.wasmfn, args.function, work / "dist")
        name = bundle.name.rsplit("-", 1)[0]
        log(f"bundle {bundle.name}; A = {args.wasmfn}, B = {args.ab}, {args.runs} rounds")
        for round_ in range(args.runs):
            for label in ("A", "B") if round_ % 2 == 0 else ("B", "A"):
                cache = Path(tempfile.mkdtemp(dir=work))
                runs[label].append(deploy_once(binaries[label], bundle, name, cache, work))
                log(f"round {round_ + 1} {label}: deploy answered "
                    f"{runs[label][-1]['deploy_answer_s']:.3f} s, first response "
                    f"{runs[label][-1]['first_response_s']:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {label: {key: statistics.median(r[key] for r in runs[label])
                      for key in ("deploy_answer_s", "first_response_s")} for label in runs}
    print(f"Deploy -> first response, compile on deploy, A/B, {args.runs} alternating rounds, "
          f"{platform.node()}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print("| | deploy answered (median) | first 200 (median) | first 200 per round |")
    print("|---|---:|---:|---|")
    for label in ("A", "B"):
        per_round = ", ".join(f"{r['first_response_s'] * 1000:,.0f}" for r in runs[label])
        print(f"| {label} | {median[label]['deploy_answer_s'] * 1000:,.0f} ms | "
              f"{median[label]['first_response_s'] * 1000:,.0f} ms | {per_round} |")
    print(f"B / A, first 200: {median['B']['first_response_s'] / median['A']['first_response_s']:.2f}x")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"deploy benchmark: {error}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as error:
        print(f"deploy benchmark: {error.cmd[0]} {error.cmd[1]} failed ({error.returncode}):\n"
              f"{(error.stderr or b'')[-2000:]}", file=sys.stderr)
        sys.exit(1)
