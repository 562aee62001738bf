#!/usr/bin/env python3
"""Document store and object storage operations per second, from inside a function.

Starts a real `wasmfn serve` with benches/functions/storage (fresh data directory; compiled
bundles cached in benches/.cache/storage), seeds it, checks the calls of each entry, then loads
each entry with wrk at 1 and 16 connections, with n=1 and n=20 operations per invocation, after
an unmeasured warm-up at the same load. A baseline entry does no operation. Afterwards the
store's contents are checked against the writes wrk saw acknowledged. Writes <out>/storage.json
and <out>/storage.md, and benches/plots/storage_ops.png when matplotlib can be imported.

    python3 benches/storage/run.py --wasmfn target/release/wasmfn --out benches/out \
        [--duration S] [--quick]

Python 3.11 standard library only; needs wrk (`apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk_report.lua"

FUNCTION = "storage"
SPACE = "default"
# (entry, operation as the report names it)
ENTRIES = [
    ("functions.noop", "no operation (baseline)"),
    ("functions.insert", "document insert_one"),
    ("functions.find", "document find_one by _id"),
    ("functions.update", "document update_one $inc"),
    ("functions.put", "object put, 1 KiB"),
    ("functions.get", "object get, 1 KiB"),
]
# The plot's axis labels.
PLOT_LABELS = {
    "functions.noop": "baseline\n(no operation)",
    "functions.insert": "insert_one",
    "functions.find": "find_one\nby _id",
    "functions.update": "update_one\n$inc",
    "functions.put": "object put\n1 KiB",
    "functions.get": "object get\n1 KiB",
}
BASELINE = "functions.noop"
# What functions.setup seeds; checked against its answer.
SEED_DOCUMENTS = 1000
SEED_OBJECTS = 64
DEFAULT_N = 20
MAX_N = 200  # functions.py clamps n to this

# The first start may install componentize-py, build the bundle and compile it with Cranelift.
READY_TIMEOUT_S = 1200
# wrk's own default (2 s) would count slow n=20 write invocations at 16 connections as errors.
WRK_TIMEOUT = "30s"


class BenchError(Exception):
    """A failure that ends the run with a message (no traceback)."""


def log(message: str) -> None:
    print(f"[storage] {message}", file=sys.stderr, flush=True)


# --- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 60.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Server:
    """A `wasmfn serve` child process; stopped with SIGTERM (then SIGKILL) on exit."""

    def __init__(self, wasmfn: Path, function_dir: Path, data_dir: Path, cache_dir: Path,
                 log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.command = [
            str(wasmfn), "serve", str(function_dir),
            "--listen", f"127.0.0.1:{self.port}",
            "--default-access", "public",
            "--data-dir", str(data_dir),
            "--cache-dir", str(cache_dir),
        ]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log(f"starting: {shlex.join(self.command)}  (server log: {self.log_path})")
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, cwd=REPO)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError as error:
            return f"(cannot read {self.log_path}: {error})"
        return "\n".join(text[-lines:])

    def wait_ready(self, timeout_s: float) -> float:
        """Polls /readyz until 200; returns the seconds it took."""
        started = time.monotonic()
        next_note = started + 15
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"wasmfn serve exited with status {self.process.returncode} "
                                 f"before it was ready; the end of its log:\n{self.log_tail()}")
            try:
                status, body = http_get(f"{self.base}/readyz", timeout=2)
                if status == 200:
                    return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass  # the port opens only once the server is ready
            now = time.monotonic()
            if now - started > timeout_s:
                raise BenchError(f"wasmfn serve was not ready after {timeout_s:.0f} s; "
                                 f"the end of its log:\n{self.log_tail()}")
            if now >= next_note:
                log(f"waiting for the server ({now - started:.0f} s; the first start builds "
                    f"and compiles the bundle)...")
                next_note = now + 15
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log("wasmfn serve did not stop within 30 s of SIGTERM; killing it")
            self.process.kill()
            self.process.wait()
        self.log_file.close()

    def url(self, entry: str, n: int | None = None) -> str:
        query = "" if n is None else f"?n={n}"
        return f"{self.base}/spaces/{SPACE}/functions/{FUNCTION}:{entry}/invoke{query}"

    def call(self, entry: str, n: int | None = None) -> dict:
        """One invocation; its JSON body, or a BenchError that shows status and body."""
        url = self.url(entry, n)
        status, body = http_get(url)
        if status != 200:
            raise BenchError(f"GET {url} answered {status}: {body.decode(errors='replace')}\n"
                             f"the end of the server log:\n{self.log_tail(15)}")
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            raise BenchError(f"GET {url} answered 200 with a body that is not JSON: {body!r}")


# --- checks --------------------------------------------------------------------------------


def seed_and_verify(server: Server, ns: list[int]) -> dict:
    seeded = server.call("functions.setup")
    expected = {"documents": SEED_DOCUMENTS, "objects": SEED_OBJECTS}
    if seeded != expected:
        raise BenchError(f"functions.setup answered {seeded}, expected {expected}")
    log(f"seeded {SEED_DOCUMENTS} documents and {SEED_OBJECTS} objects")
    checked = []
    for entry, _ in ENTRIES:
        op = entry.split(".")[1]
        for n in [None, *ns]:
            expect_n = DEFAULT_N if n is None else n
            body = server.call(entry, n)
            if body != {"op": op, "n": expect_n, "done": expect_n}:
                raise BenchError(f"{entry} with n={n} answered {body}, expected "
                                 f"{{'op': {op!r}, 'n': {expect_n}, 'done': {expect_n}}}")
            checked.append(f"{entry}?n={'(default)' if n is None else n} -> {body}")
    log(f"every entry answered the expected count ({len(checked)} calls)")
    return {"setup": seeded, "calls": checked}


# --- wrk -----------------------------------------------------------------------------------


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: installing the Debian package (apt-get install -y wrk)")
        result = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True,
                                text=True)
        if result.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True)
            result = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True,
                                    text=True)
        wrk = shutil.which("wrk")
        if wrk:
            return wrk
        raise BenchError(f"installing wrk failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    raise BenchError("wrk is not installed: run `apt-get install -y wrk` (as root) and retry")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; idle and iowait excluded)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def process_cpu_s(pid: int) -> float:
    """CPU seconds used by one process (user + system)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(wrk: str, url: str, connections: int, duration_s: float, server_pid: int) -> dict:
    """One wrk run; its report, plus the CPU time the server, wrk and everything else used."""
    threads = min(connections, os.cpu_count() or 1)
    command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration_s:g}s",
               "--timeout", WRK_TIMEOUT, "-s", str(WRK_SCRIPT), url]
    before = (time.monotonic(), busy_cpu_s(), process_cpu_s(server_pid), children_cpu_s())
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=duration_s + 120)
    after = (time.monotonic(), busy_cpu_s(), process_cpu_s(server_pid), children_cpu_s())
    wall, busy, server_cpu, wrk_cpu = (b - a for a, b in zip(before, after))
    lines = [l for l in result.stdout.splitlines() if l.startswith("WRK_JSON ")]
    if result.returncode != 0 or not lines:
        raise BenchError(f"{shlex.join(command)} failed (status {result.returncode}):\n"
                         f"{result.stdout}\n{result.stderr}")
    report = json.loads(lines[-1].removeprefix("WRK_JSON "))
    report["command"] = shlex.join(command)
    report["cpu"] = {
        "wall_s": round(wall, 3),
        "server_s": round(server_cpu, 2),
        "wrk_s": round(wrk_cpu, 2),
        "other_s": round(max(busy - server_cpu - wrk_cpu, 0.0), 2),
        "machine_idle_s": round(max(wall * (os.cpu_count() or 1) - busy, 0.0), 2),
    }
    return report


