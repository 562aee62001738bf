"""JSON schemas of agentic functions' parameters and results, as ixoncdkingress 1.0 makes them.

With pydantic in the bundle, the schemas and the input model are pydantic's own (the model
validates a call's arguments). Without it, wasmfn writes the same schemas for the annotations
functions commonly use (str, int, float, bool, None, Any, list, dict, tuple, set, Literal, unions
and Optional) and gives no model, so arguments are passed as sent; an annotation it cannot
describe becomes the same ``*_schema_generation_error`` issue the SDK reports.
"""

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from ixoncdkingress.types import ObjectJsonSchema, Schema

try:  # pydantic is optional: present when the function's requirements bring it
    import pydantic
except ImportError:
    pydantic = None


class _Undescribable(Exception):
    """An annotation the built-in schema writer has no JSON schema for."""


def _title(name: str) -> str:
    return name.title().replace("_", " ")


def generate_input_schema(
    function: Callable[..., Any],
    *,
    exclude_param_types: set[type] | None = None,
    exclude_param_names: set[str] | None = None,
) -> Schema:
    """The schema of the parameters an agent fills in: annotated ones that are not excluded and
    do not start with ``_``."""
    excluded_types = exclude_param_types or set()
    excluded_names = exclude_param_names or set()
    hints = typing.get_type_hints(function, include_extras=True)
    fields: dict[str, tuple[Any, Any]] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        hint = hints.get(name)
        if hint is None or name.startswith("_") or name in excluded_names:
            continue
        if any(hint is excluded for excluded in excluded_types):
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (hint, default)
    if pydantic is not None:
        try:
            model = pydantic.create_model("InputSchema", **fields)
            schema = model.model_json_schema()
        except pydantic.PydanticSchemaGenerationError as error:
            return Schema(issue={"type": "input_schema_generation_error", "error": str(error)})
        schema.pop("title", None)
        return Schema(schema=as_sdk_pydantic_writes(schema), model=model)
    try:
        return Schema(schema=_object_schema(fields))
    except _Undescribable as error:
        return Schema(issue={"type": "input_schema_generation_error", "error": str(error)})


def generate_output_schema(function: Callable[..., Any]) -> Schema:
    """The schema of the result, as an object with one required ``output``; none without a
    return annotation."""
    hint = typing.get_type_hints(function, include_extras=True).get("return")
    if hint is None:
        return Schema()
    if pydantic is not None:
        try:
            model = pydantic.create_model("OutputSchema", output=(hint, pydantic.Field(...)))
            schema = model.model_json_schema()
        except pydantic.PydanticSchemaGenerationError as error:
            return Schema(issue={"type": "output_schema_generation_error", "error": str(error)})
        schema.pop("title", None)
        return Schema(schema=as_sdk_pydantic_writes(schema), model=model)
    try:
        return Schema(schema=_object_schema({"output": (hint, ...)}))
    except _Undescribable as error:
        return Schema(issue={"type": "output_schema_generation_error", "error": str(error)})


def as_sdk_pydantic_writes(schema: Any) -> Any:
    """``schema`` (from a pydantic 2.11 or newer) as the SDK's pydantic 2.10 writes it.

    Bundles cannot run pydantic 2.10 (docs/native-packages.md). The one difference the listing
    shows: from 2.11 a bare ``dict`` is ``{"additionalProperties": true, "type": "object"}``,
    where 2.10 leaves ``additionalProperties`` out. Both mean the same in JSON Schema; removing
    it only where an object schema has no ``properties`` keeps models with ``extra="allow"``
    (which 2.10 also marks) as they are.
    """
    if isinstance(schema, list):
        return [as_sdk_pydantic_writes(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    rewritten = {key: as_sdk_pydantic_writes(value) for key, value in schema.items()}
    if (
        rewritten.get("type") == "object"
        and rewritten.get("additionalProperties") is True
        and "properties" not in rewritten
    ):
        del rewritten["additionalProperties"]
    return rewritten


def _object_schema(fields: dict[str, tuple[Any, Any]]) -> ObjectJsonSchema:
    properties = {}
    required = []
    for name, (hint, default) in fields.items():
        field = dict(_schema(hint))
        field["title"] = _title(name)
        if default is ...:
            required.append(name)
        else:
            field["default"] = default
        properties[name] = dict(sorted(field.items()))
    schema: ObjectJsonSchema = {"properties": properties}
    if required:
        schema["required"] = required
    schema["type"] = "object"
    return schema


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", bytes: "string"}


def _schema(hint: Any) -> ObjectJsonSchema:
    """The JSON schema pydantic writes for ``hint`` (without a title)."""
    if hint is typing.Any:
        return {}
    if hint is None or hint is type(None):
        return {"type": "null"}
    if hint in _SCALARS:
        schema = {"type": _SCALARS[hint]}
        if hint is bytes:
            schema["format"] = "binary"
        return schema
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return _schema(args[0])
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema(arg) for arg in args]}
    if origin is typing.Literal:
        values = list(args)
        if len(values) == 1:
            return {"const": values[0], "type": _literal_type(values[0])}
        kinds = {_literal_type(value) for value in values}
        schema = {"enum": values}
        if len(kinds) == 1:
            schema["type"] = kinds.pop()
        return schema
    if hint in (list, set, frozenset) or origin in (list, set, frozenset):
        schema = {"items": _schema(args[0])} if args else {"items": {}}
        schema["type"] = "array"
        if hint in (set, frozenset) or origin in (set, frozenset):
            schema["uniqueItems"] = True
        return dict(sorted(schema.items()))
    if hint is tuple or origin is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return {"items": _schema(args[0]) if args else {}, "type": "array"}
        return {
            "maxItems": len(args), "minItems": len(args),
            "prefixItems": [_schema(arg) for arg in args], "type": "array",
        }
    if hint is dict or origin is dict:
        values = _schema(args[1]) if args else {}
        return {"additionalProperties": values, "type": "object"} if values else {"type": "object"}
    raise _Undescribable(
        f"wasmfn cannot describe parameter type {hint!r} without pydantic in the bundle"
    )


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return _SCALARS.get(type(value), "string")
