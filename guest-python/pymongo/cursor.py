"""A pymongo-style cursor over the results of ``find``.

Like pymongo's, the cursor is lazy: nothing is sent until the first document is asked for, and
``sort``, ``skip``, ``limit`` (and the other chainable options) raise
``pymongo.errors.InvalidOperation`` once iteration has started. The whole result arrives in one
answer from the host (which caps its size); documents are decoded one at a time as they are
iterated.

The cursor works on any ``collection`` object with a method
``_cursor_fetch(filter, projection, sort, skip, limit) -> Iterable[document]``, where ``sort`` is
a list of ``(field, direction)`` pairs or None and ``limit`` 0 means no limit.
"""

import copy
from collections import abc
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pymongo.errors import InvalidOperation

__all__ = ["Cursor", "CursorType"]

ASCENDING = 1


class CursorType:
    NON_TAILABLE = 0
    """The standard cursor type."""
    TAILABLE = 2
    TAILABLE_AWAIT = 34
    EXHAUST = 64


def _index_list(key_or_list: Any, direction: Any = None) -> list[Any]:
    """``(key, direction)`` pairs from a key, a key and a direction, or a list (pymongo's rules)."""
    if direction is not None:
        if not isinstance(key_or_list, str):
            raise TypeError(f"Expected a string and a direction, not {type(key_or_list)}")
        return [(key_or_list, direction)]
    if isinstance(key_or_list, str):
        return [(key_or_list, ASCENDING)]
    if isinstance(key_or_list, abc.ItemsView):
        return list(key_or_list)
    if isinstance(key_or_list, abc.Mapping):
        return list(key_or_list.items())
    if not isinstance(key_or_list, (list, tuple)):
        raise TypeError(
            "if no direction is specified, key_or_list must be an instance of list, "
            f"not {type(key_or_list)}"
        )
    return [(item, ASCENDING) if isinstance(item, str) else item for item in key_or_list]


def _validate_index_key_pair(key: Any, value: Any) -> None:
    if not isinstance(key, str):
        raise TypeError(f"first item in each key pair must be an instance of str, not {type(key)}")
    if not isinstance(value, (str, int, abc.Mapping)):
        raise TypeError(
            "second item in each key pair must be 1, -1, "
            "'2d', or another valid MongoDB index specifier."
            f", not {type(value)}"
        )


def _index_document(index_list: Any) -> list[tuple[str, Any]]:
    """The validated ``(key, direction)`` pairs of a sort specification, in order."""
    if not isinstance(index_list, (list, tuple, abc.Mapping)):
        raise TypeError(
            "must use a dictionary or a list of (key, direction) pairs, not: " + repr(index_list)
        )
    if not len(index_list):
        raise ValueError("key_or_list must not be empty")
    index: dict[str, Any] = {}
    items = index_list.items() if isinstance(index_list, abc.Mapping) else index_list
    for item in items:
        if isinstance(item, str):
            item = (item, ASCENDING)
        key, value = item
        _validate_index_key_pair(key, value)
        index[key] = value
    return list(index.items())


def _fields_list_to_dict(fields: Any, option_name: str) -> Mapping[str, Any]:
    """``["a", "b"]`` becomes ``{"a": 1, "b": 1}``; a mapping is kept as is."""
    if isinstance(fields, abc.Mapping):
        return fields
    if isinstance(fields, (abc.Sequence, abc.Set)) and not isinstance(fields, (str, bytes)):
        if not all(isinstance(field, str) for field in fields):
            raise TypeError(f"{option_name} must be a list of key names, each an instance of str")
        return dict.fromkeys(fields, 1)
    raise TypeError(f"{option_name} must be a mapping or list of key names")


def _validate_is_mapping(option: str, value: Any) -> None:
    if not isinstance(value, abc.Mapping):
        raise TypeError(
            f"{option} must be an instance of dict, bson.son.SON, or "
            "any other type that inherits from "
            "collections.Mapping"
        )


def _unsupported(option: str) -> NotImplementedError:
    return NotImplementedError(f"the {option!r} option is not supported by wasmfn's document store")


