"""MongoDB Extended JSON helpers: a pure-Python subset of pymongo's ``bson.json_util``.

``dumps`` and ``loads`` wrap ``json.dumps``/``json.loads`` like pymongo 4's: by default they
use Relaxed Extended JSON (``DEFAULT_JSON_OPTIONS``), so ``ObjectId`` becomes
``{"$oid": "<hex>"}`` and a datetime ``{"$date": "2024-01-31T12:00:00.123Z"}`` (ISO-8601 from
1970 on, ``{"$date": {"$numberLong": "<ms>"}}`` before), and ``loads`` returns naive UTC
datetimes. ``json_options=LEGACY_JSON_OPTIONS`` writes ``{"$date": <ms>}``;
``CANONICAL_JSON_OPTIONS`` writes numbers as ``$numberInt``/``$numberLong``/``$numberDouble``.

Handled types: ObjectId, datetime, bytes (``$binary``, read back as ``bytes``), int, float;
``loads`` also reads ``$numberInt``, ``$numberLong``, ``$numberDouble`` and legacy ``$binary``.
Not handled (there are no such classes here): Binary subtypes, UUID, Decimal128, Regex, Code,
DBRef, MinKey/MaxKey, Timestamp.
"""

import base64
import calendar
import datetime
import json
import math
from collections.abc import Mapping
from typing import Any

from bson.objectid import ObjectId

__all__ = [
    "CANONICAL_JSON_OPTIONS",
    "DEFAULT_JSON_OPTIONS",
    "DatetimeRepresentation",
    "JSONMode",
    "JSONOptions",
    "LEGACY_JSON_OPTIONS",
    "RELAXED_JSON_OPTIONS",
    "default",
    "dumps",
    "loads",
    "object_hook",
    "object_pairs_hook",
]

_UTC = datetime.timezone.utc
EPOCH_AWARE = datetime.datetime.fromtimestamp(0, _UTC)
EPOCH_NAIVE = EPOCH_AWARE.replace(tzinfo=None)


class DatetimeRepresentation:
    LEGACY = 0
    """``{"$date": <milliseconds>}``"""
    NUMBERLONG = 1
    """``{"$date": {"$numberLong": "<milliseconds>"}}``"""
    ISO8601 = 2
    """``{"$date": "<ISO-8601>"}`` from 1970 on, NUMBERLONG before."""


class JSONMode:
    LEGACY = 0
    RELAXED = 1
    CANONICAL = 2


class JSONOptions:
    """Options for ``dumps``/``loads`` (the subset of pymongo's that applies here)."""

    def __init__(
        self,
        strict_number_long: bool | None = None,
        datetime_representation: int | None = None,
        strict_uuid: bool | None = None,
        json_mode: int = JSONMode.RELAXED,
        *,
        tz_aware: bool = False,
        tzinfo: datetime.tzinfo | None = None,
        document_class: type = dict,
        **_ignored: Any,
    ) -> None:
        self.json_mode = json_mode
        self.tz_aware = tz_aware
        self.tzinfo = (tzinfo or _UTC) if tz_aware else None
        self.document_class = document_class
        self.strict_uuid = strict_uuid
        if json_mode == JSONMode.CANONICAL:
            self.strict_number_long = True
            self.datetime_representation = DatetimeRepresentation.NUMBERLONG
        elif json_mode == JSONMode.RELAXED:
            self.strict_number_long = False
            self.datetime_representation = DatetimeRepresentation.ISO8601
        else:
            self.strict_number_long = bool(strict_number_long)
            self.datetime_representation = (
                DatetimeRepresentation.LEGACY
                if datetime_representation is None
                else datetime_representation
            )

    def with_options(self, **kwargs: Any) -> "JSONOptions":
        """A copy of these options with some overridden."""
        options: dict[str, Any] = {
            "strict_number_long": self.strict_number_long,
            "datetime_representation": self.datetime_representation,
            "strict_uuid": self.strict_uuid,
            "json_mode": self.json_mode,
            "tz_aware": self.tz_aware,
            "tzinfo": self.tzinfo,
            "document_class": self.document_class,
        }
        options.update(kwargs)
        return JSONOptions(**options)

    def __repr__(self) -> str:
        return (
            f"JSONOptions(json_mode={self.json_mode!r}, "
            f"datetime_representation={self.datetime_representation!r}, "
            f"tz_aware={self.tz_aware!r}, tzinfo={self.tzinfo!r})"
        )


