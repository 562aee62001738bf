#!/usr/bin/env python3
"""Cluster mode on one machine: 1 vs 2 vs 3 servers sharing their state in PostgreSQL.

1. HTTP throughput of examples/hello-world (a fresh instance per call, as always) at 16
   connections, with wrk:
     - one server on its own (embedded state), called directly: the reference;
     - 1, 2 and 3 servers with `--state postgres://…` behind HAProxy (docs/cluster/haproxy.cfg).
   All of them share this machine's cores, so more servers cannot add CPU: the ratio shows what
   the balancer and the shared state cost, not how a cluster of machines scales.
2. The asynchronous queue: jobs accepted and run per second (accept -> callback received), on
   one server with embedded state, and on 1 and 2 servers sharing PostgreSQL (jobs sent to the
   servers in turn).
3. Takeover: 2,000 jobs accepted by server A of two (A runs one at a time, leases of 3 s), A
   killed -9 once they are accepted: how long until B delivers the first and the last job A
   left, and at what rate B runs them (jobs left / (last callback - first taken-over one)).

Writes <out>/cluster.json and <out>/cluster.md.

    python3 benches/cluster/run.py --wasmfn target/release/wasmfn --out benches/out [--duration S]

Needs PostgreSQL at 127.0.0.1:5432 (scripts/setup-postgres.sh), HAProxy
(scripts/setup-haproxy.sh) and wrk (benches/run.sh installs it). Python 3.11 standard library.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.server
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benches" / "http"))
import load  # noqa: E402  (the HTTP benchmark's wrk driver)

TOKEN = "bench-cluster-token"
CONNECTIONS = 16
ASYNC_JOBS = 400


class BenchError(Exception):
    """A failure that ends the run with a message."""


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def psql(sql: str) -> None:
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c", sql],
                   check=True, capture_output=True)


class Server:
    """A `wasmfn serve` process."""

    def __init__(self, wasmfn: Path, data_dir: Path, args: list[str], env: dict[str, str]):
        self.port = free_port()
        command = [str(wasmfn), "serve", "--listen", f"127.0.0.1:{self.port}",
                   "--admin-token", TOKEN, "--data-dir", str(data_dir),
                   "--default-access", "public", "--allow-callback-host", "127.0.0.1", *args]
        self.process = subprocess.Popen(command, env={**os.environ, **env},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if request("GET", self.base + "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"wasmfn serve did not start: {' '.join(command)}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def deploy(server: Server, bundle: bytes) -> None:
    status, body = request("POST", server.base + "/admin/spaces/default/functions/hello/versions",
                           bundle, {"Authorization": f"Bearer {TOKEN}"}, timeout=600)
    if status != 201:
        raise BenchError(f"deploy failed: {status} {body[:300]!r}")


def wait_serving(server: Server, path: str) -> None:
    """Until the server answers `path` with Cranelift's code (not the baseline tier's, and no
    compile left running in the background to take cores from the measurement)."""
    deadline = time.monotonic() + 600
    while request("POST", server.base + path, b"{}")[0] != 200:
        if time.monotonic() > deadline:
            raise BenchError(f"{server.base} never served {path}")
        time.sleep(0.2)
    while True:
        status, body = request("GET", server.base + "/admin/spaces/default/functions/hello",
                               headers={"Authorization": f"Bearer {TOKEN}"})
        if status == 200 and json.loads(body).get("tier") == "optimized":
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{server.base} never served hello with optimized code")
        time.sleep(0.2)


class Balancer:
    """HAProxy with the documented configuration, in front of `servers`."""

    def __init__(self, servers: list[Server], work: Path):
        config = (REPO / "docs" / "cluster" / "haproxy.cfg").read_text()
        self.port = free_port()
        config = config.replace("bind 127.0.0.1:8080", f"bind 127.0.0.1:{self.port}")
        lines = [line for line in config.splitlines() if not line.strip().startswith("server ")]
        lines += [f"    server node-{i} 127.0.0.1:{s.port}" for i, s in enumerate(servers)]
        path = work / f"haproxy-{len(servers)}.cfg"
        path.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(["haproxy", "-db", "-f", str(path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if request("GET", self.base + "/readyz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("haproxy did not come up")
            time.sleep(0.1)
        time.sleep(2)  # every server's health check up

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class Callbacks(http.server.BaseHTTPRequestHandler):
    """Counts callback POSTs by invocation id."""

    seen: set[str] = set()
    lock = threading.Lock()
    done = threading.Event()
    wanted = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        with Callbacks.lock:
            Callbacks.seen.add(self.headers.get("x-invocation-id", ""))
            if len(Callbacks.seen) >= Callbacks.wanted:
                Callbacks.done.set()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def send_jobs(servers: list[Server], jobs: int, hook: str) -> None:
    """Expects `jobs` callbacks, then sends that many jobs to the servers in turn (8 senders);
    returns once all were accepted."""
    Callbacks.seen = set()
    Callbacks.done = threading.Event()
    Callbacks.wanted = jobs
    refused = []

    def send(worker: int) -> None:
        for i in range(worker, jobs, 8):
            server = servers[i % len(servers)]
            status, body = request(
                "POST", server.base + "/spaces/default/functions/hello/async-invoke", b"{}",
                {"X-Callback-Url": hook, "Content-Type": "application/json"})
            if status != 202:
                refused.append((status, body[:200]))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if refused:
        raise BenchError(f"{len(refused)} async jobs refused, e.g. {refused[0]}")


def async_rate(servers: list[Server], hook: str) -> dict:
    """Sends ASYNC_JOBS jobs to the servers in turn and waits for every callback."""
    started = time.monotonic()
    send_jobs(servers, ASYNC_JOBS, hook)
    accepted_s = time.monotonic() - started
    if not Callbacks.done.wait(timeout=600):
        raise BenchError(f"only {len(Callbacks.seen)} of {ASYNC_JOBS} callbacks arrived")
    total_s = time.monotonic() - started
    return {"jobs": ASYNC_JOBS, "accepted_per_s": round(ASYNC_JOBS / accepted_s, 1),
            "completed_per_s": round(ASYNC_JOBS / total_s, 1)}


TAKEOVER_JOBS = 2000
TAKEOVER_LEASE_S = 3


def takeover_rate(a: Server, hook: str) -> dict:
    """Sends TAKEOVER_JOBS jobs to `a` (8 senders), kills it -9 as soon as all are accepted and
    times how the other server of its cluster delivers the rest."""
    send_jobs([a], TAKEOVER_JOBS, hook)
    a.process.kill()
    a.process.wait()
    killed = time.monotonic()
    with Callbacks.lock:
        left = TAKEOVER_JOBS - len(Callbacks.seen)
    first = None
    while not Callbacks.done.is_set():
        with Callbacks.lock:
            if first is None and TAKEOVER_JOBS - len(Callbacks.seen) < left:
                first = time.monotonic()
        if time.monotonic() - killed > 600:
            raise BenchError(f"only {len(Callbacks.seen)} of {TAKEOVER_JOBS} callbacks arrived")
        time.sleep(0.005)
    last = time.monotonic()
    first = first or last
    return {"jobs": TAKEOVER_JOBS, "left_at_kill": left, "lease_s": TAKEOVER_LEASE_S,
            "first_after_kill_s": round(first - killed, 2),
            "last_after_kill_s": round(last - killed, 2),
            "taken_over_per_s": round(left / max(last - first, 0.001), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wasmfn", type=Path, default=REPO / "target" / "release" / "wasmfn")
    parser.add_argument("--out", type=Path, default=REPO / "benches" / "out")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--runs", type=int, default=1, help="accepted for run.sh; one run each")
    args = parser.parse_args()
    for tool in ("haproxy", "wrk", "psql"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is missing (scripts/setup-haproxy.sh, benches/run.sh, "
                             "scripts/setup-postgres.sh)")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wasmfn-cluster-bench-"))
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {"WASMFN_SECRETS_KEY": key, "WASMFN_LOG": "warn",
           "WASMFN_CACHE_DIR": str(work / "compiled")}
    built = subprocess.run([str(args.wasmfn), "build", str(REPO / "examples" / "hello-world"),
                            "--out-dir", str(work)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise BenchError(f"wasmfn build failed: {built.stderr[-500:]}")
    bundle = Path(built.stdout.strip().splitlines()[-1]).read_bytes()
    path = "/spaces/default/functions/hello/invoke"
    wrk_request = load.Request(method="POST", path=path, body="{}",
                               headers={"Content-Type": "application/json"})
    hook_port = free_port()
    hook_server = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Callbacks)
    threading.Thread(target=hook_server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{hook_port}/hook"
    results: dict = {"http": [], "async": []}
    databases = []

    def cluster(n: int, flags: list[list[str]] | None = None) -> list[Server]:
        name = f"wasmfn_bench_cluster_{secrets.token_hex(4)}"
        psql(f"CREATE DATABASE {name}")
        databases.append(name)
        state = f"postgres://postgres@127.0.0.1:5432/{name}"
        servers = []
        for i in range(n):
            more = flags[i] if flags else []
            servers.append(Server(args.wasmfn, work / f"{name}-{i}",
                                  ["--state", state, "--node-id", f"n{i}", *more], env))
        deploy(servers[0], bundle)
        for server in servers:
            wait_serving(server, path)
        return servers

    try:
        log("one server, embedded state, called directly")
        single = Server(args.wasmfn, work / "single", [], env)
        deploy(single, bundle)
        wait_serving(single, path)
        run = load.run_wrk(single.base, wrk_request, CONNECTIONS, args.duration,
                           work / "wrk.lua", single.process.pid)
        results["http"].append({"setup": "1 server, embedded state, direct", **run})
        results["async"].append({"setup": "1 server, embedded state",
                                 **async_rate([single], hook)})
        single.stop()
        for n in (1, 2, 3):
            log(f"{n} server(s) sharing PostgreSQL behind HAProxy")
            servers = cluster(n)
            balancer = Balancer(servers, work)
            run = load.run_wrk(balancer.base, wrk_request, CONNECTIONS, args.duration,
                               work / "wrk.lua")
            results["http"].append({"setup": f"{n} server(s), PostgreSQL state, HAProxy", **run})
            balancer.stop()
            if n <= 2:
                results["async"].append({"setup": f"{n} server(s), PostgreSQL state",
                                         **async_rate(servers, hook)})
            for server in servers:
                server.stop()
        log("takeover: server A killed -9 with the jobs it accepted, server B takes them over")
        lease = ["--async-lease", f"{TAKEOVER_LEASE_S}s"]
        servers = cluster(2, [[*lease, "--async-concurrency", "1"], lease])
        results["takeover"] = takeover_rate(servers[0], hook)
        servers[1].stop()
    finally:
        hook_server.shutdown()
        for name in databases:
            try:
                psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(work, ignore_errors=True)

    results["machine"] = {"cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(), "date": datetime.date.today().isoformat()}
    (args.out / "cluster.json").write_text(json.dumps(results, indent=2))
    base_rps = results["http"][0]["requests_per_s"]
    lines = ["| setup | req/s | vs 1 server direct | p50 ms | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for run in results["http"]:
        lines.append(f"| {run['setup']} | {run['requests_per_s']:,.0f} | "
                     f"{run['requests_per_s'] / base_rps:.2f}x | {run['latency_ms']['p50']} | "
                     f"{run['latency_ms']['p99']} | {load.error_count(run)} |")
    lines += ["", "| async queue | jobs | accepted/s | accepted and called back/s |",
              "|---|---:|---:|---:|"]
    for run in results["async"]:
        lines.append(f"| {run['setup']} | {run['jobs']} | {run['accepted_per_s']:,.0f} | "
                     f"{run['completed_per_s']:,.0f} |")
    run = results["takeover"]
    lines += ["", "| takeover (2 servers, A killed -9) | jobs | left by A | lease | first taken-over "
              "callback after the kill | last | B's rate |", "|---|---:|---:|---:|---:|---:|---:|",
              f"| A runs 1 at a time | {run['jobs']} | {run['left_at_kill']} | {run['lease_s']} s | "
              f"{run['first_after_kill_s']} s | {run['last_after_kill_s']} s | "
              f"{run['taken_over_per_s']:,.0f} jobs/s |"]
    table = "\n".join(lines) + "\n"
    (args.out / "cluster.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"cluster benchmark: {error}", file=sys.stderr)
        sys.exit(1)
