"""Build-time warm-up calls (function.toml ``[[warmup]]``).

The bundle is a snapshot of the interpreter taken at build time, and every instance starts
from it, so whatever a function loads or computes lazily on its first call (imports inside the
function, compiled regular expressions, caches, tables, CPython's specialized bytecode) is
otherwise redone by every call. ``run`` makes the declared calls while the snapshot is taken:
their effects on module state are what every instance starts with.

A warm-up call gets the ``[config]`` values of function.toml and no caller; the document store,
object storage, the IXON API and outbound connections raise
:class:`wasmfn._buildtime.NotAtBuildTime`; what it prints or logs is dropped. A call that raises
fails the build with its traceback, unless it says ``ignore_errors = true``.
"""

import contextlib
import io
import json
import traceback
from typing import Any, Callable

from ixoncdkingress.function.api_client import ApiClient
from ixoncdkingress.function.context import FunctionContext
from ixoncdkingress.function.document_db_client import DocumentDBClient
from wasmfn import _buildtime, _dispatch
from wasmfn.objects import ObjectStorageClient


class WarmupFailed(Exception):
    """A ``[[warmup]]`` call raised; its message holds the call's traceback, then a summary
    (the build fails with it)."""


class _Unavailable:
    """A host backend for warm-up calls: every method raises NotAtBuildTime, during the
    warm-up and after it (a client a warm-up call kept at module level stays unusable)."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def unavailable(*args: Any, **kwargs: Any) -> Any:
            _buildtime.refuse(self._service)
            raise _buildtime.NotAtBuildTime(
                f"this {self._service} client was made for a build-time warm-up call and kept; "
                "take the client from each call's context"
            )

        return unavailable


def _context(config: dict) -> FunctionContext:
    return FunctionContext(
        dict(config),
        api_client=ApiClient(_Unavailable("the IXON API")),
        document_db_client=DocumentDBClient(_Unavailable("the document store"), "_space"),
        object_storage=ObjectStorageClient(_Unavailable("object storage")),
    )


def run(exposed: dict, warmup_json: str) -> int:
    """Makes the calls ``warmup_json`` lists (``{"calls": [...], "config": {...}}``); answers
    how many were made. Raises WarmupFailed for a call that raised without ignore_errors."""
    warmup = json.loads(warmup_json)
    made = 0
    _buildtime.ACTIVE = True
    try:
        for index, call in enumerate(warmup["calls"]):
            arguments = json.dumps(call["arguments"])
            for _ in range(call["repeat"]):
                made += 1
                try:
                    with contextlib.redirect_stdout(io.StringIO()), \
                            contextlib.redirect_stderr(io.StringIO()):
                        _dispatch.call(exposed, call["entry"], arguments,
                                       _context(warmup["config"]))
                except Exception as error:  # noqa: BLE001 - reported or ignored as declared
                    if call["ignore_errors"]:
                        break
                    # The call's own traceback first (the build shows its frames in the
                    # user's files), the summary last (the build's one-line error).
                    raise WarmupFailed(
                        "".join(traceback.format_exception(error))
                        + f"function.toml warmup[{index}] ({call['entry']}) raised "
                        f"{type(error).__name__}: {error} (set ignore_errors = true to build anyway)"
                    ) from None
    finally:
        _buildtime.ACTIVE = False
    return made
