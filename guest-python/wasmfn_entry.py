"""The module componentize-py compiles: it imports the user's modules once, at build time
(the initialised interpreter is snapshotted, so imports cost nothing per call), and exports
the `handler` interface that dispatches each invocation to an exposed function."""

import base64
import gc
import importlib
import json
import logging
import os
import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log as host_log
from wit_world.imports import response_body as host_body
from wit_world.imports import wasmfn_platform_types as types

import _wasmfn_manifest
from ixoncdkingress.function.context import FunctionContext, FunctionResource
from ixoncdkingress.function.api_client import ApiClient
from ixoncdkingress.function.document_db_client import DocumentDBClient
from wasmfn import _agent_tools, _backends, _buildtime, _dispatch, _heap, _modules, _reseed, _sources, _warmup, outbound
from wasmfn.objects import ObjectStorageClient
from wasmfn._http import Request

# http.client, urllib.request and requests send through the host from the first import on.
outbound.install()

_dispatch.SOURCE_ROOTS[:] = [(f'File "{mount}/', f'File "{shown}') for mount, shown in _wasmfn_manifest.SOURCE_ROOTS]

# Loaded now, the standard-library modules functions commonly import lazily and the
# requirements' top-level packages cost a call nothing; anything else a call imports comes from
# the bundle's sources (`_sources`).
_dispatch.preload(_dispatch.STDLIB_PRELOAD + _wasmfn_manifest.REQUIREMENTS)

MODULES, IMPORT_ISSUES = _modules.import_all(_wasmfn_manifest.MODULES)
_blocking = _modules.build_failure(IMPORT_ISSUES, _wasmfn_manifest.EXPOSING)
if _blocking is not None:
    # A module with exposed functions cannot be imported: fail the build, not the calls.
    raise _blocking


def _exposed(modules: dict, searched: list[str]) -> dict:
    """The exposed functions of the user's ``modules``; raises when there is none."""
    exposed = {}
    for name, module in modules.items():
        if _modules.is_users(module, _wasmfn_manifest.USER_ROOTS):
            exposed.update(_dispatch.exposed_in(name, module))
    if not exposed:
        raise SystemExit(
            "wasmfn: no exposed function found: decorate at least one function with "
            "@FunctionContext.expose (searched modules: " + ", ".join(searched) + ")"
        )
    return exposed


EXPOSED = _exposed(MODULES, _wasmfn_manifest.MODULES)
AGENT_TOOLS = _agent_tools.AgentTools(MODULES, IMPORT_ISSUES)
outbound.warm()

# `wasmfn dev` reloads an edit that leaves function.toml and the requirements alone without a
# build: each call gets the folder's current sources under this configuration key (last), and
# imports them over the ones built into the bundle. The NUL keeps the key out of anyone's reach.
_DEV_SOURCES_KEY = "\x00wasmfn-dev-sources"
# With dev sources, this entry answers the entries they expose (the host's check of an edit).
_DEV_ENTRIES = "wasmfn-dev-entries"


def _reload_dev_sources(payload: str) -> None:
    """Replaces the user's files in the source archive with ``payload``'s (JSON: ``files`` as
    ``[archive path, base64]`` pairs, ``modules`` and ``exposing`` as the build lists them),
    forgets the user's modules imported at build time and imports the new ones, as a build
    would."""
    global MODULES, IMPORT_ISSUES, EXPOSED, AGENT_TOOLS
    sources = json.loads(payload)
    roots = tuple(root.rstrip("/") + "/" for root in _wasmfn_manifest.USER_ROOTS)
    for path in [path for path in _ARCHIVE.files if path.startswith(roots)]:
        del _ARCHIVE.files[path]
    for path, data in sources["files"]:
        _ARCHIVE.add(path, base64.b64decode(data))
    for name, module in list(sys.modules.items()):
        if module is not None and _modules.is_users(module, _wasmfn_manifest.USER_ROOTS):
            del sys.modules[name]
    # Folders that are new since the build get a finder.
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    MODULES, IMPORT_ISSUES = _modules.import_all(sources["modules"])
    blocking = _modules.build_failure(IMPORT_ISSUES, sources["exposing"])
    if blocking is not None:
        raise blocking
    EXPOSED = _exposed(MODULES, sources["modules"])
    AGENT_TOOLS = _agent_tools.AgentTools(MODULES, IMPORT_ISSUES)

