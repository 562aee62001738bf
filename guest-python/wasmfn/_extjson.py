"""The JSON text documents, filters and ids cross the host boundary as.

MongoDB Extended JSON as the ``documents`` WIT interface specifies it: an ObjectId is
``{"$oid": "<24 hex>"}``, a datetime ``{"$date": <milliseconds since the epoch>}``. Also
written, so that values pymongo could store survive a round trip: bytes as
``{"$binary": {"base64": ..., "subType": "00"}}`` and non-finite floats as
``{"$numberDouble": "NaN" | "Infinity" | "-Infinity"}``; ``decode`` also reads
``$numberLong``/``$numberInt`` and ISO-8601 ``$date`` strings.

``encode`` accepts what BSON can hold and raises ``bson.errors.InvalidDocument`` (as pymongo
does) for anything else: non-string keys, sets, ``datetime.date``, ``Decimal``, ...
"""

import base64
import datetime
import json
import math
from collections.abc import Mapping
from types import GeneratorType
from typing import Any

from bson.errors import InvalidDocument, InvalidId, InvalidStringData
from bson.json_util import _datetime_to_millis, _millis_to_datetime, _parse_iso_datetime
from bson.objectid import ObjectId

__all__ = ["decode", "encode"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UTC = datetime.timezone.utc


def _convert(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise OverflowError("MongoDB can only handle up to 8-byte ints")
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        if math.isnan(value):
            return {"$numberDouble": "NaN"}
        return {"$numberDouble": "Infinity" if value > 0 else "-Infinity"}
    if isinstance(value, Mapping):
        converted = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidDocument(f"documents must have only string keys, key was {key!r}")
            if "\x00" in key:
                raise InvalidDocument(f"Key names must not contain the NULL byte: {key!r}")
            converted[key] = _convert(item)
        return converted
    if isinstance(value, (list, tuple, GeneratorType)):
        return [_convert(item) for item in value]
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, datetime.datetime):
        return {"$date": _datetime_to_millis(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$binary": {"base64": base64.b64encode(bytes(value)).decode(), "subType": "00"}}
    raise InvalidDocument(f"cannot encode object: {value!r}, of type: {type(value)!r}")


def encode(value: Any) -> str:
    """JSON text for a document, filter, update, projection, sort or id."""
    text = json.dumps(_convert(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidStringData(f"strings in documents must be valid UTF-8: {error}") from None
    return text


def _single(doc: dict[str, Any], tz_aware: bool) -> Any:
    """The value a one-key extended JSON wrapper stands for, or the dict itself."""
    ((key, value),) = doc.items()
    try:
        if key == "$oid" and isinstance(value, str):
            return ObjectId(value)
        if key == "$date":
            if isinstance(value, int) and not isinstance(value, bool):
                return _millis_to_datetime(value, tz_aware, _UTC if tz_aware else None)
            if isinstance(value, str):
                aware = _parse_iso_datetime(value)
                return aware if tz_aware else aware.replace(tzinfo=None)
        if key in ("$numberLong", "$numberInt") and isinstance(value, str):
            return int(value)
        if key == "$numberDouble" and isinstance(value, str):
            return float(value)
        if (
            key == "$binary"
            and isinstance(value, dict)
            and set(value) == {"base64", "subType"}
            and isinstance(value["base64"], str)
        ):
            return base64.b64decode(value["base64"].encode())
    except (InvalidId, ValueError, TypeError, OverflowError, IndexError):
        pass
    return doc


def decode(text: str | bytes, *, tz_aware: bool = True) -> Any:
    """The Python value of JSON text from the host: ObjectIds and datetimes restored.

    Datetimes are aware (UTC) by default; with ``tz_aware=False`` they are naive UTC, as
    pymongo's ``MongoClient`` returns them by default.
    """

    def hook(doc: dict[str, Any]) -> Any:
        if len(doc) == 1:
            return _single(doc, tz_aware)
        return doc

    return json.loads(text, object_hook=hook)
