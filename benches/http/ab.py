"""A/B of two wasmfn binaries over HTTP: the hello world at a few concurrencies, the two
binaries alternating round after round on one machine, medians and B/A ratios at the end.

    python3 benches/http/ab.py A_BIN B_BIN [--rounds 3] [--duration 5] [--connections 1,16]
                               [--labels before,after]

Why alternating rounds: these machines are noisy (other tenants, frequency changes), and a
difference between two runs made minutes apart is often only that. A change that is meant to
leave performance alone (a refactor) is shown by ratios near 1 across rounds; a real change
shows in every round. Each round starts each server afresh (a new data directory, the compiled
bundle cache shared), warms it up, then runs wrk once per concurrency, as benches/http/run.py
does for one system. Needs wrk (benches/run.sh installs it).
"""

import argparse
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

from load import error_count
from run import BENCHES, machine_info, measure
from systems import SetupError, Wasmfn, Workspace


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="the first wasmfn binary (A, usually before)")
    parser.add_argument("b", type=Path, help="the second wasmfn binary (B, usually after)")
    parser.add_argument("--rounds", type=int, default=3, help="A then B, this many times")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server")
    parser.add_argument("--connections", default="1,16", help="comma-separated concurrencies")
    parser.add_argument("--labels", default="A,B", help="names of the two binaries in the table")
    parser.add_argument("--out", type=Path, default=BENCHES / "out" / "ab")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    args.labels = [label.strip() for label in args.labels.split(",")][:2]
    if len(args.labels) != 2:
        parser.error("--labels takes two names, e.g. before,after")
    if args.rounds < 1 or args.duration < 1:
        parser.error("--rounds and --duration must be at least 1")
    return args


def one_round(binary: Path, args: argparse.Namespace) -> dict[int, dict]:
    """Serves with `binary`, measures each concurrency once; by concurrency."""
    workspace = Workspace(
        repo=BENCHES.parent,
        cache=BENCHES / ".cache",
        out=args.out.resolve(),
        wasmfn_bin=binary.resolve(),
        build_wasmfn=False,
    )
    system = Wasmfn(workspace)
    system.prepare()
    result = measure(system, args, workspace)
    if result["failed_runs"]:
        raise SetupError(f"{binary}: {result['failed_runs']}")
    runs = {}
    for run in result["runs"]:
        if error_count(run):
            raise SetupError(f"{binary}: c={run['connections']} had errors: {run}")
        runs[run["connections"]] = run
    return runs


def main() -> int:
    args = parse_args()
    binaries = [args.a, args.b]
    measured: list[list[dict[int, dict]]] = [[], []]
    started = datetime.now(timezone.utc)
    for round_number in range(1, args.rounds + 1):
        for index, binary in enumerate(binaries):
            print(f"== round {round_number}/{args.rounds}: {args.labels[index]} ({binary})",
                  flush=True)
            try:
                measured[index].append(one_round(binary, args))
            except SetupError as error:
                print(f"ab: {error}", file=sys.stderr)
                return 1

    def median(index: int, connections: int, pick) -> float:
        return statistics.median(pick(r[connections]) for r in measured[index])

    rps = lambda run: run["requests_per_s"]  # noqa: E731
    p50 = lambda run: run["latency_ms"]["p50"]  # noqa: E731
    p99 = lambda run: run["latency_ms"]["p99"]  # noqa: E731
    a, b = args.labels
    print()
    print(f"HTTP hello world, wrk -d{args.duration}s, {args.rounds} alternating rounds, "
          f"medians; started {started.isoformat(timespec='minutes')}; "
          f"{machine_info().get('cpu', '')}")
    print()
    print(f"| connections | {a}: req/s, p50 / p99 ms | {b}: req/s, p50 / p99 ms | {b} ÷ {a} req/s |")
    print("|---:|---:|---:|---:|")
    for connections in args.connections:
        cells = []
        for index in (0, 1):
            cells.append(f"{median(index, connections, rps):,.0f}, "
                         f"{median(index, connections, p50):.3f} / "
                         f"{median(index, connections, p99):.3f}")
        ratio = median(1, connections, rps) / median(0, connections, rps)
        rounds = " ".join(
            f"{rps(measured[1][i][connections]) / rps(measured[0][i][connections]):.2f}"
            for i in range(args.rounds))
        print(f"| {connections} | {cells[0]} | {cells[1]} | {ratio:.2f} (rounds: {rounds}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
