"""Document DB client & related types (ixoncdkingress 1.0.0's names and signatures).

The real client wraps a pymongo ``Collection``; this one sends each operation to the wasmfn host
(the ``documents`` WIT interface), which runs it on the function's collection. Documents,
filters and updates cross as MongoDB Extended JSON (``wasmfn._extjson``), and pymongo's
client-side checks are reproduced, so functions see pymongo's behaviour: ``insert_one`` sets
``_id`` on the caller's document, ``update_one`` rejects documents without ``$`` operators,
results are ``pymongo.results`` objects, ``find`` returns a lazy ``pymongo.cursor.Cursor``,
failures raise ``pymongo.errors`` exceptions, and datetimes read back are naive UTC (pymongo's
default ``tz_aware=False``).

Differences from MongoDB: ``insert_many`` inserts every document or none (also with
``ordered=False``); collation, array filters and ``let`` are not supported (they raise
``NotImplementedError``); ``find`` answers in one batch, which the host caps in size.

The backend is any object with these methods (the host adapter raises ``pymongo.errors``
exceptions itself; ``document_error`` builds them from the WIT ``document-error`` cases)::

    find(filter_json: str, projection_json: str | None, sort_json: str | None,
         skip: int, limit: int) -> list[str]          # sort_json: [[field, direction], ...]
    count(filter_json: str) -> int
    insert(documents_json: list[str]) -> list[str]    # the _ids, as extended JSON
    update(filter_json: str, update_json: str, many: bool, upsert: bool)
        -> tuple[int, int, str | None]                 # matched, modified, upserted _id JSON
    replace(filter_json: str, replacement_json: str, upsert: bool)
        -> tuple[int, int, str | None]
    delete(filter_json: str, many: bool) -> int
"""

import warnings
from collections import abc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bson.objectid import ObjectId
from pymongo.cursor import Cursor, _validate_is_mapping
from pymongo.errors import (
    BulkWriteError,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteError,
)
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult
from wasmfn import _extjson

DocumentType = Mapping[str, Any]

_MISSING: Any = object()

# Options pymongo's write methods take that do not change what wasmfn's store does.
_IGNORED_WRITE_OPTIONS = frozenset(
    {"bypass_document_validation", "session", "comment", "hint", "ordered"}
)
_UNSUPPORTED_WRITE_OPTIONS = frozenset({"collation", "array_filters", "let", "sort"})


def _check_options(method: str, options: Mapping[str, Any]) -> None:
    for name, value in options.items():
        if name in _IGNORED_WRITE_OPTIONS:
            continue
        if name in _UNSUPPORTED_WRITE_OPTIONS:
            if value is None:
                continue
            raise NotImplementedError(
                f"the {name!r} option is not supported by wasmfn's document store"
            )
        raise TypeError(f"{method}() got an unexpected keyword argument {name!r}")


def _validate_is_document_type(option: str, value: Any) -> None:
    if not isinstance(value, abc.MutableMapping):
        raise TypeError(
            f"{option} must be an instance of dict, bson.son.SON, "
            "bson.raw_bson.RawBSONDocument, or "
            "a type that inherits from "
            "collections.MutableMapping"
        )


def _validate_ok_for_update(update: Any) -> None:
    if not isinstance(update, (abc.Mapping, list)):
        raise TypeError(
            "update must either be a list or an instance of dict, bson.son.SON, or any other "
            "type that inherits from collections.Mapping"
        )
    if not update:
        raise ValueError("update cannot be empty")
    is_document = not isinstance(update, list)
    first = next(iter(update))
    if is_document and not first.startswith("$"):
        raise ValueError("update only works with $ operators")


def _validate_ok_for_replace(replacement: Any) -> None:
    _validate_is_mapping("replacement", replacement)
    if replacement:
        first = next(iter(replacement))
        if isinstance(first, str) and first.startswith("$"):
            raise ValueError("replacement can not include $ operators")


def document_error(kind: str, message: str) -> PyMongoError:
    """The pymongo exception for a WIT ``document-error`` case (``invalid``, ``too-large``,
    ``duplicate-key``, ``limit-exceeded``, ``unavailable``), for backend adapters to raise."""
    if kind == "invalid":
        return OperationFailure(
            message, 2, {"ok": 0.0, "errmsg": message, "code": 2, "codeName": "BadValue"}
        )
    if kind == "too-large":
        return DocumentTooLarge(message)
    if kind == "duplicate-key":
        return DuplicateKeyError(message, 11000, {"code": 11000, "errmsg": message})
    if kind == "limit-exceeded" and message.startswith("quota exceeded:"):
        # The space's storage quota (the host says so in the message; the WIT has no case for
        # it): a write error with the code MongoDB Atlas uses for its space quota.
        details = {"ok": 0.0, "errmsg": message, "code": 8000, "codeName": "AtlasError"}
        return WriteError(message, 8000, details)
    if kind == "limit-exceeded":
        return ExecutionTimeout(
            message, 50, {"ok": 0.0, "errmsg": message, "code": 50, "codeName": "MaxTimeMSExpired"}
        )
    if kind == "unavailable":
        return ServerSelectionTimeoutError(message)
    return OperationFailure(f"{kind}: {message}")


