"""The storage benchmark's function: each entry performs `n` document store or object storage
operations in one invocation, so the driver (benches/storage/run.py) can tell the cost of an
operation from the cost of an invocation.

Every entry answers {"op": ..., "n": n, "done": done}, with status 500 when done < n: wrk only
counts status codes, so a partial result must show up as an error there.
"""

import random

from ixoncdkingress.function.context import FunctionContext
from pymongo.errors import BulkWriteError
from wasmfn import Response

DEFAULT_N = 20
# Keeps one invocation well inside the default 10 s timeout even with an fsync per write.
MAX_N = 200

SEED_DOCUMENTS = 1000
SEED_OBJECTS = 64
# `put` rewrites a bounded set of keys, so a long run does not fill the disk with files.
PUT_KEYS = 256
OBJECT_BYTES = bytes(range(256)) * 4  # 1 KiB
TEXT = "benchmark document " * 4


def _count(n) -> int | None:
    """`n` from the query string (a str) or a JSON body (an int), clamped to 1..MAX_N; None
    when it is not an integer."""
    try:
        return max(1, min(int(n), MAX_N))
    except (TypeError, ValueError):
        return None


def _bad_n(n):
    return Response({"error": f"n must be an integer, not {n!r}"}, status=400)


def _seed_id(index: int) -> str:
    return f"seed-{index:05d}"


def _seed_key(index: int) -> str:
    return f"bench/seed/{index:03d}"


def _result(op: str, n: int, done: int):
    body = {"op": op, "n": n, "done": done}
    return body if done == n else Response(body, status=500)


@FunctionContext.expose
def setup(context: FunctionContext, **kwargs):
    """Seeds SEED_DOCUMENTS documents and SEED_OBJECTS objects; safe to call again."""
    db = context.document_db_client
    if db.count_documents({"kind": "seed"}) != SEED_DOCUMENTS:
        db.delete_many({"kind": "seed"})
        seeds = [{"_id": _seed_id(i), "kind": "seed", "count": 0, "text": TEXT}
                 for i in range(SEED_DOCUMENTS)]
        try:
            db.insert_many(seeds)
        except BulkWriteError as error:
            return Response({"error": f"seeding failed: {error.details}"}, status=500)
    storage = context.object_storage
    for i in range(SEED_OBJECTS):
        storage.put(_seed_key(i), OBJECT_BYTES, content_type="application/octet-stream")
    return {"documents": db.count_documents({"kind": "seed"}), "objects": SEED_OBJECTS}


def _repeat(op: str, n, once):
    """Runs `once(i)` `n` times; each run counts as done by what it returns (True or a count)."""
    count = _count(n)
    if count is None:
        return _bad_n(n)
    done = sum(int(once(i)) for i in range(count))
    return _result(op, count, done)


@FunctionContext.expose
def noop(context: FunctionContext, n=DEFAULT_N, **kwargs):
    """No storage operation at all: the cost of the invocation itself, the others' baseline."""
    return _repeat("noop", n, lambda i: True)


@FunctionContext.expose
def insert(context: FunctionContext, n=DEFAULT_N, **kwargs):
    """`n` × insert_one of a new document (its `_id` a new ObjectId)."""
    db = context.document_db_client
    return _repeat("insert", n, lambda i: db.insert_one(
        {"kind": "bench", "i": i, "text": TEXT}).inserted_id is not None)


@FunctionContext.expose
def find(context: FunctionContext, n=DEFAULT_N, **kwargs):
    """`n` × find_one by `_id` of a random seeded document."""
    db = context.document_db_client
    return _repeat("find", n, lambda i: db.find_one(
        {"_id": _seed_id(random.randrange(SEED_DOCUMENTS))}) is not None)


@FunctionContext.expose
def update(context: FunctionContext, n=DEFAULT_N, **kwargs):
    """`n` × update_one with `$inc` of a random seeded document."""
    db = context.document_db_client
    return _repeat("update", n, lambda i: db.update_one(
        {"_id": _seed_id(random.randrange(SEED_DOCUMENTS))},
        {"$inc": {"count": 1}}).modified_count)


@FunctionContext.expose
def put(context: FunctionContext, n=DEFAULT_N, **kwargs):
    """`n` × put of a 1 KiB object, each over a random one of PUT_KEYS keys."""
    storage = context.object_storage
    return _repeat("put", n, lambda i: storage.put(
        f"bench/put/{random.randrange(PUT_KEYS):03d}", OBJECT_BYTES,
        content_type="application/octet-stream").size == len(OBJECT_BYTES))


@FunctionContext.expose
def get(context: FunctionContext, n=DEFAULT_N, **kwargs):
    """`n` × get of a random seeded 1 KiB object."""
    storage = context.object_storage
    return _repeat("get", n, lambda i: storage.get(
        _seed_key(random.randrange(SEED_OBJECTS))).data == OBJECT_BYTES)


@FunctionContext.expose
def stats(context: FunctionContext, **kwargs):
    """What the benchmark wrote: inserted documents and the sum of the seeded counters."""
    db = context.document_db_client
    increments = sum(doc.get("count", 0)
                     for doc in db.find({"kind": "seed"}, projection={"count": 1}))
    return {"inserted": db.count_documents({"kind": "bench"}), "increments": increments}
