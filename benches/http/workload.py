"""A benchmark function other than hello world, served by the HTTP benchmark's systems.

`Workload` names a function folder (its function.toml name and entry) and the JSON arguments
each call sends; `systems_for` gives wasmfn, ixoncdkingress, gunicorn and uvicorn set up to
serve that folder and send those arguments (POST with a JSON body, or ixoncdkingress's signed
call). The measuring loop is the HTTP benchmark's own (run.measure).
"""

import argparse
import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import run as http_run
from load import Request
from systems import Gunicorn, Ixoncdkingress, SetupError, System, Uvicorn, Wasmfn, Workspace


@dataclass
class Workload:
    function: Path        # the function folder
    name: str             # its function.toml name (wasmfn's URL)
    entry: str            # module.function
    arguments: dict       # each call's keyword arguments
    ready_text: str       # what a good answer contains
    # ixoncdkingress's call: its `context` (e.g. the company a document store belongs to) and
    # `internalConfig` (e.g. `dbConfig`).
    ingress_context: dict = field(default_factory=dict)
    ingress_internal_config: dict = field(default_factory=dict)
    # Extra environment of the CPython systems (ixoncdkingress, gunicorn, uvicorn).
    peer_env: dict = field(default_factory=dict)

    @property
    def body(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"))


def systems_for(workload: Workload, workspace: Workspace,
                wasmfn_variants: list[tuple] = ()) -> list[System]:
    """The systems of the HTTP benchmark, serving `workload` instead of hello world.

    `wasmfn_variants` ((name, label, extra `wasmfn serve` arguments[, `wasmfn build`
    arguments]), ...) replaces the one wasmfn system by several, e.g. one per document store;
    a variant with build arguments serves the bundle `wasmfn build` makes with them instead of
    the folder."""

    class WorkloadWasmfn(Wasmfn):
        ready_text = workload.ready_text
        variant_args: list[str] = []
        build_args: list[str] | None = None
        served: Path = workload.function

        def prepare(self) -> None:
            super().prepare()
            if self.build_args is not None:
                out = self.ws.cache / "wasmfn" / "bundles" / self.name
                shutil.rmtree(out, ignore_errors=True)
                self.run_step([str(self.ws.wasmfn_bin), "build", str(workload.function),
                               "--out-dir", str(out), *self.build_args],
                              f"{self.name}: wasmfn build", f"{self.name}-build.log")
                self.served = next(out.glob("*.wasm"))

        def launch(self, port: int):
            launch = super().launch(port)
            launch.argv[launch.argv.index(str(self.ws.hello_world))] = str(self.served)
            launch.argv += self.variant_args
            self.info["command"] = " ".join(launch.argv)
            return launch

        def request(self, valid_for_s: float = 0) -> Request:
            return Request("POST", f"/spaces/default/functions/{workload.name}/invoke",
                           workload.body, {"Content-Type": "application/json"})

    class WorkloadIxoncdkingress(Ixoncdkingress):
        ready_text = workload.ready_text

        def launch(self, port: int):
            launch = super().launch(port)
            launch.env["CBC_PATH"] = str(workload.function)
            launch.env.update(peer_env())
            return launch

        def request(self, valid_for_s: float = 0) -> Request:
            return self.signed(workload.entry, workload.arguments, valid_for_s,
                               context=workload.ingress_context,
                               internal_config=workload.ingress_internal_config)

    def peer_env() -> dict[str, str]:
        """`workload.peer_env`, with `{peers}` standing for benches/peers."""
        peers = str(workspace.benches / "peers")
        return {key: value.replace("{peers}", peers) for key, value in workload.peer_env.items()}

    def cpython_server(base: type) -> type:
        class WorkloadServer(base):
            ready_text = workload.ready_text

            def env(self) -> dict[str, str]:
                return {**super().env(), "BENCH_MODULE_DIR": str(workload.function),
                        "BENCH_ENTRY": workload.entry, **peer_env()}

            def request(self, valid_for_s: float = 0) -> Request:
                return Request("POST", "/", workload.body, {"Content-Type": "application/json"})

        return WorkloadServer

    wasmfns: list[System] = []
    for name, label, args, *build in wasmfn_variants or [(Wasmfn.name, Wasmfn.label, [])]:
        variant = type(f"Wasmfn_{name}", (WorkloadWasmfn,),
                       {"name": name, "label": label, "variant_args": list(args),
                        "build_args": list(build[0]) if build else None})
        wasmfns.append(variant(workspace))
    return [*wasmfns, WorkloadIxoncdkingress(workspace),
            cpython_server(Gunicorn)(workspace), cpython_server(Uvicorn)(workspace)]


def wasmfn_ab_variants(args: argparse.Namespace) -> list[tuple]:
    """wasmfn as it runs by default, and without each of the last changes, for their A/B in
    the same run as the CPython peers: with the fixed 2 MiB kept per slot of before
    (--keep-resident-max-mb 0, instead of what a slot keeps learned per function), and with the
    heap left mortal (`wasmfn build --mortal-heap`, instead of the pre-initialized objects made
    immortal)."""
    return [
        ("wasmfn", "wasmfn", []),
        ("wasmfn-fixed-2mib", "wasmfn, 2 MiB kept per slot (--keep-resident-max-mb 0)",
         ["--keep-resident-max-mb", "0"]),
        ("wasmfn-mortal-heap", "wasmfn, heap left mortal (wasmfn build --mortal-heap)",
         [], ["--mortal-heap"]),
    ]


def parse_args(description: str, connections: str, only: str,
               extra=lambda parser: None) -> argparse.Namespace:
    """The options of a one-function benchmark (benches/json, benches/outbound); `extra` adds
    its own to the parser."""
    benches = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--wasmfn-bin", type=Path,
                        default=benches.parent / "target" / "release" / "wasmfn")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up")
    parser.add_argument("--duration", type=int)
    parser.add_argument("--connections", default=connections)
    parser.add_argument("--only", default=only)
    parser.add_argument("--out", type=Path, default=benches / "out")
    extra(parser)
    args = parser.parse_args()
    args.duration = args.duration or (3 if args.quick else 10)
    args.warmup = 1 if args.quick else 2
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    return args