def measure(server: Server, wrk: str, entry: str, operation: str, n: int, connections: int,
            duration_s: float, warmup_s: float) -> dict:
    warm = None
    if warmup_s > 0:
        # The server sizes its pool of ready instances by recent traffic: let it adapt to this
        # row's load before measuring.
        warm = run_wrk(wrk, server.url(entry, n), connections, warmup_s, server.process.pid)
    report = run_wrk(wrk, server.url(entry, n), connections, duration_s, server.process.pid)
    seconds = report["duration_us"] / 1e6
    errors = report["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    invocations = report["requests"] / seconds
    # wrk counts every finished response in `requests`, errors included: only good ones count.
    good = report["requests"] - errors["status"]
    row = {
        "entry": entry,
        "operation": operation,
        "n": n,
        "connections": connections,
        "threads": min(connections, os.cpu_count() or 1),
        "duration_s": round(seconds, 3),
        "requests": report["requests"],
        "invocations_per_s": round(invocations, 1),
        "good_invocations_per_s": round(good / seconds, 1),
        "operations_per_s": round(good / seconds * n, 1),
        "latency_ms": {k: round(v / 1000, 3) for k, v in report["latency_us"].items()},
        "non_2xx": errors["status"],
        "socket_errors": socket_errors,
        "socket_error_detail": {k: errors[k] for k in ("connect", "read", "write", "timeout")},
        # Measured, from /proc: CPU seconds during the run, as cores busy on average.
        "cpu_cores": {k.removesuffix("_s"): round(v / report["cpu"]["wall_s"], 2)
                      for k, v in report["cpu"].items() if k != "wall_s"},
        "server_cpu_us_per_invocation": round(report["cpu"]["server_s"] * 1e6
                                              / max(report["requests"], 1), 1),
        "wrk_command": report["command"],
        "warmup": None if warm is None else {
            "duration_s": round(warm["duration_us"] / 1e6, 3),
            "requests": warm["requests"],
            "non_2xx": warm["errors"]["status"],
        },
    }
    lat = row["latency_ms"]
    log(f"{entry:<17} n={n:<3} c={connections:<3} {row['invocations_per_s']:>8.1f} inv/s "
        f"{row['operations_per_s']:>9.1f} ops/s  p50 {lat['p50']:.2f} ms  p99 {lat['p99']:.2f} ms"
        f"  non-2xx {row['non_2xx']}  socket errors {socket_errors}  cores: server "
        f"{row['cpu_cores']['server']:.2f} wrk {row['cpu_cores']['wrk']:.2f} other "
        f"{row['cpu_cores']['other']:.2f}")
    return row


def derive_marginal(rows: list[dict], n_low: int, n_high: int) -> list[dict]:
    """Per entry and connection count: from the time per good invocation at n_low and n_high,
    the time one more operation adds, and what is left per invocation. Derived, not measured:
    it assumes the time grows linearly with n."""
    derived = []
    by_key = {(r["entry"], r["connections"], r["n"]): r for r in rows}
    for entry, operation in ENTRIES:
        for connections in sorted({r["connections"] for r in rows}):
            low = by_key.get((entry, connections, n_low))
            high = by_key.get((entry, connections, n_high))
            if not low or not high or not low["good_invocations_per_s"] \
                    or not high["good_invocations_per_s"]:
                continue
            t_low = 1e6 / low["good_invocations_per_s"]
            t_high = 1e6 / high["good_invocations_per_s"]
            marginal = (t_high - t_low) / (n_high - n_low)
            derived.append({
                "entry": entry,
                "operation": operation,
                "connections": connections,
                "us_per_invocation_n_low": round(t_low, 1),
                "us_per_invocation_n_high": round(t_high, 1),
                "marginal_us_per_operation": round(marginal, 1),
                "fixed_us_per_invocation": round(t_low - marginal * n_low, 1),
                "marginal_server_cpu_us_per_operation": round(
                    (high["server_cpu_us_per_invocation"] - low["server_cpu_us_per_invocation"])
                    / (n_high - n_low), 1),
                "n_low": n_low,
                "n_high": n_high,
            })
    return derived


def check_writes(server: Server, rows: list[dict], ns: list[int]) -> dict | None:
    """The writes the store holds must match what wrk saw acknowledged: at least that, plus the
    verification calls; at most that plus what every wrk run could leave in flight when it
    stopped (connections × n), since the server finishes those invocations."""
    if not any(r["entry"] in ("functions.insert", "functions.update") for r in rows):
        return None
    stats = server.call("functions.stats")
    verified = DEFAULT_N + sum(ns)  # seed_and_verify's calls of each entry
    result = {"note": "acknowledged = n × 200 responses of the measured and warm-up wrk runs; "
                      f"expected from acknowledged + {verified} (verification calls) to that "
                      "plus connections × n per wrk run (invocations in flight when wrk stopped)"}
    ok = True
    for op, held in (("insert", stats["inserted"]), ("update", stats["increments"])):
        runs = [r for r in rows if r["entry"] == f"functions.{op}"]
        acknowledged = in_flight = 0
        for r in runs:
            for requests, non_2xx in [(r["requests"], r["non_2xx"])] + (
                    [(r["warmup"]["requests"], r["warmup"]["non_2xx"])] if r["warmup"] else []):
                acknowledged += r["n"] * (requests - non_2xx)
                in_flight += r["n"] * r["connections"]
        low, high = acknowledged + verified, acknowledged + verified + in_flight
        result[op] = {"held": held, "acknowledged": acknowledged, "expected_min": low,
                      "expected_max": high, "ok": low <= held <= high}
        ok = ok and (low <= held <= high or not runs)
    result["ok"] = ok
    for op, what in (("insert", "documents inserted"), ("update", "increments")):
        r = result[op]
        log(f"writes check: {r['held']} {what}, expected {r['expected_min']}..{r['expected_max']}"
            f" from {r['acknowledged']} acknowledged: {'ok' if r['ok'] else 'MISMATCH'}")
    return result


# --- the machine ---------------------------------------------------------------------------


def command_output(command: list[str], cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def machine_info(wasmfn: Path, wrk: str, data_dir: Path) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    commit = command_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO)
    dirty = command_output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "os": command_output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "data_dir_filesystem": command_output(["findmnt", "-n", "-o", "FSTYPE", "-T",
                                               str(data_dir)]),
        "wasmfn": command_output([str(wasmfn), "--version"]),
        # The working tree may differ from the commit: name the exact binary too.
        "wasmfn_binary": f"{wasmfn.relative_to(REPO) if wasmfn.is_relative_to(REPO) else wasmfn}"
                         f" (sha256 {file_sha256(wasmfn)[:12]}, built "
                         f"{datetime.datetime.fromtimestamp(wasmfn.stat().st_mtime):%Y-%m-%d %H:%M})",
        "wrk": command_output([wrk, "--version"]).split(" Copyright")[0],
        "git_commit": commit + ("" if dirty in ("unknown", "") else " (with local changes)"),
    }


