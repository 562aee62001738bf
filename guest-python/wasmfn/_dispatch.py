"""Finding exposed functions and calling one: the guest half of every invocation.

Pure Python with no WIT imports, so it runs (and is unit-tested) under any CPython.
"""

import importlib
import inspect
import json
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from wasmfn._http import Response


class NotFound(Exception):
    """No exposed function has the requested entry name."""


class BadArguments(Exception):
    """The call's arguments do not fit the function."""


@dataclass
class PythonError:
    """An exception raised by the user's function."""

    type_name: str
    message: str
    traceback: str


def parse_function_location(name: str) -> tuple[str, str]:
    """Split ``module.path.function`` as ixoncdkingress does: a bare name means module ``functions``."""
    parts = name.split(".")
    function_name = parts.pop()
    if not parts:
        return "functions", function_name
    return ".".join(parts), function_name


# Standard-library modules preloaded into every bundle (see `preload`): already in the snapshot,
# they cost a call nothing; any other module is imported from the bundle's sources when needed.
STDLIB_PRELOAD = [
    "abc", "array", "base64", "binascii", "bisect", "calendar", "collections",
    "collections.abc", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
    "difflib", "email.utils", "enum", "fractions", "functools", "hashlib", "heapq", "hmac",
    "html", "inspect", "io", "ipaddress", "itertools", "json", "logging", "math", "numbers",
    "operator", "pprint", "random", "re", "secrets", "statistics", "string", "struct",
    "textwrap", "time", "traceback", "types", "typing", "unicodedata", "urllib.parse", "uuid",
    "warnings", "weakref", "zlib", "_strptime",
]


def preload(names: list[str]) -> list[str]:
    """Import each module if possible (at build time); returns the ones that failed."""
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional: a package may need what wasm lacks
            failed.append(name)
    return failed


def exposed_in(module_name: str, module: Any) -> dict[str, Callable[..., Any]]:
    """The module's ``@FunctionContext.expose``d functions by entry name (``module.function``)."""
    exposed = {}
    for attr, value in vars(module).items():
        if callable(value) and getattr(value, "exposed", False) is True:
            exposed[f"{module_name}.{attr}"] = value
            signature_of(value)
    return exposed


def collect_exposed(modules: list[str]) -> dict[str, Callable[..., Any]]:
    """Import every module and return its ``@FunctionContext.expose``d functions by entry name."""
    exposed: dict[str, Callable[..., Any]] = {}
    for module_name in modules:
        exposed.update(exposed_in(module_name, importlib.import_module(module_name)))
    return exposed


def resolve(exposed: dict[str, Callable[..., Any]], entry: str) -> Callable[..., Any]:
    # The host sends the qualified name it listed (`entries()`); other spellings are parsed.
    function = exposed.get(entry)
    if function is not None:
        return function
    module_name, function_name = parse_function_location(entry)
    function = exposed.get(f"{module_name}.{function_name}")
    if function is None:
        function = _import_exposed(module_name, function_name)
    if function is None:
        raise NotFound(
            f"function '{module_name}.{function_name}' does not exist or is not exposed"
        )
    return function


def _import_exposed(module_name: str, function_name: str) -> Callable[..., Any] | None:
    """As ixoncdkingress does: import the module the call names (e.g. ``functions.notes``, the
    file the snapshot holds as ``notes``) and take the function if it is exposed. A module that
    does not exist means no such function; one that fails to import fails the call."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            return None
        raise
    function = getattr(module, function_name, None)
    if callable(function) and getattr(function, "exposed", False) is True:
        return function
    return None


@dataclass(frozen=True)
class Signature:
    """What `select_arguments` needs of a function's parameters, computed once."""

    context_name: str | None
    takes_kwargs: bool
    accepted: frozenset[str]
    required: tuple[str, ...]
    # An agentic function's pydantic model of its arguments (``expose(is_agentic=True)``).
    input_model: Any = None


# Filled at import time (for exposed functions, during the build), so that a fresh instance
# finds it in the snapshot instead of inspecting signatures on every call.
_SIGNATURES: dict[Callable[..., Any], Signature] = {}


def signature_of(function: Callable[..., Any]) -> Signature:
    cached = _SIGNATURES.get(function)
    if cached is not None:
        return cached
    params = inspect.signature(function).parameters
    names = list(params)
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    computed = Signature(
        # The first parameter receives the FunctionContext; an argument of that name cannot.
        context_name=names[0] if names else None,
        takes_kwargs=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()),
        accepted=frozenset(names[1:]),
        # A decorated function (functools.wraps) shows the signature it wraps, as the SDK reads
        # it to filter arguments; but the wrapper may fill some in itself (IXON apps inject
        # clients that way), so only Python can tell what is missing, as in the SDK.
        required=()
        if hasattr(function, "__wrapped__")
        else tuple(
            name
            for name, p in list(params.items())[1:]
            if p.default is inspect.Parameter.empty and p.kind in keyword_kinds
        ),
        input_model=getattr(function, "input_model", None),
    )
    _SIGNATURES[function] = computed
    return computed


