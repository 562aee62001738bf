#!/usr/bin/env python3
"""A ~100 KB JSON argument and a ~100 KB JSON answer per call: wasmfn against ixoncdkingress,
gunicorn and uvicorn (CPython, no isolation).

All serve benches/functions/json/functions.py, whose entry walks a list of readings, marks each
one and totals them per device, and answers the marked list with the totals. Each call POSTs
the same document (generated here, deterministic, ~100 KB). One machine, one load generator
(wrk), one system at a time, in one run: the ratios are what to read. Writes <out>/json.json
and <out>/json.md.

    python3 benches/json/run.py [--wasmfn-bin target/release/wasmfn] [--quick]
        [--duration S] [--connections 1,16] [--only wasmfn,ixoncdkingress,gunicorn,uvicorn]

Usually started by `bash benches/run.sh --only json`, which installs wrk first.
"""

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

BENCHES = Path(__file__).resolve().parent.parent
# The HTTP benchmark's systems and measuring loop, reused as they are.
sys.path.insert(0, str(BENCHES / "http"))

from systems import Workspace  # noqa: E402
from workload import (  # noqa: E402
    Workload, measure_each, parse_args, ratio_table, systems_for, write_results)

# ixoncdkingress's signer takes the arguments on its command line, where one argument may be at
# most 128 KiB (Linux's MAX_ARG_STRLEN): the document stays just under 100 KB.
TARGET_BYTES = 100_000


def readings() -> list[dict]:
    """Deterministic readings of 20 devices, as many as fit in TARGET_BYTES of JSON."""
    items: list[dict] = []
    size = 2
    index = 0
    while True:
        item = {"device": f"plc-{index % 20:02d}", "sensor": f"temperature-{index % 7}",
                "at": f"2026-12-04T{index // 3600 % 24:02d}:{index // 60 % 60:02d}:"
                      f"{index % 60:02d}Z", "value": round((index * 37 % 1000) / 10, 1)}
        item_size = len(json.dumps(item, separators=(",", ":"))) + 1
        if size + item_size > TARGET_BYTES - 20:
            return items
        items.append(item)
        size += item_size
        index += 1


def markdown(results: dict) -> str:
    return ratio_table(
        results,
        f"JSON in and out ({results['date']}, {results['machine']['cpus']} CPUs, "
        f"{results['machine']['platform']}): each call POSTs {results['body_bytes']:,} bytes of "
        f"JSON ({results['readings']} readings) and gets {results['answer_bytes']:,} back.")


def main() -> int:
    args = parse_args(__doc__.split("\n\n")[0], connections="1,4,16",
                      only="wasmfn,ixoncdkingress,gunicorn,uvicorn")
    workspace = Workspace(
        repo=BENCHES.parent, cache=BENCHES / ".cache", out=args.out,
        wasmfn_bin=args.wasmfn_bin, build_wasmfn=False,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    workload = Workload(
        function=BENCHES / "functions" / "json", name="json-bench",
        entry="functions.summarise", arguments={"readings": readings()},
        ready_text='"devices"',
    )
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "body_bytes": len(workload.body),
        "readings": len(workload.arguments["readings"]),
        "answer_bytes": 0,
        "systems": {},
    }
    wanted = {name.strip() for name in args.only.split(",")}
    systems = [s for s in systems_for(workload, workspace) if s.name in wanted]
    results["systems"] = measure_each(systems, args, workspace)
    results["answer_bytes"] = max(
        [len(r["probe_body"]) for r in results["systems"].values() if "probe_body" in r],
        default=0)
    return write_results(results, args.out, "json", markdown(results))


if __name__ == "__main__":
    sys.exit(main())
