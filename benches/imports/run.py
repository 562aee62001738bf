#!/usr/bin/env python3
"""A function built on pure-Python packages from PyPI (python-dateutil, packaging): wasmfn
against ixoncdkingress, gunicorn and uvicorn (CPython, no isolation).

All serve benches/functions/imports/functions.py, whose entry parses a timestamp, expands a
recurrence rule and checks a version against a specifier. wasmfn imports the packages at build
time (the bundle starts with them loaded); the CPython servers once per worker process. One
machine, one load generator (wrk), one system at a time, in one run: the ratios are what to
read. Writes <out>/imports.json and <out>/imports.md.

    python3 benches/imports/run.py [--wasmfn-bin target/release/wasmfn] [--quick]
        [--duration S] [--connections 1,4,16] [--only wasmfn,wasmfn-fixed-2mib,wasmfn-mortal-heap,ixoncdkingress,gunicorn,uvicorn]

Usually started by `bash benches/run.sh --only imports`, which installs wrk first.
"""

import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parent.parent
# The HTTP benchmark's systems and measuring loop, reused as they are.
sys.path.insert(0, str(BENCHES / "http"))

from workload import Workload, wasmfn_ab_variants, run_benchmark  # noqa: E402


def main() -> int:
    workload = Workload(
        function=BENCHES / "functions" / "imports", name="imports-bench",
        entry="functions.schedule",
        arguments={"since": "2026-12-04T08:30:00+01:00", "firmware": "3.2.7", "every_weeks": 2},
        ready_text='"supported": true',
    )
    return run_benchmark(
        "imports", __doc__.split("\n\n")[0], workload,
        "Pure-Python packages (python-dateutil, packaging) ({date}, {machine}): per call a "
        "timestamp parsed, a weekly recurrence expanded, a version checked.",
        only="wasmfn,wasmfn-fixed-2mib,wasmfn-mortal-heap,ixoncdkingress,gunicorn,uvicorn",
        wasmfn_variants=wasmfn_ab_variants,
    )


if __name__ == "__main__":
    sys.exit(main())
