"""The CPython peers' document store for benches/documents: mongomock, in memory.

On the PYTHONPATH of ixoncdkingress (which builds a `pymongo.MongoClient` for every call from
the call's `dbConfig`) this makes every `MongoClient(...)` the one process-wide mongomock client,
so the collection outlives the call as a real database would, with no network or connection
cost: the fastest store these peers could have, and no persistence.
"""

import mongomock
import pymongo

_CLIENT = mongomock.MongoClient()


class _SharedClient:
    """Stands for `pymongo.MongoClient`: constructing one gives the shared client; the class
    subscripts (`MongoClient[DocumentType]`) in annotations as pymongo's does."""

    def __new__(cls, *args, **kwargs):
        return _CLIENT

    def __class_getitem__(cls, item):
        return cls


pymongo.MongoClient = _SharedClient
