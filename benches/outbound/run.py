#!/usr/bin/env python3
"""A function that calls a REST service on every call: wasmfn against ixoncdkingress (CPython).

Both serve benches/functions/outbound/functions.py, whose entry fetches a small JSON document
from a local upstream (benches/outbound/upstream.py, asyncio, a connection per request) with
`requests` and returns it. wasmfn sends the request through the host (`[network] allow`,
wasi:http); ixoncdkingress runs `requests` in its own process. One machine, one load
generator (wrk), one system at a time, the same upstream for both, in one run: the ratio is
what to read. Writes <out>/outbound.json and <out>/outbound.md.

    python3 benches/outbound/run.py [--wasmfn-bin target/release/wasmfn] [--quick]
        [--duration S] [--connections 1,16] [--only wasmfn,ixoncdkingress]
        [--wasmfn-arg=--keep-resident-max-mb=0 ...]

Usually started by `bash benches/run.sh --only outbound`, which installs wrk first.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCHES = Path(__file__).resolve().parent.parent
# The HTTP benchmark's systems and measuring loop, reused as they are.
sys.path.insert(0, str(BENCHES / "http"))

import run as http_run  # noqa: E402
from load import Request  # noqa: E402
from systems import Ixoncdkingress, Wasmfn, Workspace  # noqa: E402
from workload import measure_each, parse_args, write_results  # noqa: E402

FUNCTION = BENCHES / "functions" / "outbound"
ENTRY = "functions.call_upstream"


class OutboundWasmfn(Wasmfn):
    label = "wasmfn (requests through the host)"

    def __init__(self, workspace: Workspace, upstream: str, extra: list[str]) -> None:
        super().__init__(workspace)
        self.upstream = upstream
        self.extra = extra

    def launch(self, port: int):
        launch = super().launch(port)
        launch.argv[launch.argv.index(str(self.ws.hello_world))] = str(FUNCTION)
        launch.argv += self.extra
        self.info["command"] = " ".join(launch.argv)
        return launch

    def request(self, valid_for_s: float = 0) -> Request:
        return Request(
            "GET", f"/spaces/default/functions/outbound-bench/invoke?upstream={self.upstream}"
        )


class OutboundIxoncdkingress(Ixoncdkingress):
    label = "ixoncdkingress (CPython, requests in process)"

    def __init__(self, workspace: Workspace, upstream: str) -> None:
        super().__init__(workspace)
        self.upstream = upstream

    def launch(self, port: int):
        launch = super().launch(port)
        launch.env["CBC_PATH"] = str(FUNCTION)
        return launch

    def request(self, valid_for_s: float = 0) -> Request:
        return self.signed(ENTRY, {"upstream": self.upstream}, valid_for_s)


def extra_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wasmfn-arg", action="append", default=[], metavar="ARG",
                        help="an extra `wasmfn serve` argument (repeat), e.g. "
                             "--wasmfn-arg=--keep-resident-max-mb=0")


def markdown(results: dict) -> str:
    lines = [
        f"Outbound calls ({results['date']}, {results['machine']['cpus']} CPUs, "
        f"{results['machine']['platform']}): each invocation GETs JSON from a local upstream "
        "with requests.",
        "",
        "| system | connections | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    by_c: dict[int, dict[str, float]] = {}
    for name, result in results["systems"].items():
        for run in result.get("runs", []):
            errors = http_run.error_count(run)
            lines.append(
                f"| {name} | {run['connections']} | {run['requests_per_s']:,.0f} | "
                f"{run['latency_ms']['p50']:.2f} | {run['latency_ms']['p99']:.2f} | {errors} |"
            )
            by_c.setdefault(run["connections"], {})[name] = run["requests_per_s"]
        for failed in result.get("failed_runs", []):
            lines.append(f"| {name} | {failed['connections']} | failed: {failed['error']} | | | |")
        if "error" in result:
            lines.append(f"| {name} | | failed: {result['error']} | | | |")
    lines.append("")
    for connections, rates in sorted(by_c.items()):
        if rates.get("ixoncdkingress") and rates.get("wasmfn"):
            ratio = rates["wasmfn"] / rates["ixoncdkingress"]
            lines.append(f"- {connections} connection(s): wasmfn ÷ ixoncdkingress = {ratio:.2f}")
    return "\n".join(lines) + "\n"


def main() -> int:
    args = parse_args(__doc__.split("\n\n")[0], connections="1,16",
                      only="wasmfn,ixoncdkingress", extra=extra_args)
    cache = BENCHES / ".cache"
    workspace = Workspace(
        repo=BENCHES.parent, cache=cache, out=args.out, wasmfn_bin=args.wasmfn_bin,
        build_wasmfn=False,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    upstream_port = http_run.free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}/weather"
    upstream = subprocess.Popen(
        [sys.executable, str(BENCHES / "outbound" / "upstream.py"), str(upstream_port)],
        start_new_session=True,
    )
    time.sleep(0.5)
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "upstream": "benches/outbound/upstream.py (asyncio, one process, Connection: close)",
        "systems": {},
    }
    try:
        wanted = {name.strip() for name in args.only.split(",")}
        systems = [
            s for s in (OutboundWasmfn(workspace, upstream_url, args.wasmfn_arg),
                        OutboundIxoncdkingress(workspace, upstream_url))
            if s.name in wanted
        ]
        results["systems"] = measure_each(systems, args, workspace)
    finally:
        http_run.stop(upstream)
    return write_results(results, args.out, "outbound", markdown(results))


if __name__ == "__main__":
    sys.exit(main())
