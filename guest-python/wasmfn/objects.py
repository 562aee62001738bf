"""Object storage: the space's blobs by key (a wasmfn extension, ``context.object_storage``).

IXON's SDK has no client for this. Keys are relative paths such as ``reports/2026/11.csv``
(the host rejects ``..`` segments, a leading ``/``, NUL and keys over 1024 bytes with
``InvalidKey``); every function of a space shares its objects.

    info = context.object_storage.put("reports/today.json", json.dumps(report),
                                      content_type="application/json")
    report = context.object_storage.get("reports/today.json").json()
    for info in context.object_storage.iter(prefix="reports/"):
        ...
    url = context.object_storage.presigned_url("reports/today.json", expires_in=600)

The backend is any object with (``info`` being any object with the attributes ``key``,
``size``, ``content_type``, ``metadata`` (a list of pairs), ``last_modified`` (ms since the
epoch) and ``etag``; the backend raises this module's exceptions, ``object_error`` builds them
from the WIT ``object-error`` cases)::

    put(key: str, body: bytes, content_type: str | None,
        metadata: list[tuple[str, str]]) -> info
    get(key: str) -> tuple[info, bytes]
    head(key: str) -> info
    delete(key: str) -> bool
    list(prefix: str, start_after: str | None, max_keys: int)
        -> tuple[list[info], str | None]         # next_start_after
    presign(key: str, method: str, expires_in: int) -> str
"""

import datetime
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "InvalidKey",
    "Listing",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStorageClient",
    "ObjectStorageError",
    "ObjectTooLarge",
    "StorageUnavailable",
    "StoredObject",
    "object_error",
]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_PRESIGN_METHODS = ("GET", "PUT")


class ObjectStorageError(Exception):
    """An object storage operation failed."""


class InvalidKey(ObjectStorageError, ValueError):
    """The key is not acceptable (the message says why)."""


class ObjectNotFound(ObjectStorageError, KeyError):
    """No object has this key."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ObjectTooLarge(ObjectStorageError):
    """The object is larger than the host's limit."""


class StorageUnavailable(ObjectStorageError):
    """The store failed or cannot be reached."""


def object_error(kind: str, message: str) -> ObjectStorageError:
    """The exception for a WIT ``object-error`` case (``invalid-key``, ``not-found``,
    ``too-large``, ``unavailable``), for backend adapters to raise."""
    cls = {
        "invalid-key": InvalidKey,
        "not-found": ObjectNotFound,
        "too-large": ObjectTooLarge,
        "unavailable": StorageUnavailable,
    }.get(kind, ObjectStorageError)
    return cls(message)


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about an object."""

    key: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: datetime.datetime = _EPOCH
    """When the object was last written (aware, UTC)."""
    etag: str | None = None

    @classmethod
    def _from_backend(cls, info: Any) -> "ObjectInfo":
        return cls(
            key=info.key,
            size=int(info.size),
            content_type=info.content_type,
            metadata=dict(info.metadata or []),
            last_modified=_EPOCH + datetime.timedelta(milliseconds=int(info.last_modified)),
            etag=info.etag,
        )


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset" and value:
            return value.strip().strip("\"'")
    return None


@dataclass(frozen=True)
class StoredObject:
    """An object's content and info, as ``get`` returns it."""

    info: ObjectInfo
    data: bytes

    @property
    def key(self) -> str:
        return self.info.key

    @property
    def content_type(self) -> str:
        return self.info.content_type

    def text(self, encoding: str | None = None) -> str:
        """The content as text: ``encoding``, else the content type's charset, else UTF-8."""
        return self.data.decode(encoding or _charset(self.info.content_type) or "utf-8")

    def json(self) -> Any:
        """The content parsed as JSON."""
        return json.loads(self.data)

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Listing:
    """One page of ``list``: the objects, and where the next page starts (None on the last)."""

    objects: list[ObjectInfo]
    next_start_after: str | None = None

    def __iter__(self) -> Iterator[ObjectInfo]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    return key


class ObjectStorageClient:
    """Client for the space's object storage (``context.object_storage``)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def put(
        self,
        key: str,
        data: bytes | bytearray | memoryview | str,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` (replacing any object there).

        Text is stored as UTF-8 with content type ``text/plain; charset=utf-8`` unless one is
        given; without a content type, the host stores bytes as ``application/octet-stream``.
        """
        _check_key(key)
        if isinstance(data, str):
            body = data.encode("utf-8")
            if content_type is None:
                content_type = "text/plain; charset=utf-8"
        elif isinstance(data, (bytes, bytearray, memoryview)):
            body = bytes(data)
        else:
            raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
        pairs: list[tuple[str, str]] = []
        for name, value in (metadata or {}).items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("metadata names and values must be str")
            pairs.append((name, value))
        return ObjectInfo._from_backend(self._backend.put(key, body, content_type, pairs))

    def get(self, key: str) -> StoredObject:
        """The object stored under ``key``; raises ``ObjectNotFound`` if there is none."""
        info, body = self._backend.get(_check_key(key))
        return StoredObject(ObjectInfo._from_backend(info), bytes(body))

    def head(self, key: str) -> ObjectInfo:
        """The info of the object under ``key``; raises ``ObjectNotFound`` if there is none."""
        return ObjectInfo._from_backend(self._backend.head(_check_key(key)))

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> bool:
        """Delete the object under ``key``: True if there was one, False if not."""
        return bool(self._backend.delete(_check_key(key)))

    def list(
        self, prefix: str = "", start_after: str | None = None, max_keys: int = 1000
    ) -> Listing:
        """One page of the objects whose key starts with ``prefix``, in key order, after
        ``start_after``; at most ``max_keys`` (the host may cap it lower)."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if start_after is not None and not isinstance(start_after, str):
            raise TypeError(f"start_after must be a str, not {type(start_after).__name__}")
        if not isinstance(max_keys, int) or isinstance(max_keys, bool):
            raise TypeError("max_keys must be an int")
        if not 1 <= max_keys <= 0xFFFFFFFF:
            raise ValueError("max_keys must be between 1 and 4294967295")
        infos, next_start_after = self._backend.list(prefix, start_after, max_keys)
        return Listing([ObjectInfo._from_backend(info) for info in infos], next_start_after)

    def iter(self, prefix: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order, page after page."""
        start_after: str | None = None
        while True:
            page = self.list(prefix, start_after, page_size)
            yield from page.objects
            if page.next_start_after is None or page.next_start_after == start_after:
                return
            start_after = page.next_start_after

    def presigned_url(self, key: str, method: str = "GET", expires_in: Any = 900) -> str:
        """A URL on the wasmfn server that lets whoever holds it ``GET`` (or ``PUT``) this
        object for ``expires_in`` seconds (an int or a ``datetime.timedelta``)."""
        _check_key(key)
        method = method.upper()
        if method not in _PRESIGN_METHODS:
            raise ValueError(f"method must be one of {', '.join(_PRESIGN_METHODS)}, not {method!r}")
        if isinstance(expires_in, datetime.timedelta):
            expires_in = int(expires_in.total_seconds())
        if not isinstance(expires_in, int) or isinstance(expires_in, bool):
            raise TypeError("expires_in must be an int (seconds) or a timedelta")
        if not 1 <= expires_in <= 0xFFFFFFFF:
            raise ValueError("expires_in must be between 1 and 4294967295 seconds")
        return str(self._backend.presign(key, method, expires_in))

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}>"
