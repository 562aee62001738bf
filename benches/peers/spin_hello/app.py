"""Hello world as a Spin HTTP component, the Spin peer of the HTTP benchmark.

It answers every request with the same JSON body as examples/hello-world
(`{"message": "Hello World"}`), written the way the spin-sdk 4.0.0 documentation writes a
handler, and served by `spin up`, which makes a fresh instance for each request.

Build (benches/http does this at bench time, with componentize-py and spin-sdk pinned in
requirements.txt):
    componentize-py -w spin:up/http-trigger@4.0.0 componentize app -o app.wasm
"""

import json

from spin_sdk import http
from spin_sdk.http import Request, Response


def hello_world() -> dict:
    """The function body of examples/hello-world/functions.py."""
    return {"message": "Hello World"}


class HttpHandler(http.Handler):
    """The exported `wasi:http/handler`."""

    async def handle_request(self, request: Request) -> Response:
        body = json.dumps(hello_world()).encode("utf-8")
        return Response(200, {"content-type": "application/json"}, body)
