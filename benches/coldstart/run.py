#!/usr/bin/env python3
"""Cold start of a function a node has never seen, for each example: the breakdown, plotted.

For every folder of examples/ with a function.toml, `wasmfn bench` (in process, a scratch
compiled cache, so nothing is cached) times what a node does with a new bundle:

  read       read the bundle and hash it (sha256: the key of its version and compiled code)
  Winch      compile it with the baseline tier, which serves the first calls
  first call a fresh instance of Winch's code and its first call (what the first caller waits
             for after the compile)
  Cranelift  compile it with the optimising tier and write the .cwasm (in the background, while
             Winch's code serves)
  load, instantiate, first call
             Cranelift's code from the cache, a fresh instance, its first call (every later
             cold start of the function on this node)

The bundle is built first if it is missing or stale (`wasmfn build`; not timed: the build
happens on the developer's machine). Writes <out>/coldstart.json, <out>/coldstart.md and
benches/plots/coldstart.png (when matplotlib is importable).

    python3 benches/coldstart/run.py --wasmfn target/release/wasmfn --out benches/out [--runs N]
        [--examples hello-world,counter]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLOTS = REPO / "benches" / "plots"

# (wasmfn bench step, short name): the path to the first response, then Cranelift's.
FIRST_RESPONSE = [
    ("read the bundle + sha256", "read"),
    ("baseline tier: compile (Winch)", "compile (Winch)"),
    ("baseline tier: instantiate + first call", "instantiate + first call"),
]
OPTIMIZED = [
    ("first compile (Cranelift) + write .cwasm", "compile (Cranelift) + write"),
    ("load from the compiled cache (mmap)", "load"),
    ("instantiate a fresh instance", "instantiate"),
    ("first call on the fresh instance", "first call"),
]


def examples(names: str | None) -> list[Path]:
    found = sorted(p.parent for p in (REPO / "examples").glob("*/function.toml"))
    if names:
        wanted = {n.strip() for n in names.split(",") if n.strip()}
        missing = wanted - {p.name for p in found}
        if missing:
            sys.exit(f"coldstart: no example named {', '.join(sorted(missing))}")
        found = [p for p in found if p.name in wanted]
    return found


def bench(wasmfn: Path, example: Path, runs: int) -> dict:
    """`wasmfn bench EXAMPLE --json`: compiles `runs` times, instantiates 20 times."""
    # --allow-function-errors: `bench` calls without arguments and runs functions without the
    # document store, objects or the IXON API; a call of an example that needs one ends there
    # (the cold start before it, compile and instantiate, is the same).
    argv = [str(wasmfn), "bench", str(example), "--builds", "0", "--compiles", str(runs),
            "--runs", "20", "--seconds", "0", "--live", "0", "--allow-function-errors", "--json"]
    print(f"  $ {' '.join(argv[1:])}", flush=True)
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wasmfn bench {example.name} failed: {done.stderr.strip()[-800:]}")
    # The build (if stale) prints progress before the JSON report.
    report = json.loads(done.stdout[done.stdout.index("{"):])
    steps = {step["step"]: step for step in report["steps"]}
    missing = [name for name, _ in FIRST_RESPONSE + OPTIMIZED if name not in steps]
    if missing:
        raise RuntimeError(f"wasmfn bench {example.name}: no step {missing}")
    return {
        "bundle_mb": round(report["bundle_bytes"] / 1e6, 1),
        "sha256": report["sha256"],
        "p50_ms": {short: steps[name]["p50_ms"] for name, short in FIRST_RESPONSE + OPTIMIZED},
        "n": {short: steps[name]["n"] for name, short in FIRST_RESPONSE + OPTIMIZED},
    }


def markdown(results: dict) -> str:
    first = [short for _, short in FIRST_RESPONSE]
    optimized = [short for _, short in OPTIMIZED]
    lines = [
        f"Cold start of a new function, per example ({results['date']}, {results['machine']}; "
        f"p50 of {results['runs']} compiles and 20 instantiations each, ms)",
        "",
        "| example | MB | " + " | ".join(first) + " | **first response** | "
        + " | ".join(optimized) + " | **Cranelift's code serving** |",
        "|---|---:|" + "---:|" * (len(first) + len(optimized) + 2),
    ]
    for name, result in results["examples"].items():
        if "error" in result:
            lines.append(f"| {name} | failed: {result['error']} |")
            continue
        p50 = result["p50_ms"]
        cells = [f"{p50[s]:,.1f}" for s in first] + [f"**{result['first_response_ms']:,.0f}**"]
        cells += [f"{p50[s]:,.2f}" if p50[s] < 10 else f"{p50[s]:,.0f}" for s in optimized]
        cells += [f"**{result['optimized_ms']:,.0f}**"]
        lines.append(f"| {name} | {result['bundle_mb']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "`wasmfn bench` calls with no arguments and gives functions no document store, objects "
        "or IXON API: the first call of an example that needs one ends there "
        "(--allow-function-errors; counter, file-store, ixon-agents, mqtt-telemetry), so it is "
        "shorter than in a server. "
        "First response = read + compile (Winch) + instantiate + first call. Cranelift's code "
        "serving = read + compile (Cranelift) + load + instantiate + first call (it compiles in "
        "the background while Winch's code serves). A later cold start on the same node: load + "
        "instantiate + first call.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("coldstart: matplotlib is not importable; no plot", file=sys.stderr)
        return False
    names = [n for n, r in results["examples"].items() if "error" not in r]
    if not names:
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 2.2 + 0.9 * len(names)))
    for axis, steps, title in (
        (top, FIRST_RESPONSE, "to the first response (baseline tier: Winch)"),
        (bottom, FIRST_RESPONSE[:1] + OPTIMIZED,
         "to a response from Cranelift's code (compiled in the background)"),
    ):
        left = [0.0] * len(names)
        for _, short in steps:
            widths = [results["examples"][n]["p50_ms"][short] for n in names]
            axis.barh(names, widths, left=left, label=short)
            left = [a + b for a, b in zip(left, widths)]
        for y, total in enumerate(left):
            axis.text(total, y, f" {total:,.0f} ms", va="center", fontsize=8)
        axis.set_title(f"Cold start of a new function, {title}", fontsize=10)
        axis.set_xlabel("ms (p50)")
        axis.set_xlim(0, max(left) * 1.18)
        axis.invert_yaxis()
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"wasmfn, {results['machine']}, {results['date'][:10]}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasmfn", type=Path, default=REPO / "target" / "release" / "wasmfn")
    parser.add_argument("--out", type=Path, default=REPO / "benches" / "out")
    parser.add_argument("--runs", type=int, default=3, help="compiles per example (default 3)")
    parser.add_argument("--examples", help="comma-separated example names (default: all)")
    args = parser.parse_args()
    if not os.access(args.wasmfn, os.X_OK):
        sys.exit(f"coldstart: no wasmfn binary at {args.wasmfn}; "
                 "build it with `cargo build --release --bin wasmfn`")
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "runs": args.runs,
        "examples": {},
    }
    status = 0
    for example in examples(args.examples):
        print(f"== {example.name}", flush=True)
        try:
            result = bench(args.wasmfn, example, max(1, args.runs))
        except (RuntimeError, ValueError) as error:
            print(f"  FAILED: {error}", flush=True)
            results["examples"][example.name] = {"error": str(error).splitlines()[0][:200]}
            status = 1
            continue
        p50 = result["p50_ms"]
        result["first_response_ms"] = sum(p50[s] for _, s in FIRST_RESPONSE)
        result["optimized_ms"] = p50["read"] + sum(p50[short] for _, short in OPTIMIZED)
        results["examples"][example.name] = result
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "coldstart.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (args.out / "coldstart.md").write_text(table)
    print(table)
    if plot(results, PLOTS / "coldstart.png"):
        print(f"plot: {PLOTS / 'coldstart.png'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
