"""The module componentize-py compiles: it imports the user's modules once, at build time
(the initialised interpreter is snapshotted, so imports cost nothing per call), and exports
the `handler` interface that dispatches each invocation to an exposed function."""

import json
import logging
import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log as host_log
from wit_world.imports import types

import _wasmfn_manifest
from ixoncdkingress.function.context import FunctionContext, FunctionResource
from ixoncdkingress.function.api_client import ApiClient
from ixoncdkingress.function.document_db_client import DocumentDBClient
from wasmfn import _backends, _dispatch
from wasmfn.objects import ObjectStorageClient
from wasmfn._http import Request

# componentize-py snapshots the interpreter after this module loads and ships no filesystem:
# a module first imported during a call cannot be found. So load, now, the requirements'
# top-level packages and the standard-library modules functions commonly import lazily.
_dispatch.preload(_dispatch.STDLIB_PRELOAD + _wasmfn_manifest.REQUIREMENTS)

EXPOSED = _dispatch.collect_exposed(_wasmfn_manifest.MODULES)
if not EXPOSED:
    raise SystemExit(
        "wasmfn: no exposed function found: decorate at least one function with "
        "@FunctionContext.expose (searched modules: " + ", ".join(_wasmfn_manifest.MODULES) + ")"
    )

_LEVELS = {
    logging.DEBUG: host_log.Level.DEBUG,
    logging.INFO: host_log.Level.INFO,
    logging.WARNING: host_log.Level.WARNING,
}


class _HostLogHandler(logging.Handler):
    """Sends Python `logging` records to the host's log interface."""

    def emit(self, record: logging.LogRecord) -> None:
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
        dict(inv.config),
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


class Handler(exports.Handler):
    def entries(self) -> list[str]:
        return sorted(EXPOSED)

    def handle(self, inv: types.Invocation) -> types.Response:
        try:
            response = _dispatch.call(EXPOSED, inv.entry, inv.arguments, _context(inv))
        except _dispatch.NotFound as error:
            raise Err(types.FunctionError_NotFound(str(error)))
        except _dispatch.BadArguments as error:
            raise Err(types.FunctionError_BadArguments(str(error)))
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
        return types.Response(response.status, response.headers, response.body)
