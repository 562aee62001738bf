"""Adapters from the Python clients to the host's WIT imports (inside a bundle only).

Each adapter calls the generated bindings and turns a WIT error variant into the exception the
client's module defines for it (``pymongo.errors`` for documents).
"""

import re
from typing import Any

from componentize_py_types import Err
from wit_world.imports import documents, ixon_api, objects

from ixoncdkingress.function.api_client import api_error
from ixoncdkingress.function.document_db_client import document_error
from wasmfn.objects import object_error


def _kind(variant: Any) -> str:
    """``DocumentError_DuplicateKey`` -> ``duplicate-key``."""
    name = type(variant).__name__.split("_", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _call(convert: Any, function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except Err as error:
        variant = error.value
        raise convert(_kind(variant), str(getattr(variant, "value", variant))) from None


class Documents:
    """The document store backend of ``DocumentDBClient``."""

    def find(self, filter_json: str, projection_json: str | None, sort_json: str | None, skip: int, limit: int) -> list[str]:
        options = documents.FindOptions(projection_json, sort_json, skip, limit)
        return _call(document_error, documents.find, filter_json, options)

    def count(self, filter_json: str) -> int:
        return _call(document_error, documents.count, filter_json)

    def insert(self, documents_json: list[str]) -> list[str]:
        return _call(document_error, documents.insert, documents_json)

    def update(self, filter_json: str, update_json: str, many: bool, upsert: bool) -> tuple[int, int, str | None]:
        result = _call(document_error, documents.update, filter_json, update_json, many, upsert)
        return result.matched, result.modified, result.upserted_id

    def replace(self, filter_json: str, replacement_json: str, upsert: bool) -> tuple[int, int, str | None]:
        result = _call(document_error, documents.replace, filter_json, replacement_json, upsert)
        return result.matched, result.modified, result.upserted_id

    def delete(self, filter_json: str, many: bool) -> int:
        return _call(document_error, documents.delete, filter_json, many)


class Objects:
    """The object storage backend of ``ObjectStorageClient``."""

    def put(self, key: str, body: bytes, content_type: str | None, metadata: list[tuple[str, str]]) -> Any:
        return _call(object_error, objects.put, key, bytes(body), content_type, metadata)

    def get(self, key: str) -> tuple[Any, bytes]:
        stored = _call(object_error, objects.get, key)
        return stored.info, stored.body

    def head(self, key: str) -> Any:
        return _call(object_error, objects.head, key)

    def delete(self, key: str) -> bool:
        return _call(object_error, objects.delete, key)

    def list(self, prefix: str, start_after: str | None, max_keys: int) -> tuple[list[Any], str | None]:
        listing = _call(object_error, objects.list_objects, prefix, start_after, max_keys)
        return listing.objects, listing.next_start_after

    def presign(self, key: str, method: str, expires_in: int) -> str:
        return _call(object_error, objects.presign, key, method, expires_in)


class IxonApi:
    """The IXON API backend of ``ApiClient``: the host adds the caller's credentials."""

    def request(
        self,
        method: str,
        url_name: str,
        url_args: list[tuple[str, str]],
        query: list[tuple[str, str]],
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> tuple[int, str | None, bytes]:
        request = ixon_api.ApiRequest(method, url_name, url_args, query, headers, None if body is None else bytes(body))
        response = _call(api_error, ixon_api.request, request)
        return response.status, response.content_type, response.body


DOCUMENTS = Documents()
OBJECTS = Objects()
IXON_API = IxonApi()
