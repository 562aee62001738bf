"""Exceptions raised by the ``bson`` package (names and hierarchy of pymongo's ``bson.errors``)."""

from typing import Any


class BSONError(Exception):
    """Base class for all BSON exceptions."""


class InvalidBSON(BSONError):
    """Raised when trying to decode invalid BSON (here: invalid extended JSON)."""


class InvalidStringData(BSONError):
    """Raised when trying to encode a string containing non-UTF8 data."""


class InvalidDocument(BSONError):
    """Raised when trying to encode an invalid document."""

    def __init__(self, message: str, document: Any = None) -> None:
        super().__init__(message)
        self._document = document

    @property
    def document(self) -> Any:
        """The invalid document that caused the error, when known."""
        return self._document


class InvalidId(BSONError):
    """Raised when trying to create an ObjectId from invalid data."""
