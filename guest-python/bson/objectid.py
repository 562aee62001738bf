"""MongoDB ObjectIds, as pymongo's ``bson.objectid`` makes them.

An ObjectId is 12 bytes: a 4-byte big-endian timestamp (seconds), 5 random bytes chosen once
per process, and a 3-byte big-endian counter that starts at a random value.

wasmfn snapshots the interpreter after the build-time imports, so the per-process random bytes
and the counter's start are drawn on first use, not at import; ``_reset_process_state()`` draws
them again (for a host that reuses a snapshot taken after an ObjectId was generated).
"""

import binascii
import calendar
import datetime
import os
import secrets
import struct
import time
from typing import Any

from bson.errors import InvalidId

try:
    from threading import Lock as _Lock
except ImportError:  # pragma: no cover - a build without threads
    from contextlib import nullcontext as _Lock  # type: ignore[assignment]

__all__ = ["ObjectId"]

_MAX_COUNTER_VALUE = 0xFFFFFF
_PACK_INT = struct.Struct(">I").pack
_UNPACK_INT = struct.Struct(">I").unpack
_UTC = datetime.timezone.utc


def _raise_invalid_id(oid: str) -> None:
    raise InvalidId(
        f"{oid!r} is not a valid ObjectId, it must be a 12-byte input or a 24-character hex string"
    )


def _getpid() -> int | None:
    getpid = getattr(os, "getpid", None)
    try:
        return getpid() if getpid is not None else None
    except OSError:  # pragma: no cover - WASI builds may not implement it
        return None


class ObjectId:
    """A MongoDB ObjectId."""

    _pid: int | None = None
    _random_bytes: bytes | None = None
    _inc: int | None = None
    _inc_lock = _Lock()

    __slots__ = ("__id",)

    _type_marker = 7

    def __init__(self, oid: "str | ObjectId | bytes | None" = None) -> None:
        """Initialize a new ObjectId.

        With no argument a new, unique ObjectId is generated. Otherwise ``oid`` is an ObjectId,
        12 bytes, or a 24-character hex string; anything else raises ``TypeError``, and an
        invalid value raises ``bson.errors.InvalidId``.
        """
        if oid is None:
            self.__generate()
        elif isinstance(oid, bytes) and len(oid) == 12:
            self.__id = oid
        else:
            self.__validate(oid)

    @classmethod
    def from_datetime(cls, generation_time: datetime.datetime) -> "ObjectId":
        """An ObjectId whose timestamp is ``generation_time`` and whose other bytes are zero.

        Meant for range queries on ``_id``; do not insert documents with it. Naive datetimes are
        taken as UTC.
        """
        offset = generation_time.utcoffset()
        if offset is not None:
            generation_time = generation_time - offset
        timestamp = calendar.timegm(generation_time.timetuple())
        oid = _PACK_INT(int(timestamp)) + b"\x00" * 8
        return cls(oid)

    @classmethod
    def is_valid(cls, oid: Any) -> bool:
        """True when ``oid`` is an ObjectId, 12 bytes, or a 24-character hex string."""
        if not oid:
            return False
        try:
            ObjectId(oid)
            return True
        except (InvalidId, TypeError):
            return False

    @classmethod
    def _random(cls) -> bytes:
        """The 5 random bytes of this process (drawn again after a fork)."""
        pid = _getpid()
        if cls._random_bytes is None or pid != cls._pid:
            cls._pid = pid
            cls._random_bytes = os.urandom(5)
        return cls._random_bytes

    def __generate(self) -> None:
        oid = _PACK_INT(int(time.time()))
        oid += ObjectId._random()
        with ObjectId._inc_lock:
            inc = ObjectId._inc
            if inc is None:
                inc = secrets.randbelow(_MAX_COUNTER_VALUE + 1)
            ObjectId._inc = (inc + 1) % (_MAX_COUNTER_VALUE + 1)
        oid += _PACK_INT(inc)[1:4]
        self.__id = oid

    def __validate(self, oid: Any) -> None:
        if isinstance(oid, ObjectId):
            self.__id = oid.binary
        elif isinstance(oid, str):
            if len(oid) == 24:
                try:
                    self.__id = bytes.fromhex(oid)
                except (TypeError, ValueError):
                    _raise_invalid_id(oid)
            else:
                _raise_invalid_id(oid)
        else:
            raise TypeError(f"id must be an instance of (str, ObjectId), not {type(oid)}")

    @property
    def binary(self) -> bytes:
        """The 12-byte binary representation of this ObjectId."""
        return self.__id

    @property
    def generation_time(self) -> datetime.datetime:
        """When this ObjectId was generated, as an aware UTC datetime (precise to the second)."""
        timestamp = _UNPACK_INT(self.__id[0:4])[0]
        return datetime.datetime.fromtimestamp(timestamp, _UTC)

    def __getstate__(self) -> bytes:
        return self.__id

    def __setstate__(self, value: Any) -> None:
        if isinstance(value, dict):
            oid = value["_ObjectId__id"]
        else:
            oid = value
        if isinstance(oid, str):
            self.__id = oid.encode("latin-1")
        else:
            self.__id = oid

    def __str__(self) -> str:
        return binascii.hexlify(self.__id).decode()

    def __repr__(self) -> str:
        return f"ObjectId('{self!s}')"

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, ObjectId):
            return self.__id == other.binary
        return NotImplemented

    def __ne__(self, other: Any) -> bool:
        if isinstance(other, ObjectId):
            return self.__id != other.binary
        return NotImplemented

    def __lt__(self, other: Any) -> bool:
        if isinstance(other, ObjectId):
            return self.__id < other.binary
        return NotImplemented

    def __le__(self, other: Any) -> bool:
        if isinstance(other, ObjectId):
            return self.__id <= other.binary
        return NotImplemented

    def __gt__(self, other: Any) -> bool:
        if isinstance(other, ObjectId):
            return self.__id > other.binary
        return NotImplemented

    def __ge__(self, other: Any) -> bool:
        if isinstance(other, ObjectId):
            return self.__id >= other.binary
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.__id)


def _reset_process_state() -> None:
    """Draw new per-process random bytes and a new counter start on the next ObjectId()."""
    with ObjectId._inc_lock:
        ObjectId._random_bytes = None
        ObjectId._pid = None
        ObjectId._inc = None