class Cursor:
    """A cursor over the documents a ``find`` matches.

    Iterate it (``for doc in cursor``, ``list(cursor)``, ``next(cursor)``,
    ``cursor.to_list()``); refine it before iterating with ``sort``, ``skip`` and ``limit``.
    """

    def __init__(
        self,
        collection: Any,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | Iterable[str] | None = None,
        skip: int = 0,
        limit: int = 0,
        no_cursor_timeout: bool = False,
        cursor_type: int = CursorType.NON_TAILABLE,
        sort: Any = None,
        allow_partial_results: bool = False,
        oplog_replay: bool = False,
        batch_size: int = 0,
        collation: Any = None,
        hint: Any = None,
        max_scan: int | None = None,
        max_time_ms: int | None = None,
        max: Any = None,
        min: Any = None,
        return_key: bool | None = None,
        show_record_id: bool | None = None,
        snapshot: bool | None = None,
        comment: Any = None,
        session: Any = None,
        allow_disk_use: bool | None = None,
        let: Any = None,
    ) -> None:
        self._collection = collection
        spec = filter or {}
        _validate_is_mapping("filter", spec)
        if not isinstance(skip, int):
            raise TypeError("skip must be an instance of int")
        if skip < 0:
            raise ValueError("skip must be >= 0")
        if not isinstance(limit, int):
            raise TypeError("limit must be an instance of int")
        if not isinstance(batch_size, int):
            raise TypeError("batch_size must be an integer")
        if batch_size < 0:
            raise ValueError("batch_size must be >= 0")
        if cursor_type not in (
            CursorType.NON_TAILABLE,
            CursorType.TAILABLE,
            CursorType.TAILABLE_AWAIT,
            CursorType.EXHAUST,
        ):
            raise ValueError("not a valid value for cursor_type")
        if cursor_type not in (CursorType.NON_TAILABLE, CursorType.EXHAUST):
            raise _unsupported("cursor_type")
        for name, value in (
            ("collation", collation),
            ("max", max),
            ("min", min),
            ("return_key", return_key),
            ("show_record_id", show_record_id),
            ("let", let),
        ):
            if value:
                raise _unsupported(name)
        if projection is not None:
            projection = _fields_list_to_dict(projection, "projection")

        self._spec: Mapping[str, Any] = spec
        self._projection: Mapping[str, Any] | None = projection
        self._skip = skip
        self._limit = limit
        self._ordering: list[tuple[str, Any]] | None = _index_document(sort) if sort else None
        self._batch_size = batch_size
        # Accepted for compatibility; they do not change the result.
        self._hint = hint
        self._comment = comment
        self._max_time_ms = max_time_ms
        self._empty = False
        self._reset()

    def _reset(self) -> None:
        self._started = False
        self._data: Iterator[Any] | None = None
        self._retrieved = 0
        self._killed = False

    # -- chainable options (only before iteration) -----------------------------------------

    def _check_okay_to_chain(self) -> None:
        if self._started:
            raise InvalidOperation("cannot set options after executing query")

    def sort(self, key_or_list: Any, direction: Any = None) -> "Cursor":
        """Sort the results: ``sort("a")``, ``sort("a", -1)`` or ``sort([("a", 1), ("b", -1)])``.

        Only the last ``sort`` applied has any effect.
        """
        self._check_okay_to_chain()
        keys = _index_list(key_or_list, direction)
        self._ordering = _index_document(keys)
        return self

    def skip(self, skip: int) -> "Cursor":
        """Skip the first ``skip`` results."""
        if not isinstance(skip, int):
            raise TypeError("skip must be an integer")
        if skip < 0:
            raise ValueError("skip must be >= 0")
        self._check_okay_to_chain()
        self._skip = skip
        return self

    def limit(self, limit: int) -> "Cursor":
        """Return at most ``limit`` results; 0 means no limit (a negative limit counts as its
        absolute value)."""
        if not isinstance(limit, int):
            raise TypeError("limit must be an integer")
        self._check_okay_to_chain()
        self._empty = False
        self._limit = limit
        return self

    def batch_size(self, batch_size: int) -> "Cursor":
        """Accepted for compatibility (the host answers in one batch)."""
        if not isinstance(batch_size, int):
            raise TypeError("batch_size must be an integer")
        if batch_size < 0:
            raise ValueError("batch_size must be >= 0")
        self._check_okay_to_chain()
        self._batch_size = batch_size
        return self

    def max_time_ms(self, max_time_ms: int | None) -> "Cursor":
        """Accepted for compatibility (the host applies its own time limit)."""
        if not isinstance(max_time_ms, int) and max_time_ms is not None:
            raise TypeError("max_time_ms must be an integer or None")
        self._check_okay_to_chain()
        self._max_time_ms = max_time_ms
        return self

    def hint(self, index: Any) -> "Cursor":
        """Accepted for compatibility (it names an index; it does not change the results)."""
        self._check_okay_to_chain()
        self._hint = index
        return self

    def comment(self, comment: Any) -> "Cursor":
        """Accepted for compatibility."""
        self._check_okay_to_chain()
        self._comment = comment
        return self

    # -- iteration -------------------------------------------------------------------------

    def _fetch(self) -> None:
        self._started = True
        if self._empty:
            self._data = iter(())
            return
        documents = self._collection._cursor_fetch(
            self._spec,
            self._projection,
            self._ordering,
            self._skip,
            abs(self._limit),
        )
        self._data = iter(documents)

    def __iter__(self) -> "Cursor":
        return self

    def __next__(self) -> Any:
        if not self._started:
            try:
                self._fetch()
            except BaseException:
                self._killed = True
                raise
        assert self._data is not None
        try:
            document = next(self._data)
        except StopIteration:
            self._killed = True
            raise
        self._retrieved += 1
        return document

    next = __next__

    def to_list(self, length: int | None = None) -> list[Any]:
        """The remaining documents as a list (at most ``length`` of them)."""
        if length is not None and length < 0:
            raise ValueError("to_list() length must be greater than 0")
        result: list[Any] = []
        for document in self:
            result.append(document)
            if length is not None and len(result) >= length:
                break
        return result

    def __getitem__(self, index: int | slice) -> Any:
        """``cursor[i]`` returns one document; ``cursor[a:b]`` sets skip and limit."""
        self._check_okay_to_chain()
        self._empty = False
        if isinstance(index, slice):
            if index.step is not None:
                raise IndexError("Cursor instances do not support slice steps")
            skip = 0
            if index.start is not None:
                if index.start < 0:
                    raise IndexError("Cursor instances do not support negative indices")
                skip = index.start
            if index.stop is not None:
                limit = index.stop - skip
                if limit < 0:
                    raise IndexError(
                        f"stop index must be greater than start index for slice {index!r}"
                    )
                if limit == 0:
                    self._empty = True
            else:
                limit = 0
            self._skip = skip
            self._limit = limit
            return self
        if isinstance(index, int):
            if index < 0:
                raise IndexError("Cursor instances do not support negative indices")
            clone = self.clone()
            clone.skip(index + self._skip)
            clone.limit(-1)
            for document in clone:
                return document
            raise IndexError("no such item for Cursor instance")
        raise TypeError(f"index {index!r} cannot be applied to Cursor instances")

    # -- state -----------------------------------------------------------------------------

    def clone(self) -> "Cursor":
        """A new, unevaluated cursor with this cursor's options."""
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        clone._spec = copy.deepcopy(self._spec)
        clone._projection = copy.deepcopy(self._projection)
        clone._ordering = copy.deepcopy(self._ordering)
        clone._reset()
        return clone

    __copy__ = clone

    def __deepcopy__(self, memo: Any) -> "Cursor":
        return self.clone()

    def rewind(self) -> "Cursor":
        """Rewind this cursor to its unevaluated state (its options are kept)."""
        self._reset()
        return self

    def close(self) -> None:
        """Close this cursor; iterating it afterwards yields nothing."""
        self._started = True
        self._killed = True
        self._data = iter(())

    @property
    def alive(self) -> bool:
        """Can this cursor still return documents?"""
        return not self._killed

    @property
    def retrieved(self) -> int:
        """The number of documents retrieved so far."""
        return self._retrieved

    @property
    def collection(self) -> Any:
        """The collection this cursor iterates."""
        return self._collection

    @property
    def cursor_id(self) -> int | None:
        return None

    @property
    def address(self) -> None:
        return None

    @property
    def session(self) -> None:
        return None

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.close()
