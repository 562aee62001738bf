"""A pure-Python subset of pymongo's ``bson`` package, for wasmfn functions.

wasmfn's document store speaks MongoDB extended JSON, not BSON, so only what functions use
directly is provided: ``ObjectId`` (``bson.objectid``), the exceptions (``bson.errors``) and
``bson.json_util``'s ``dumps``/``loads``. There is no BSON encoder (``bson.encode``/``decode``).
"""

from bson.errors import BSONError, InvalidBSON, InvalidDocument, InvalidId, InvalidStringData
from bson.objectid import ObjectId

__all__ = [
    "BSONError",
    "InvalidBSON",
    "InvalidDocument",
    "InvalidId",
    "InvalidStringData",
    "ObjectId",
]
