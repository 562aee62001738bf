#!/usr/bin/env python3
"""A ~100 KB JSON argument and a ~100 KB JSON answer per call: wasmfn against ixoncdkingress,
gunicorn and uvicorn (CPython, no isolation).

All serve benches/functions/json/functions.py, whose entry walks a list of readings, marks each
one and totals them per device, and answers the marked list with the totals. Each call POSTs
the same document (generated here, deterministic, ~100 KB). One machine, one load generator
(wrk), one system at a time, in one run: the ratios are what to read. Writes <out>/json.json
and <out>/json.md.

    python3 benches/json/run.py [--wasmfn-bin target/release/wasmfn] [--quick]
        [--duration S] [--connections 1,16] [--only wasmfn,wasmfn-fixed-2mib,wasmfn-mortal-heap,ixoncdkingress,gunicorn,uvicorn]

Usually started by `bash benches/run.sh --only json`, which installs wrk first.
"""

import json
import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parent.parent
# The HTTP benchmark's systems and measuring loop, reused as they are.
sys.path.insert(0, str(BENCHES / "http"))

from workload import Workload, wasmfn_ab_variants, run_benchmark  # noqa: E402

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


def main() -> int:
    workload = Workload(
        function=BENCHES / "functions" / "json", name="json-bench",
        entry="functions.summarise", arguments={"readings": readings()},
        ready_text='"devices"',
    )
    return run_benchmark(
        "json", __doc__.split("\n\n")[0], workload,
        "JSON in and out ({date}, {machine}): each call POSTs {body_bytes:,} bytes of JSON "
        "({readings} readings) and gets {answer_bytes:,} back.",
        only="wasmfn,wasmfn-fixed-2mib,wasmfn-mortal-heap,ixoncdkingress,gunicorn,uvicorn",
        wasmfn_variants=wasmfn_ab_variants,
        results_extra={"readings": len(workload.arguments["readings"])},
    )


if __name__ == "__main__":
    sys.exit(main())