class DocumentDBClient:
    """Client for the function's Document DB collection."""

    def __init__(self, backend: Any, name: str, *, tz_aware: bool = False) -> None:
        """``backend`` runs the operations (see the module docstring); ``name`` is the
        database name shown by ``repr`` (the company's public id in IXON)."""
        self._backend = backend
        self._name = name
        self._tz_aware = tz_aware

    # -- reading ---------------------------------------------------------------------------

    def _decode(self, text: str) -> Any:
        return _extjson.decode(text, tz_aware=self._tz_aware)

    def _cursor_fetch(
        self,
        spec: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
        sort: list[tuple[str, Any]] | None,
        skip: int,
        limit: int,
    ) -> Iterator[Any]:
        """Run a find for a Cursor; documents are decoded as they are iterated."""
        texts = self._backend.find(
            _extjson.encode(spec),
            None if projection is None else _extjson.encode(projection),
            None if not sort else _extjson.encode([[key, direction] for key, direction in sort]),
            skip,
            limit,
        )
        return (self._decode(text) for text in texts)

    def find_one(self, *args: Any, filter_map: Any = _MISSING, **kwargs: Any) -> Any:
        """Get a single document from the collection, or None.

        As in ixoncdkingress, the filter is the keyword ``filter_map`` (and ``args`` are
        ``find``'s arguments after the filter); as in pymongo, it may also be given as the
        first positional argument. A filter that is not a mapping means ``{"_id": filter}``.
        Other keyword arguments are ``find``'s (``projection``, ``sort``, ``skip``, ...).
        """
        if filter_map is _MISSING:
            if args:
                filter_map, args = args[0], args[1:]
            else:
                filter_map = kwargs.pop("filter", None)
        if filter_map is not None and not isinstance(filter_map, abc.Mapping):
            filter_map = {"_id": filter_map}
        cursor = self.find(filter_map, *args, **kwargs)
        for result in cursor.limit(-1):
            return result
        return None

    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | Iterable[str] | None = None,
        skip: int = 0,
        limit: int = 0,
        *args: Any,
        sort: Any = None,
        **kwargs: Any,
    ) -> Cursor:
        """Query the collection: a lazy ``pymongo.cursor.Cursor`` over the matching documents.

        ``sort`` is a list of ``(key, direction)`` pairs; ``limit`` 0 means no limit.
        """
        return Cursor(self, filter, projection, skip, limit, *args, sort=sort, **kwargs)

    def count_documents(self, filter: Mapping[str, Any], session: Any = None, comment: Any = None, **kwargs: Any) -> int:
        """The number of documents matching ``filter`` (``skip`` and ``limit`` apply)."""
        _validate_is_mapping("filter", filter)
        skip = kwargs.pop("skip", 0) or 0
        limit = kwargs.pop("limit", 0) or 0
        for name in ("maxTimeMS", "hint"):
            kwargs.pop(name, None)
        kwargs = {name: value for name, value in kwargs.items() if value is not None}
        if kwargs:
            raise NotImplementedError(
                f"count_documents() options not supported by wasmfn: {', '.join(kwargs)}"
            )
        count = max(0, int(self._backend.count(_extjson.encode(filter))) - skip)
        return min(count, limit) if limit else count

    def estimated_document_count(self, **kwargs: Any) -> int:
        """The number of documents in the collection."""
        return int(self._backend.count(_extjson.encode({})))

    # -- writing ---------------------------------------------------------------------------

    def insert_one(self, document: DocumentType, **kwargs: Any) -> InsertOneResult:
        """Insert a single document; without an ``_id`` it gets a new ObjectId (set on
        ``document`` itself, as pymongo does)."""
        _check_options("insert_one", kwargs)
        _validate_is_document_type("document", document)
        if "_id" not in document:
            document["_id"] = ObjectId()  # type: ignore[index]
        self._backend.insert([_extjson.encode(document)])
        return InsertOneResult(document["_id"], True)

    def insert_many(self, documents: Iterable[DocumentType], **kwargs: Any) -> InsertManyResult:
        """Insert several documents (all or none); each without ``_id`` gets a new ObjectId.

        A duplicate ``_id`` raises ``BulkWriteError`` as in pymongo; nothing was inserted.
        """
        _check_options("insert_many", kwargs)
        if (
            not isinstance(documents, abc.Iterable)
            or isinstance(documents, abc.Mapping)
            or not documents
        ):
            raise TypeError("documents must be a non-empty list")
        texts = []
        inserted_ids = []
        for document in documents:
            _validate_is_document_type("document", document)
            if "_id" not in document:
                document["_id"] = ObjectId()  # type: ignore[index]
            inserted_ids.append(document["_id"])
            texts.append(_extjson.encode(document))
        if not texts:
            raise InvalidOperation("No operations to execute")
        try:
            self._backend.insert(texts)
        except WriteError as error:
            write_error: dict[str, Any] = dict(error.details or {})
            write_error.setdefault("code", error.code)
            write_error.setdefault("errmsg", error._message)
            raise BulkWriteError(
                {
                    "writeErrors": [write_error],
                    "writeConcernErrors": [],
                    "nInserted": 0,
                    "nUpserted": 0,
                    "nMatched": 0,
                    "nModified": 0,
                    "nRemoved": 0,
                    "upserted": [],
                }
            ) from error
        return InsertManyResult(inserted_ids, True)

    def _update_result(self, answer: Any) -> UpdateResult:
        matched, modified, upserted_json = answer
        raw: dict[str, Any] = {"n": int(matched)}
        if upserted_json is not None:
            raw["n"] = int(matched) + 1
            raw["upserted"] = self._decode(upserted_json)
        raw["nModified"] = int(modified)
        raw["ok"] = 1.0
        raw["updatedExisting"] = bool(raw["n"]) and upserted_json is None
        return UpdateResult(raw, True)

    def _update(self, method: str, filter_map: Any, update: Any, upsert: bool, many: bool, kwargs: Mapping[str, Any]) -> UpdateResult:
        _check_options(method, kwargs)
        _validate_is_mapping("filter", filter_map)
        _validate_ok_for_update(update)
        answer = self._backend.update(
            _extjson.encode(filter_map), _extjson.encode(update), many, bool(upsert)
        )
        return self._update_result(answer)

    def update_one(
        self,
        filter_map: Mapping[str, Any],
        update: Mapping[str, Any],
        upsert: bool = False,
        **kwargs: Any,
    ) -> UpdateResult:
        """Update a single document matching the filter (``update`` uses ``$`` operators)."""
        return self._update("update_one", filter_map, update, upsert, False, kwargs)

    def update_many(
        self,
        filter_map: Mapping[str, Any],
        update: Mapping[str, Any],
        upsert: bool = False,
        **kwargs: Any,
    ) -> UpdateResult:
        """Update every document matching the filter (``update`` uses ``$`` operators)."""
        return self._update("update_many", filter_map, update, upsert, True, kwargs)

    def replace_one(
        self,
        filter: Mapping[str, Any],
        replacement: Mapping[str, Any],
        upsert: bool = False,
        **kwargs: Any,
    ) -> UpdateResult:
        """Replace a single document matching the filter (keeping its ``_id``)."""
        _check_options("replace_one", kwargs)
        _validate_is_mapping("filter", filter)
        _validate_ok_for_replace(replacement)
        answer = self._backend.replace(
            _extjson.encode(filter), _extjson.encode(replacement), bool(upsert)
        )
        return self._update_result(answer)

    def _delete(self, method: str, filter_map: Any, many: bool, kwargs: Mapping[str, Any]) -> DeleteResult:
        _check_options(method, kwargs)
        _validate_is_mapping("filter", filter_map)
        deleted = int(self._backend.delete(_extjson.encode(filter_map), many))
        return DeleteResult({"n": deleted, "ok": 1.0}, True)

    def delete_one(self, filter_map: Mapping[str, Any], **kwargs: Any) -> DeleteResult:
        """Delete a single document matching the filter."""
        return self._delete("delete_one", filter_map, False, kwargs)

    def delete_many(self, filter_map: Mapping[str, Any], **kwargs: Any) -> DeleteResult:
        """Delete every document matching the filter."""
        return self._delete("delete_many", filter_map, True, kwargs)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} company={self._name},>"


@dataclass(frozen=True, init=False)
class DocumentDBAuthentication:
    """
    DEPRECATED: Do not use.
    """

    username: str
    password: str

    def __init__(self, username: str, password: str):
        warnings.warn(DeprecationWarning("Deprecated: do not use"))

        # Need to use __setattr__ on object since dataclass is frozen
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "password", password)


def __getattr__(name: str) -> object:  # pragma: no cover
    """
    Handle accessing deprecated module attributes.
    """
    if name == "TIMEOUT":
        warnings.warn(DeprecationWarning("Deprecated: do not use"), stacklevel=1)
        return 3000  # Return the last value TIMEOUT had before deprecation

    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class DocumentDBAuthentication:
    """Deprecated in ixoncdkingress (credentials come from the platform); kept so imports resolve."""

    username: str
    password: str

    def __post_init__(self) -> None:
        warnings.warn(
            "DocumentDBAuthentication is deprecated", category=DeprecationWarning, stacklevel=3
        )


def __getattr__(name: str) -> Any:
    # ixoncdkingress keeps TIMEOUT (milliseconds) as a deprecated module attribute.
    if name == "TIMEOUT":
        warnings.warn("TIMEOUT is deprecated", category=DeprecationWarning, stacklevel=2)
        return 3000
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