LEGACY_JSON_OPTIONS = JSONOptions(json_mode=JSONMode.LEGACY)
CANONICAL_JSON_OPTIONS = JSONOptions(json_mode=JSONMode.CANONICAL)
RELAXED_JSON_OPTIONS = JSONOptions(json_mode=JSONMode.RELAXED)
DEFAULT_JSON_OPTIONS = RELAXED_JSON_OPTIONS


def _datetime_to_millis(value: datetime.datetime) -> int:
    """Milliseconds since the epoch; naive datetimes are taken as UTC."""
    offset = value.utcoffset()
    if offset is not None:
        value = value - offset
    return int(calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000)


def _millis_to_datetime(millis: int, tz_aware: bool, tzinfo: datetime.tzinfo | None = None) -> datetime.datetime:
    if tz_aware:
        aware = EPOCH_AWARE + datetime.timedelta(milliseconds=millis)
        return aware.astimezone(tzinfo) if tzinfo is not None else aware
    return EPOCH_NAIVE + datetime.timedelta(milliseconds=millis)


def _encode_datetime(value: datetime.datetime, options: JSONOptions) -> dict[str, Any]:
    if options.datetime_representation == DatetimeRepresentation.ISO8601:
        if not value.tzinfo:
            value = value.replace(tzinfo=_UTC)
        if value >= EPOCH_AWARE:
            off = value.utcoffset()
            assert off is not None
            tz_string = "Z" if not off else value.strftime("%z")
            millis = value.microsecond // 1000
            fracsecs = f".{millis:03d}" if millis else ""
            return {"$date": f"{value.strftime('%Y-%m-%dT%H:%M:%S')}{fracsecs}{tz_string}"}
    millis = _datetime_to_millis(value)
    if options.datetime_representation == DatetimeRepresentation.LEGACY:
        return {"$date": millis}
    return {"$date": {"$numberLong": str(millis)}}


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def default(obj: Any, json_options: JSONOptions = DEFAULT_JSON_OPTIONS) -> Any:
    """The extended JSON form of one value; raises TypeError for types it does not know."""
    if isinstance(obj, ObjectId):
        return {"$oid": str(obj)}
    if isinstance(obj, datetime.datetime):
        return _encode_datetime(obj, json_options)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = base64.b64encode(bytes(obj)).decode()
        if json_options.json_mode == JSONMode.LEGACY:
            return {"$binary": data, "$type": "00"}
        return {"$binary": {"base64": data, "subType": "00"}}
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int) and json_options.json_mode == JSONMode.CANONICAL:
        if -(2**31) <= obj < 2**31:
            return {"$numberInt": str(obj)}
        return {"$numberLong": str(obj)}
    if isinstance(obj, float):
        if json_options.json_mode == JSONMode.CANONICAL or not math.isfinite(obj):
            if json_options.json_mode != JSONMode.LEGACY:
                return {"$numberDouble": _float_text(obj)}
        return obj
    raise TypeError(f"{obj!r} is not JSON serializable")


def _json_convert(obj: Any, json_options: JSONOptions) -> Any:
    if hasattr(obj, "items"):
        return {k: _json_convert(v, json_options) for k, v in obj.items()}
    if hasattr(obj, "__iter__") and not isinstance(obj, (str, bytes, bytearray, memoryview)):
        return [_json_convert(v, json_options) for v in obj]
    try:
        return default(obj, json_options)
    except TypeError:
        return obj


