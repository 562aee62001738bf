"""Hello world as a `wasi:http/proxy` component, the `wasmtime serve` peer of the HTTP benchmark.

It answers every request with the same JSON body as examples/hello-world
(`{"message": "Hello World"}`), built with the componentize-py wasmfn pins and served by
`wasmtime serve`, which makes a fresh instance for each request. The handler is synchronous
on purpose: the body fits one `blocking-write-and-flush`, so the asyncio poll loop of
componentize-py's http example would only add work that wasmfn's hello world does not do.

Build (benches/http does this at bench time):
    componentize-py -d <wasmtime-wasi-http wit> -w wasi:http/proxy@0.2.x componentize app -o app.wasm
"""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


def hello_world() -> dict:
    """The function body of examples/hello-world/functions.py."""
    return {"message": "Hello World"}


class IncomingHandler(exports.IncomingHandler):
    """The exported `wasi:http/incoming-handler`."""

    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        body = json.dumps(hello_world()).encode("utf-8")
        response = OutgoingResponse(
            Fields.from_list(
                [
                    ("content-type", b"application/json"),
                    ("content-length", str(len(body)).encode("ascii")),
                ]
            )
        )
        outgoing_body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = outgoing_body.write()
        try:
            stream.blocking_write_and_flush(body)
        except Err:
            # The client went away (wrk closes its connections when a run ends): nothing
            # left to answer, and an uncaught error would abort the instance.
            return
        # The stream is a child of the body: drop it before finishing the body.
        stream.__exit__(None, None, None)
        OutgoingBody.finish(outgoing_body, None)
