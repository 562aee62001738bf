"""benches/outbound: each call fetches JSON from `upstream` with requests, as a function that
fronts a REST service does. The same file runs in wasmfn and in ixoncdkingress (CPython)."""

import requests
from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def call_upstream(context: FunctionContext, upstream: str = "", **kwargs):
    answer = requests.get(upstream, timeout=5)
    answer.raise_for_status()
    return {"message": "Hello World", "upstream": answer.json()}