def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes ObjectIds, datetimes and bytes as MongoDB Extended JSON.

    ``json_options`` (default ``DEFAULT_JSON_OPTIONS``, Relaxed Extended JSON) picks the format.
    """
    json_options = kwargs.pop("json_options", DEFAULT_JSON_OPTIONS)
    return json.dumps(_json_convert(obj, json_options), *args, **kwargs)


def _parse_date(doc: Mapping[str, Any], options: JSONOptions) -> datetime.datetime:
    value = doc["$date"]
    if len(doc) != 1:
        raise TypeError(f"Bad $date, extra field(s): {doc}")
    if isinstance(value, str):
        aware = _parse_iso_datetime(value)
        if options.tz_aware:
            return aware.astimezone(options.tzinfo) if options.tzinfo else aware
        return aware.replace(tzinfo=None)
    return _millis_to_datetime(int(value), options.tz_aware, options.tzinfo)


def _parse_iso_datetime(text: str) -> datetime.datetime:
    """An aware UTC datetime from ISO-8601 text as MongoDB tools write it."""
    if text[-1] == "Z":
        body, offset = text[:-1], ""
    elif text[-6] in "+-" and text[-3] == ":":
        body, offset = text[:-6], text[-6:]
    elif text[-5] in "+-":
        body, offset = text[:-5], text[-5:]
    elif text[-3] in "+-":
        body, offset = text[:-3], text[-3:]
    else:
        body, offset = text, ""
    microsecond = 0
    dot = body.rfind(".")
    if dot != -1:
        microsecond = int(float(body[dot:]) * 1000000)
        body = body[:dot]
    aware = datetime.datetime.strptime(body, "%Y-%m-%dT%H:%M:%S").replace(
        microsecond=microsecond, tzinfo=_UTC
    )
    if offset:
        digits = offset[1:].replace(":", "")
        seconds = int(digits[0:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0)
        if offset[0] == "-":
            seconds = -seconds
        aware = aware - datetime.timedelta(seconds=seconds)
    return aware


def _single(doc: Mapping[str, Any], key: str) -> Any:
    if len(doc) != 1:
        raise TypeError(f"Bad {key}, extra field(s): {doc}")
    return doc[key]


def _parse_binary(doc: Mapping[str, Any], _options: JSONOptions) -> Any:
    value = doc["$binary"]
    if isinstance(value, Mapping):
        if len(doc) != 1:
            raise TypeError(f"Bad $binary, extra field(s): {doc}")
        return base64.b64decode(value["base64"].encode())
    if "$type" in doc and len(doc) == 2 and isinstance(value, str):
        return base64.b64decode(value.encode())
    return doc


_PARSERS: dict[str, Any] = {
    "$oid": lambda doc, _o: ObjectId(_single(doc, "$oid")),
    "$date": _parse_date,
    "$numberInt": lambda doc, _o: int(_single(doc, "$numberInt")),
    "$numberLong": lambda doc, _o: int(_single(doc, "$numberLong")),
    "$numberDouble": lambda doc, _o: float(_single(doc, "$numberDouble")),
    "$binary": _parse_binary,
}


def object_hook(dct: Mapping[str, Any], json_options: JSONOptions = DEFAULT_JSON_OPTIONS) -> Any:
    for key in dct:
        parser = _PARSERS.get(key)
        if parser is not None:
            return parser(dct, json_options)
    return dct


def object_pairs_hook(pairs: Any, json_options: JSONOptions = DEFAULT_JSON_OPTIONS) -> Any:
    return object_hook(json_options.document_class(pairs), json_options)


def loads(s: str | bytes | bytearray, *args: Any, **kwargs: Any) -> Any:
    """``json.loads`` that turns MongoDB Extended JSON back into ObjectIds, datetimes, bytes."""
    json_options = kwargs.pop("json_options", DEFAULT_JSON_OPTIONS)
    if json_options.document_class is dict:
        kwargs["object_hook"] = lambda obj: object_hook(obj, json_options)
    else:
        kwargs["object_pairs_hook"] = lambda pairs: object_pairs_hook(pairs, json_options)
    return json.loads(s, *args, **kwargs)