_LEVELS = {
    logging.DEBUG: host_log.Level.DEBUG,
    logging.INFO: host_log.Level.INFO,
    logging.WARNING: host_log.Level.WARNING,
}


class _HostLogHandler(logging.Handler):
    """Sends Python `logging` records to the host's log interface."""

    def emit(self, record: logging.LogRecord) -> None:
        if _buildtime.ACTIVE:
            return  # a build-time warm-up call: no host to log to
        level = _LEVELS.get(record.levelno, host_log.Level.ERROR)
        host_log.log(level, self.format(record))


_root = logging.getLogger()
_root.addHandler(_HostLogHandler())
_root.setLevel(logging.INFO)


def _resource(value: types.FunctionResource | None) -> FunctionResource | None:
    if value is None:
        return None
    try:
        custom = json.loads(value.custom_properties) if value.custom_properties else {}
    except ValueError:
        custom = {}
    permissions = None if value.permissions is None else set(value.permissions)
    return FunctionResource(value.public_id, value.name, custom, permissions)


def _context(inv: types.Invocation) -> FunctionContext:
    caller = inv.caller
    request = Request(
        inv.request.method,
        inv.request.path,
        inv.request.query,
        inv.request.headers,
        inv.request.body,
        inv.trigger,
    )
    company = _resource(caller.company)
    application = _resource(caller.api_application)
    return FunctionContext(
        {key: json.loads(value) for key, value in inv.config},
        api_client=ApiClient(
            _backends.IXON_API,
            api_application=application.public_id if application else None,
            api_company=company.public_id if company else None,
        ),
        user=_resource(caller.user),
        company=company,
        asset=_resource(caller.asset),
        agent=_resource(caller.agent),
        template=_resource(caller.template),
        request=request,
        document_db_client=DocumentDBClient(_backends.DOCUMENTS, company.public_id if company else "_space"),
        object_storage=ObjectStorageClient(_backends.OBJECTS),
    )


# The body goes to the host in pieces of at most 1 MiB: the host checks each piece's length
# before it copies it, so it never holds more than the function's `max_response_bytes`.
_PIECE = 1 << 20


def _write_body(body: bytes) -> None:
    if _buildtime.ACTIVE:
        return  # the platform's build-time warm-up (`_warm_platform`): no host to write to
    try:
        if len(body) <= _PIECE:
            if body:
                host_body.write(body)
            return
        for start in range(0, len(body), _PIECE):
            host_body.write(body[start : start + _PIECE])
    except Err as refused:
        raise _dispatch.ResponseTooLarge(refused.value) from None


class Handler(exports.Handler):
    def entries(self) -> list[str]:
        return sorted(EXPOSED)

    def handle(self, inv: types.Invocation) -> types.Response:
        limit = inv.max_response_bytes
        try:
            if inv.config and inv.config[-1][0] == _DEV_SOURCES_KEY:
                _reload_dev_sources(inv.config.pop()[1])
                if inv.entry == _DEV_ENTRIES:
                    response = _dispatch.render(sorted(EXPOSED), limit)
                    _write_body(response.body)
                    return types.Response(response.status, response.headers)
            reserved = AGENT_TOOLS.answer(inv.entry)
            if reserved is not None:
                response = _dispatch.render(reserved, limit)
            else:
                response = _dispatch.call(EXPOSED, inv.entry, inv.arguments, _context(inv), limit)
            _write_body(response.body)
        except _dispatch.NotFound as error:
            raise Err(types.FunctionError_NotFound(str(error)))
        except _dispatch.BadArguments as error:
            raise Err(types.FunctionError_BadArguments(str(error)))
        except _dispatch.ResponseTooLarge as error:
            raise Err(types.FunctionError_ResponseTooLarge(error.size))
        except BaseException as error:  # noqa: BLE001 - every escape becomes a typed error
            described = _dispatch.describe(error)
            sys.stderr.write(described.traceback)
            raise Err(
                types.FunctionError_Exception(
                    types.ExceptionInfo(described.type_name, described.message, described.traceback)
                )
            )
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return types.Response(response.status, response.headers)


