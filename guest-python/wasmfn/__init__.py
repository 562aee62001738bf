"""The wasmfn guest package: what a function can use beyond the IXON-compatible context.

``Response`` lets a function choose its status, headers and body; ``Request`` is the
HTTP-like request that triggered the call (available as ``context.request``).
"""

from wasmfn._http import Request, Response

__all__ = ["Request", "Response"]
