#!/usr/bin/env python3
"""A function using the document store on every call, as a maintenance logbook app does:
wasmfn on its embedded store (sled) and on PostgreSQL, against ixoncdkingress, gunicorn and
uvicorn (CPython, no isolation) on mongomock (in memory).

All serve benches/functions/logbook/functions.py: each call reads three of 200 logbooks with a
`find` by `$in`, appends a note with `$push` (`$each`, `$slice`) and marks it with a positional
update (`notes.$.status`). The store seeds itself on the first calls. One machine, one load
generator (wrk), one system at a time, in one run: the ratios are what to read. Writes
<out>/documents.json and <out>/documents.md.

    python3 benches/documents/run.py [--wasmfn-bin target/release/wasmfn] [--quick]
        [--duration S] [--connections 1,4,16] [--postgres URL]
        [--only wasmfn,wasmfn-postgres,ixoncdkingress,gunicorn,uvicorn]

Usually started by `bash benches/run.sh --only documents`, which installs wrk first. PostgreSQL
must answer at the URL (default: this machine's, database `test`; scripts/setup-postgres.sh
starts it).
"""

import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parent.parent
# The HTTP benchmark's systems and measuring loop, reused as they are.
sys.path.insert(0, str(BENCHES / "http"))

from workload import Workload, run_benchmark  # noqa: E402

POSTGRES = "postgres://postgres@127.0.0.1:5432/test"


def main() -> int:
    workload = Workload(
        function=BENCHES / "functions" / "logbook", name="logbook-bench",
        entry="functions.add_note", arguments={"text": "replaced the filter of pump 3"},
        ready_text='"marked": 1',
        # ixoncdkingress: the store is the company's, configured per call (`dbConfig`);
        # peers/mongomock_store makes its MongoClient an in-memory one.
        ingress_context={"company": {"publicId": "bench-company", "name": "Bench",
                                     "custom": {}}},
        ingress_internal_config={"dbConfig": {"uri": "mongodb://bench.invalid",
                                              "username": "bench", "password": "bench"}},
        peer_env={"BENCH_DOCUMENTS": "mongomock", "PYTHONPATH": "{peers}/mongomock_store"},
    )
    return run_benchmark(
        "documents", __doc__.split("\n\n")[0], workload,
        "Document store, the logbook pattern ({date}, {machine}): per call a `find` by `$in` "
        "of 3 of 200 logbooks, a `$push` of a note, a positional update.",
        only="wasmfn,wasmfn-postgres,ixoncdkingress,gunicorn,uvicorn",
        wasmfn_variants=lambda args: [
            ("wasmfn", "wasmfn (sled, embedded)", []),
            ("wasmfn-postgres", "wasmfn (PostgreSQL)", ["--document-store", args.postgres]),
        ],
        extra=lambda parser: parser.add_argument(
            "--postgres", default=POSTGRES, help="the PostgreSQL URL of wasmfn-postgres"),
    )


if __name__ == "__main__":
    sys.exit(main())