def measure_each(systems: list[System], args: argparse.Namespace,
                 workspace: Workspace) -> dict[str, dict]:
    """Each system measured in turn (run.measure); a system that cannot be set up gets
    {"error": ...} and the others still run."""
    results = {}
    for system in systems:
        print(f"== {system.label}", flush=True)
        try:
            system.prepare()
            result = http_run.measure(system, args, workspace)
            result["info"] = system.info
        except SetupError as error:
            print(f"  FAILED: {error}", flush=True)
            result = {"error": str(error)}
        results[system.name] = result
    return results


def write_results(results: dict, out: Path, name: str, markdown: str) -> int:
    """<out>/<name>.json and .md, the table printed; the exit code (1 if a system failed)."""
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
    return 0 if all("error" not in r for r in results["systems"].values()) else 1


def ratio_table(results: dict, title: str, base: str = "wasmfn") -> str:
    """`title`, then a table of every system's runs with `base`'s req/s over each one's at the
    same connection count."""
    lines = [
        title,
        "",
        f"| system | connections | req/s | p50 ms | p99 ms | errors | {base} req/s ÷ this |",
        "|---|---|---|---|---|---|---|",
    ]
    baseline = {run["connections"]: run["requests_per_s"]
                for run in results["systems"].get(base, {}).get("runs", [])}
    for name, result in results["systems"].items():
        for run in result.get("runs", []):
            rate = baseline.get(run["connections"])
            ratio = f"{rate / run['requests_per_s']:.2f}" if rate and run["requests_per_s"] else ""
            lines.append(
                f"| {name} | {run['connections']} | {run['requests_per_s']:,.0f} | "
                f"{run['latency_ms']['p50']:.2f} | {run['latency_ms']['p99']:.2f} | "
                f"{http_run.error_count(run)} | {ratio} |"
            )
        for failed in result.get("failed_runs", []):
            lines.append(f"| {name} | {failed['connections']} | failed: {failed['error']} "
                         "| | | | |")
        if "error" in result:
            lines.append(f"| {name} | | failed: {result['error']} | | | | |")
    return "\n".join(lines) + "\n"


def run_benchmark(name: str, description: str, workload: Workload, title: str, only: str,
                  connections: str = "1,4,16",
                  wasmfn_variants=lambda args: (),
                  extra=lambda parser: None,
                  results_extra: dict | None = None) -> int:
    """A one-function benchmark from start to end: options (`extra` adds its own), systems
    (`wasmfn_variants(args)` as in `systems_for`), measurements, then <out>/<name>.json and .md:
    the ratio table under `title`, formatted with the results' date, machine, body_bytes,
    answer_bytes (the largest answer a system gave) and `results_extra`'s fields, which the
    JSON results carry too. Returns the exit code."""
    args = parse_args(description, connections=connections, only=only, extra=extra)
    benches = Path(__file__).resolve().parent.parent
    workspace = Workspace(
        repo=benches.parent, cache=benches / ".cache", out=args.out,
        wasmfn_bin=args.wasmfn_bin, build_wasmfn=False,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "body_bytes": len(workload.body),
        **(results_extra or {}),
        "systems": {},
    }
    wanted = {system.strip() for system in args.only.split(",")}
    systems = [s for s in systems_for(workload, workspace, wasmfn_variants(args))
               if s.name in wanted]
    results["systems"] = measure_each(systems, args, workspace)
    results["answer_bytes"] = max(
        [len(r["probe_body"]) for r in results["systems"].values() if "probe_body" in r],
        default=0)
    fields = {key: value for key, value in results.items() if key not in ("machine", "systems")}
    machine = f"{results['machine']['cpus']} CPUs, {results['machine']['platform']}"
    table = ratio_table(results, title.format(machine=machine, **fields))
    return write_results(results, args.out, name, table)