# --- reports -------------------------------------------------------------------------------


def write_markdown(path: Path, result: dict) -> None:
    m = result["machine"]
    s = result["settings"]
    lines = [
        "## Storage operations from a function (`benches/storage/run.py`)",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, "
        f"kernel {m['kernel']}; data directory on {m['data_dir_filesystem']}; load average "
        f"{m['load_average_at_start']} at the start, {m['load_average_at_end']} at the end. "
        f"Date: {result['date']}. Versions: {m['wasmfn']} ({m['wasmfn_binary']}), {m['wrk']}, "
        f"commit {m['git_commit']}.",
        f"Command: `{result['command']}`",
        "",
        f"Function `benches/functions/storage`, served by `wasmfn serve` with the default "
        f"backends (sled document store with a flush to disk before every write returns; file "
        f"object store), fresh data directory. Each invocation performs `n` operations; wrk "
        f"(GET, {s['duration_s']:g} s per row after {s['warmup_s']:g} s of unmeasured warm-up at "
        f"the same load, on the same machine) drives one entry at a time. "
        f"Seeded: {SEED_DOCUMENTS} documents, {SEED_OBJECTS} objects; `find`/`update` pick a "
        f"random seeded `_id`, `get` a random seeded key, `put` one of 256 keys.",
        "",
        "| operation | n | conns | invocations/s | operations/s | p50 ms | p99 ms "
        "| non-2xx | socket errors | server CPU µs/invocation | cores busy: server / wrk / other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["runs"]:
        c = r["cpu_cores"]
        lines.append(
            f"| {r['operation']} | {r['n']} | {r['connections']} | {r['invocations_per_s']:.1f} "
            f"| {'—' if r['entry'] == BASELINE else format(r['operations_per_s'], '.1f')} "
            f"| {r['latency_ms']['p50']:.2f} "
            f"| {r['latency_ms']['p99']:.2f} | {r['non_2xx']} | {r['socket_errors']} "
            f"| {r['server_cpu_us_per_invocation']:.0f} "
            f"| {c['server']:.2f} / {c['wrk']:.2f} / {c['other']:.2f} |")
    lines += [
        "",
        "Server CPU per invocation and the busy cores are measured from `/proc` over each row "
        "(the server process, wrk, and every other process on the machine).",
    ]
    busiest = max((r["cpu_cores"]["other"] for r in result["runs"]), default=0)
    if busiest > 0.2:
        lines.append(f"**Other processes kept up to {busiest:.2f} cores busy during some rows**, "
                     f"so those rows understate what wasmfn does on a quiet machine.")
    derived = result["derived"]
    if derived:
        d0 = derived[0]
        lines += [
            "",
            f"Derived (not measured): time per invocation is 1 / (invocations/s); the marginal "
            f"cost of one operation is (t(n={d0['n_high']}) − t(n={d0['n_low']})) / "
            f"{d0['n_high'] - d0['n_low']}, and the fixed part is t(n={d0['n_low']}) minus "
            f"{d0['n_low']} operation(s). At 1 connection this is latency; at 16 it is server "
            f"time per invocation under load (both cores shared with wrk). The marginal server "
            f"CPU is the same difference of the measured server CPU per invocation. All assume "
            f"cost grows linearly with n; the baseline, which does nothing n times, shows how "
            f"far from 0 the method's noise goes.",
            "",
            f"| operation | conns | µs/invocation, n={d0['n_low']} "
            f"| µs/invocation, n={d0['n_high']} | marginal µs/op (derived) "
            f"| fixed µs/invocation (derived) | marginal server CPU µs/op (derived) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for d in derived:
            lines.append(
                f"| {d['operation']} | {d['connections']} | {d['us_per_invocation_n_low']:.0f} "
                f"| {d['us_per_invocation_n_high']:.0f} | {d['marginal_us_per_operation']:.0f} "
                f"| {d['fixed_us_per_invocation']:.0f} "
                f"| {d['marginal_server_cpu_us_per_operation']:.0f} |")
    w = result.get("writes_check")
    if w:
        i, u = w["insert"], w["update"]
        lines += [
            "",
            f"Writes check (measured): the store holds {i['held']} inserted documents "
            f"(expected {i['expected_min']}..{i['expected_max']} from {i['acknowledged']} "
            f"acknowledged by 200 responses, warm-up included) and {u['held']} increments "
            f"(expected {u['expected_min']}..{u['expected_max']}): "
            f"{'ok' if w['ok'] else 'MISMATCH'}.",
        ]
    lines.append("")
    path.write_text("\n".join(lines))


def write_plot(path: Path, result: dict) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (f"matplotlib cannot be imported by {sys.executable}: no plot "
                f"(run with the venv from benches' run.sh to get {path.name})")
    runs = result["runs"]
    combos = sorted({(r["n"], r["connections"]) for r in runs})
    fig, (ops_ax, inv_ax) = plt.subplots(1, 2, figsize=(14, 5.5),
                                         gridspec_kw={"width_ratios": [5, 6]})

    def bars(ax, entries, value, label_format):
        width = 0.8 / max(len(combos), 1)
        for i, (n, connections) in enumerate(combos):
            values = []
            for entry in entries:
                match = [r for r in runs if r["entry"] == entry and r["n"] == n
                         and r["connections"] == connections]
                values.append(value(match[0]) if match else 0)
            xs = [x + (i - (len(combos) - 1) / 2) * width for x in range(len(entries))]
            drawn = ax.bar(xs, values, width, label=f"n={n}, {connections} conn")
            ax.bar_label(drawn, labels=[label_format.format(v) for v in values], fontsize=7,
                         rotation=90, padding=2)
        ax.set_xticks(range(len(entries)))
        ax.set_xticklabels([PLOT_LABELS.get(e, e) for e in entries], fontsize=8)
        ax.set_yscale("log")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.margins(y=0.25)

    ran = [e for e, _ in ENTRIES if any(r["entry"] == e for r in runs)]
    bars(ops_ax, [e for e in ran if e != BASELINE], lambda r: r["operations_per_s"], "{:.0f}")
    ops_ax.set_ylabel("operations/s (log scale)")
    ops_ax.set_title("storage operations per second")
    ops_ax.legend(fontsize=8)
    bars(inv_ax, ran, lambda r: r["good_invocations_per_s"], "{:.0f}")
    inv_ax.set_ylabel("invocations/s (log scale)")
    inv_ax.set_title("invocations per second (each does n operations)")
    m = result["machine"]
    fig.suptitle(f"wasmfn: document store and object storage from a function — "
                 f"{m['cores']} cores, {result['date']}, {result['settings']['duration_s']:g} s "
                 f"per bar (load average at start {m['load_average_at_start']})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"


# --- main ----------------------------------------------------------------------------------


def parse_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wasmfn", type=Path, default=REPO / "target/release/wasmfn",
                        help="the wasmfn binary (default: target/release/wasmfn)")
    parser.add_argument("--out", type=Path, default=REPO / "benches/out",
                        help="directory for storage.json and storage.md (default: benches/out)")
    parser.add_argument("--duration", type=int, default=None,
                        help="whole seconds per wrk run (default 10, or 2 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="unmeasured whole seconds of the same load before each row "
                             "(default 2, or 1 with --quick; 0: none)")
    parser.add_argument("--quick", action="store_true", help="short runs, for trials")
    parser.add_argument("--connections", type=parse_list, default=[1, 16],
                        help="comma-separated connection counts (default 1,16)")
    parser.add_argument("--ns", type=parse_list, default=[1, 20],
                        help="comma-separated operations per invocation (default 1,20)")
    parser.add_argument("--entries", default=",".join(e for e, _ in ENTRIES),
                        help="comma-separated entries to load (default: all)")
    parser.add_argument("--plot", type=Path, default=REPO / "benches/plots/storage_ops.png")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "benches/.cache/storage",
                        help="compiled bundles and run data directories (default: "
                             "benches/.cache/storage)")
    parser.add_argument("--from-json", type=Path, metavar="STORAGE_JSON",
                        help="measure nothing: write storage.md and the plot again from the "
                             "storage.json of an earlier run")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the run's data directory (documents, objects, server log)")
    args = parser.parse_args()
    # wrk takes whole seconds only.
    duration = args.duration if args.duration is not None else (2 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if duration < 1 or warmup < 0:
        parser.error("--duration must be at least 1 and --warmup at least 0")
    if max(args.ns) > MAX_N:
        parser.error(f"--ns: the function does at most {MAX_N} operations per invocation")
    known = dict(ENTRIES)
    selected = [e.strip() for e in args.entries.split(",") if e.strip()]
    unknown = [e for e in selected if e not in known]
    if unknown:
        parser.error(f"unknown entries {unknown}; known: {list(known)}")
    entries = [(e, known[e]) for e in selected]

    if args.from_json:
        result = json.loads(args.from_json.read_text())
        out = args.out.resolve()
        out.mkdir(parents=True, exist_ok=True)
        write_markdown(out / "storage.md", result)
        log(f"wrote {out / 'storage.md'} from {args.from_json}")
        log(write_plot(args.plot.resolve(), result))
        return 0

    wasmfn = args.wasmfn.resolve()
    if not wasmfn.is_file():
        raise BenchError(f"{args.wasmfn} does not exist: build it with "
                         f"`cargo build --release --bin wasmfn`")
    wrk = ensure_wrk()
    if not WRK_SCRIPT.is_file():
        raise BenchError(f"{WRK_SCRIPT} is missing")
    function_dir = REPO / "benches/functions/storage"
    cache_dir = args.cache_dir.resolve()
    (cache_dir / "compiled").mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="run-", dir=cache_dir))
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = "python3 benches/storage/run.py " + shlex.join(sys.argv[1:])

    load_at_start = Path("/proc/loadavg").read_text().split()[:3]
    # Before the server starts: the binary may be rebuilt while the run goes on.
    machine = machine_info(wasmfn, wrk, data_dir)
    server = Server(wasmfn, function_dir, data_dir, cache_dir / "compiled",
                    cache_dir / "serve.log")
    rows: list[dict] = []
    try:
        server.start()
        ready_s = server.wait_ready(READY_TIMEOUT_S)
        log(f"server ready after {ready_s:.1f} s at {server.base}")
        checks = seed_and_verify(server, args.ns)
        total = len(entries) * len(args.ns) * len(args.connections)
        log(f"{total} wrk runs of {duration:g} s, each after {warmup:g} s of warm-up (about "
            f"{total * (duration + warmup) / 60:.1f} min)")
        for entry, operation in entries:
            for n in args.ns:
                for connections in args.connections:
                    rows.append(measure(server, wrk, entry, operation, n, connections,
                                        duration, warmup))
                    if server.process.poll() is not None:
                        raise BenchError(f"wasmfn serve exited (status "
                                         f"{server.process.returncode}) during the run:\n"
                                         f"{server.log_tail()}")
        writes_check = check_writes(server, rows, args.ns)
    except BaseException:
        log(f"the run's data directory is kept for a look: {data_dir}")
        raise
    finally:
        server.stop()

    ns = sorted(args.ns)
    result = {
        "benchmark": "storage",
        "date": datetime.date.today().isoformat(),
        "command": command,
        "machine": {**machine,
                    "load_average_at_start": " ".join(load_at_start),
                    "load_average_at_end": " ".join(
                        Path("/proc/loadavg").read_text().split()[:3])},
        "settings": {
            "duration_s": duration,
            "warmup_s": warmup,
            "python": sys.executable,
            "connections": args.connections,
            "ns": args.ns,
            "wrk_timeout": WRK_TIMEOUT,
            "server_command": shlex.join(server.command),
            "ready_after_s": round(ready_s, 2),
            "seed_documents": SEED_DOCUMENTS,
            "seed_objects": SEED_OBJECTS,
            "document_store": "sled (default)",
            "object_store": "file (default, <data-dir>/objects)",
        },
        "verification": checks,
        "runs": rows,
        "derived": derive_marginal(rows, ns[0], ns[-1]) if len(ns) > 1 else [],
        "derived_note": "derived, not measured: time per invocation = 1 / good invocations/s; "
                        "marginal µs/op = (t(n_high) - t(n_low)) / (n_high - n_low)",
        "writes_check": writes_check,
    }
    if not args.keep_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        log(f"data directory kept: {data_dir}")
    (out / "storage.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(out / "storage.md", result)
    log(f"wrote {out / 'storage.json'} and {out / 'storage.md'}")
    log(write_plot(args.plot.resolve(), result))
    print((out / "storage.md").read_text())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        log(f"error: {error}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
