"""The hello-world function behind a production Python server, with no isolation.

The "what a Python team would deploy" peer of the HTTP benchmark: `wsgi` for gunicorn and
`asgi` for uvicorn. Each worker process imports the functions module once; every request builds
a `FunctionContext`, passes the JSON body (if any) as keyword arguments, as ixoncdkingress does,
and answers with the function's result as JSON. Calls share the worker's interpreter: module
state, caches and anything a call leaves behind are seen by the next call.

The function and the SDK are named by environment variables, so one file serves every
benchmark function:
    BENCH_MODULE_DIR   folder holding the functions module (e.g. examples/hello-world)
    BENCH_SDK_DIR      folder holding the `ixoncdkingress` package (wasmfn's guest-python/)
    BENCH_ENTRY        module.function (e.g. functions.hello_world)
    BENCH_DOCUMENTS    `mongomock`: `context.document_db_client` is an in-memory mongomock
                       collection, one per worker process (benches/documents)
"""

import importlib
import json
import os
import sys

sys.path[:0] = [os.environ["BENCH_MODULE_DIR"], os.environ["BENCH_SDK_DIR"]]

from ixoncdkingress.function.context import FunctionContext  # noqa: E402

if os.environ.get("BENCH_DOCUMENTS") == "mongomock":
    # benches/documents: no wasmfn host here, so the document store is mongomock's in-memory
    # collection, one per worker process, shared by its calls (BENCH_DOCUMENTS=mongomock).
    import mongomock

    _COLLECTION = mongomock.MongoClient()["bench"]["documents"]
    FunctionContext.document_db_client = property(lambda self: _COLLECTION)

_module_name, _, _function_name = os.environ["BENCH_ENTRY"].rpartition(".")
FUNCTION = getattr(importlib.import_module(_module_name or "functions"), _function_name)
if not getattr(FUNCTION, "exposed", False):
    raise SystemExit(f"{os.environ['BENCH_ENTRY']} is not an exposed function")


def call(body: bytes) -> tuple[int, bytes]:
    """Runs the function for one request body: (status, JSON answer)."""
    try:
        arguments = json.loads(body) if body.strip() else {}
    except ValueError:
        return 400, b'{"error": "the request body is not JSON"}'
    if not isinstance(arguments, dict):
        return 400, b'{"error": "the request body must be a JSON object"}'
    try:
        result = FUNCTION(FunctionContext({}), **arguments)
    except Exception as error:  # the function's own failure: a 500, as the platform answers
        return 500, json.dumps({"error": type(error).__name__}).encode()
    return 200, json.dumps(result).encode()


def wsgi(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    status, answer = call(body)
    start_response(
        f"{status} {'OK' if status == 200 else 'Error'}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))],
    )
    return [answer]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    # The function is synchronous, as IXON functions are: it runs on the event loop, as a
    # plain `def` view does in an ASGI app without a thread pool.
    status, answer = call(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode())],
    })
    await send({"type": "http.response.body", "body": answer})

