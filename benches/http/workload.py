"""A benchmark function other than hello world, served by the HTTP benchmark's systems.

`Workload` names a function folder (its function.toml name and entry) and the JSON arguments
each call sends; `systems_for` gives wasmfn, ixoncdkingress, gunicorn and uvicorn set up to
serve that folder and send those arguments (POST with a JSON body, or ixoncdkingress's signed
call). The measuring loop is the HTTP benchmark's own (run.measure).
"""

import argparse
import json
from dataclasses import dataclass
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

    @property
    def body(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"))


def systems_for(workload: Workload, workspace: Workspace,
                wasmfn_args: list[str] = ()) -> list[System]:
    """The systems of the HTTP benchmark, serving `workload` instead of hello world."""

    class WorkloadWasmfn(Wasmfn):
        ready_text = workload.ready_text

        def launch(self, port: int):
            launch = super().launch(port)
            launch.argv[launch.argv.index(str(self.ws.hello_world))] = str(workload.function)
            launch.argv += list(wasmfn_args)
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
            return launch

        def request(self, valid_for_s: float = 0) -> Request:
            return self.signed(workload.entry, workload.arguments, valid_for_s)

    def cpython_server(base: type) -> type:
        class WorkloadServer(base):
            ready_text = workload.ready_text

            def env(self) -> dict[str, str]:
                return {**super().env(), "BENCH_MODULE_DIR": str(workload.function),
                        "BENCH_ENTRY": workload.entry}

            def request(self, valid_for_s: float = 0) -> Request:
                return Request("POST", "/", workload.body, {"Content-Type": "application/json"})

        return WorkloadServer

    return [WorkloadWasmfn(workspace), WorkloadIxoncdkingress(workspace),
            cpython_server(Gunicorn)(workspace), cpython_server(Uvicorn)(workspace)]


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
