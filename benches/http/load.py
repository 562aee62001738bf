"""wrk, the one load generator of the HTTP benchmark: runs it and reads its results.

Every run gets a generated Lua script that sets the request (method, body, headers) and, in
wrk's `done` hook, prints one `WRK_JSON {...}` line with exact counts and latency percentiles
in microseconds (wrk's text summary rounds them). The text summary is kept too, as printed.
"""

import json
import os
import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Requests slower than this are counted as wrk timeouts instead of latency samples; far above
# wrk's 2 s default so a slow system shows its real latency rather than losing samples.
WRK_TIMEOUT = "30s"
PERCENTILES = (50, 75, 90, 99, 99.9)

DONE_HOOK = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p99.9":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


@dataclass
class Request:
    """One HTTP request as a system wants to be called."""

    method: str = "GET"
    path: str = "/"
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class LoadError(Exception):
    """wrk could not run or printed no result."""


def wrk_version() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        return "not installed"
    # `wrk -v` prints its version line and then the usage, exiting with 1.
    output = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (output.stdout or output.stderr).splitlines()[0]
    return first.split(" Copyright")[0].strip()


def lua_script(request: Request) -> str:
    lines = [f"wrk.method = {lua_string(request.method)}"]
    if request.body:
        lines.append(f"wrk.body = {lua_string(request.body)}")
    for name, value in request.headers.items():
        lines.append(f"wrk.headers[ {lua_string(name)} ] = {lua_string(value)}")
    return "\n".join(lines) + "\n" + DONE_HOOK


def lua_string(text: str) -> str:
    """A Lua long-bracket literal, which needs no escaping (the level avoids `]==]` in text)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


class CpuUse:
    """Cores kept busy by the server, by wrk and by everything else, over one run (from /proc).

    On a 2-core machine the load generator and anything else running (a compiler, say) take
    cores from the server; this says how much, so a disturbed run can be recognised.
    """

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.started = time.monotonic()
        self.machine = self.machine_busy_s()
        self.server = self.process_s(server_pid)
        self.children = self.children_s()

    @staticmethod
    def machine_busy_s() -> float:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def process_s(pid: int | None) -> float:
        """CPU seconds of the server's session: the server (started as a session leader) and
        the processes it started (gunicorn's and uvicorn's workers), each with its waited-for
        children (utime+stime+cutime+cstime)."""
        if pid is None:
            return 0.0
        ticks = 0
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                stat = stat_file.read_text()
            except OSError:
                continue  # exited meanwhile
            fields = stat[stat.rindex(")") + 2:].split()
            # fields[3] is the session id; fields[11:15] the CPU times.
            if int(fields[3]) == pid:
                ticks += sum(int(value) for value in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def children_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def cores(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        machine = self.machine_busy_s() - self.machine
        server = self.process_s(self.server_pid) - self.server
        wrk = self.children_s() - self.children
        return {
            "server": round(server / wall, 2),
            "wrk": round(wrk / wall, 2),
            "other": round(max(0.0, machine - server - wrk) / wall, 2),
        }


def run_wrk(
    base_url: str,
    request: Request,
    connections: int,
    duration_s: float,
    script_path: Path,
    server_pid: int | None = None,
) -> dict:
    """One wrk run: -t min(connections, 2) -c connections --latency. Returns its results."""
    script_path.parent.mkdir(parents=True, exist_ok=True)
    script_path.write_text(lua_script(request))
    threads = min(connections, 2)
    command = [
        "wrk",
        "-t", str(threads),
        "-c", str(connections),
        "-d", f"{max(1, round(duration_s))}s",
        "--latency",
        "--timeout", WRK_TIMEOUT,
        "-s", str(script_path),
        base_url + request.path,
    ]
    cpu = CpuUse(server_pid)
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=duration_s + 120, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise LoadError(f"wrk did not finish: {' '.join(command)}") from error
    cores = cpu.cores()
    match = re.search(r"^WRK_JSON (\{.*\})$", finished.stdout, re.MULTILINE)
    if finished.returncode != 0 or match is None:
        raise LoadError(
            f"wrk exited with {finished.returncode} and no result "
            f"({' '.join(command)}): {(finished.stderr or finished.stdout).strip()[-500:]}"
        )
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    errors = raw["errors"]
    if raw["requests"] == 0:
        raise LoadError(
            f"no request completed within the {seconds:.0f} s run (wrk errors: {errors})"
        )
    return {
        "connections": connections,
        "threads": threads,
        "duration_s": round(seconds, 3),
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "bytes_per_response": round(raw["bytes"] / raw["requests"], 1) if raw["requests"] else 0,
        "latency_ms": {
            key: round(value / 1000, 3) for key, value in raw["latency_us"].items()
        },
        # wrk counts a response with status >= 400 as a "Non-2xx or 3xx response".
        "non_2xx": errors["status"],
        "socket_errors": {key: errors[key] for key in ("connect", "read", "write", "timeout")},
        "cpu_cores": cores,
        "command": " ".join(command),
        "wrk_output": finished.stdout.replace(match.group(0), "").strip(),
    }


def error_count(run: dict) -> int:
    """Non-2xx responses plus socket errors of one run."""
    return run["non_2xx"] + sum(run["socket_errors"].values())