# Last, so that nothing after it reads the build-time folders: from here on, imports read the
# bundle's own copy of the sources (the running instance has no filesystem).
# componentize-py mounts the standard library's files at /python (module `__file__`s say
# /python/lib/python3.14, where no file is): take the path entry that holds them.
_STDLIB = next(p for p in sys.path if os.path.isfile(os.path.join(p, "os.py")))
_ARCHIVE = _sources.capture(
    [mount for mount, _ in _wasmfn_manifest.SOURCE_ROOTS] + ["/world", "/bundled", _STDLIB],
    [_STDLIB],
)
_sources.install(_ARCHIVE)

# function.toml's [[warmup]] calls, so that what they load and cache is in the snapshot; before
# `_reseed`, so that random numbers they draw do not stand for the instance's first ones.
_warmup.run(EXPOSED, _wasmfn_manifest.WARMUP_JSON)

_PLATFORM_ENTRY = "wasmfn.platform-warm-up"


def _platform_function(context: FunctionContext, **kwargs: object) -> dict:
    return {"message": "warm", "arguments": sorted(kwargs)}


def _warm_platform() -> None:
    """The path every call takes (`Handler.handle`: the invocation record read into a
    FunctionContext, the dispatch, the answer rendered as JSON) made a few times at build time,
    on a function of the platform's own. Every call is its instance's first, from the snapshot:
    without this each one would run that path's bytecode for the first time, and CPython would
    specialize it there and then, writing into the code objects of the SDK and the standard
    library (a hello world's call wrote ~100 KiB more of the memory image; benches/RESULTS.md,
    2026-12-07). Nothing of the user's runs here (function.toml's [[warmup]] calls do that),
    nothing reaches a host (`_buildtime.ACTIVE`: the body is not written, logs are dropped)."""
    global EXPOSED
    users = EXPOSED
    EXPOSED = {_PLATFORM_ENTRY: _platform_function}
    _buildtime.ACTIVE = True
    try:
        _warm_handle()
    finally:
        _buildtime.ACTIVE = False
        EXPOSED = users


def _warm_handle() -> None:
    handler = Handler()
    nobody = types.Caller(None, None, None, None, None, None)
    for method, arguments in (("GET", "{}"), ("POST", '{"a": 1, "b": "c"}')) * 2:
        invocation = types.Invocation(
            "",
            _PLATFORM_ENTRY,
            arguments,
            types.Request(method, "/", [], [("content-type", "application/json")], arguments.encode()),
            "http",
            nobody,
            [],
            1 << 20,
        )
        handler.handle(invocation)


_warm_platform()

# `random` was seeded at build time: each instance seeds it again on first use.
_reseed.install()

# Every object made so far (the interpreter, the standard library, the SDK, the user's modules)
# lives as long as the instance, which serves one call. Frozen, the cyclic garbage collector
# leaves them alone: a call's collections look only at what the call made, instead of walking
# (and writing to) the whole pre-initialized heap, whose pages are then copied and reset.
gc.collect()
# And every object made so far is listed for `wasmfn build`, which makes them immortal in the
# image: calls then read them without writing their reference counts (wasmfn/_heap.py).
_heap.publish()
# CPython's free lists (tuples, floats, dicts... freed by the build, kept for reuse) emptied, and
# the holes they and the rest of the build's garbage left in the heap filled: a call's new
# objects then lie next to each other instead of one here, one there over the whole image
# (wasmfn/_heap.py, `fill_holes`).
gc.collect()
_heap.fill_holes()
gc.freeze()