def select_arguments(function: Callable[..., Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """Keep the keyword arguments the function takes, as the ixoncdkingress ingress does.

    Everything is passed when the function takes ``**kwargs``; otherwise unknown names are
    dropped. Missing required arguments are reported instead of surfacing as a TypeError.
    """
    sig = signature_of(function)
    if sig.takes_kwargs:
        selected = {k: v for k, v in arguments.items() if k != sig.context_name}
    elif sig.input_model is not None:
        return _validated(sig.input_model, arguments)
    else:
        selected = {k: v for k, v in arguments.items() if k in sig.accepted}
    missing = [name for name in sig.required if name not in selected]
    if missing:
        names = ", ".join(repr(n) for n in missing)
        raise BadArguments(f"missing required argument(s): {names}")
    return selected


def _validated(model: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments as an agentic function's model reads them (as ixoncdkingress: lax types,
    unknown names dropped, defaults filled in, nested models as model instances)."""
    try:
        return dict(vars(model(**arguments)))
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise BadArguments(str(error)) from None


def decode_arguments(text: str) -> dict[str, Any]:
    # Most calls carry no arguments: the host sends "{}" (json.loads costs a few microseconds).
    if text == "{}" or not text:
        return {}
    try:
        arguments = json.loads(text)
    except ValueError as error:
        raise BadArguments(f"arguments are not valid JSON: {error}") from None
    if not isinstance(arguments, dict):
        raise BadArguments(f"arguments must be a JSON object, not {type(arguments).__name__}")
    return arguments


# `json.dumps(value)` makes a new C encoder on every call; this one is made once, at build time,
# with `json.dumps`'s defaults (circular references checked through `_MARKERS`).
_MARKERS: dict[int, Any] = {}


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODE = json.encoder.c_make_encoder(
    _MARKERS, _no_default, json.encoder.encode_basestring_ascii, None, ": ", ", ",
    False, False, True,
) if json.encoder.c_make_encoder is not None else None


def to_json(value: Any) -> str:
    """``json.dumps(value)``, with the encoder made once instead of on every call."""
    if _ENCODE is None or isinstance(value, str):
        return json.dumps(value)
    # A failed encoding can leave entries behind.
    _MARKERS.clear()
    return "".join(_ENCODE(value, 0))


class ResponseTooLarge(Exception):
    """The response body would pass the call's ``max_response_bytes``; ``size`` is the size it
    has at least (found before the body was made in full)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the response body is over the limit: {size} bytes or more")
        self.size = size


def render(result: Any, limit: int | None = None) -> Response:
    """Turn a function's return value into a response: a ``Response`` as is, anything else as JSON.

    With a ``limit`` (the call's ``max_response_bytes``), a body that would pass it raises
    ``ResponseTooLarge`` as soon as that is known: a long string before its JSON text is made,
    any other result once its JSON text is made and before it is copied into bytes.
    """
    if isinstance(result, Response):
        if limit is not None and len(result.body) > limit:
            raise ResponseTooLarge(len(result.body))
        return result
    if limit is not None and isinstance(result, str) and len(result) + 2 > limit:
        raise ResponseTooLarge(len(result) + 2)
    try:
        body = to_json(result)
    except (TypeError, ValueError) as error:
        raise TypeError(f"the function's return value is not JSON-serialisable: {error}") from None
    # The text is ASCII (non-ASCII characters are escaped): one character, one byte.
    if limit is not None and len(body) > limit:
        raise ResponseTooLarge(len(body))
    return Response.json_body(body.encode("utf-8"))


# componentize-py mounts the bundle's source folders at /0, /1, ...; tracebacks name files as
# the user knows them instead (the entry module sets this from the build's list of mounts).
SOURCE_ROOTS: list[tuple[str, str]] = [('File "/0/', 'File "<wasmfn>/')]


_MISSING_MODULE_HINT = (
    " (no such module in the bundle: add the package that provides it to requirements.txt)"
)


def describe(error: BaseException) -> PythonError:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for mounted, shown in SOURCE_ROOTS:
        text = text.replace(mounted, shown)
    message = str(error)
    if isinstance(error, ModuleNotFoundError):
        message += _MISSING_MODULE_HINT
    return PythonError(type(error).__name__, message, text)


def call(
    exposed: dict[str, Callable[..., Any]],
    entry: str,
    arguments_json: str,
    context: Any,
    limit: int | None = None,
) -> Response:
    """Run one invocation; raises NotFound, BadArguments, ResponseTooLarge (over ``limit``
    bytes), or PythonError-carrying exceptions."""
    function = resolve(exposed, entry)
    arguments = select_arguments(function, decode_arguments(arguments_json))
    return render(function(context, **arguments), limit)
