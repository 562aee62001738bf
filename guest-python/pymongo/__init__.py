"""A pure-Python subset of pymongo for wasmfn functions.

wasmfn functions reach their document collection through ``context.document_db_client``
(ixoncdkingress's ``DocumentDBClient``), not through a ``MongoClient``: this package provides
what such functions import from pymongo: the sort constants, ``pymongo.errors``,
``pymongo.results`` and ``pymongo.cursor.Cursor``. There is no ``MongoClient``.
"""

ASCENDING = 1
"""Ascending sort order."""
DESCENDING = -1
"""Descending sort order."""

version_tuple = (4, 7, 0, "wasmfn")
__version__ = version = "4.7.0+wasmfn"

from pymongo.cursor import Cursor, CursorType  # noqa: E402
from pymongo.results import (  # noqa: E402
    DeleteResult,
    InsertManyResult,
    InsertOneResult,
    UpdateResult,
)

__all__ = [
    "ASCENDING",
    "Cursor",
    "CursorType",
    "DESCENDING",
    "DeleteResult",
    "InsertManyResult",
    "InsertOneResult",
    "UpdateResult",
]
