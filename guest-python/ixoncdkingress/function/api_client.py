"""The IXON API client (ixoncdkingress 1.0.0's ``ApiClient`` names and signatures).

The real client runs API discovery and sends requests itself with ``requests``; in wasmfn the
host does both (the ``ixon-api`` WIT interface): it resolves ``url_name`` through discovery, adds
the caller's credentials (the function never sees the token, so ``repr`` shows none), and only
allows the endpoints the function's ``function.toml`` lists. This client encodes the request as
the SDK does (``data`` as JSON unless it is bytes, ``query`` as ``requests``' ``params``: a
``None`` value drops the key, a list repeats it), sends its default headers (``Api-Version``,
``Api-Application`` after ``set_custom_api_application``, ``Api-Company``) and returns the
answer's JSON, or the SDK's error shape when the answer is not JSON. As in the SDK, the HTTP
status is not checked.

The backend is any object with::

    request(method: str, url_name: str, url_args: list[tuple[str, str]],
            query: list[tuple[str, str]], headers: list[tuple[str, str]],
            body: bytes | None) -> tuple[int, str | None, bytes]   # status, content type, body

that raises this module's ``ApiError`` subclasses (``api_error`` builds them from the WIT
``api-error`` cases).
"""

import codecs
import json
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

Query = MutableMapping[str, None | str | list[str]]

ClientRequest = dict[str, Any] | list[dict[str, Any]] | bytes

ServerResponse = dict[str, Any]

# ``requests.Session.request`` options that have no meaning here (the host sends the request).
_IGNORED_REQUEST_OPTIONS = frozenset(
    {"timeout", "verify", "allow_redirects", "stream", "cert", "proxies"}
)


class ApiError(Exception):
    """The host could not perform an IXON API request."""


class ApiDenied(ApiError):
    """The endpoint is not in the function's allowlist (``function.toml``); nothing was sent."""


class UnknownEndpoint(ApiError, KeyError):
    """Discovery has no URL with this name, or the URL arguments do not fit its template.

    A ``KeyError``, as the real SDK raises for an unknown ``url_name``.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ApiUnavailable(ApiError):
    """The IXON API could not be reached, timed out, or its discovery failed."""


class ApiResponseTooLarge(ApiError):
    """The answer was larger than the host's limit."""


def api_error(kind: str, message: str) -> ApiError:
    """The exception for a WIT ``api-error`` case (``denied``, ``unknown-endpoint``,
    ``too-large``, ``unavailable``), for backend adapters to raise."""
    cls = {
        "denied": ApiDenied,
        "unknown-endpoint": UnknownEndpoint,
        "too-large": ApiResponseTooLarge,
        "unavailable": ApiUnavailable,
    }.get(kind, ApiError)
    return cls(message)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value if isinstance(value, str) else str(value)


def _query_pairs(query: Any) -> list[tuple[str, str]]:
    """Query pairs as ``requests`` encodes ``params``: None values dropped, lists repeated."""
    if query is None:
        return []
    if isinstance(query, (str, bytes)):
        return parse_qsl(_text(query), keep_blank_values=True)
    items = query.items() if isinstance(query, Mapping) else query
    pairs = []
    for key, values in items:
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            values = [values]
        for value in values:
            if value is not None:
                pairs.append((_text(key), _text(value)))
    return pairs


def _header_pairs(*layers: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Merge header dicts case-insensitively (later wins; a None value removes the header)."""
    merged: dict[str, tuple[str, Any]] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    pairs = []
    for name, value in merged.values():
        if value is None:
            continue
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        elif not isinstance(value, str):
            raise ValueError(
                f"Header part ({value!r}) from ({name!r}, {value!r}) must be of type str or "
                f"bytes, not {type(value)}"
            )
        pairs.append((name, value))
    return pairs


def _encoding(content_type: str | None) -> str | None:
    """The known charset named by a Content-Type, if any."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset" and value:
            charset = value.strip().strip("\"'")
            try:
                codecs.lookup(charset)
            except LookupError:
                return None
            return charset
    return None


class ApiClient:
    """
    class for a API client
    """

    _base_url: str
    """
    The base URL (entry point) of the API server
    """

    _default_headers: dict[str, str]
    """
    The headers to send along with every request (the host adds the credentials)
    """

    def __init__(
        self,
        backend: Any,
        base_url: str = "",
        api_application: str | None = None,
        api_company: str | None = None,
    ) -> None:
        self._backend = backend
        self._base_url = base_url

        self._default_headers = {
            "Api-Version": "2",
        }

        if api_application:
            self._default_headers["Api-Application"] = api_application
        if api_company:
            self._default_headers["Api-Company"] = api_company

    def set_custom_api_application(self, api_application: str) -> None:
        """
        Modifies the Api-Application header used for API server requests.
        """
        self._default_headers["Api-Application"] = api_application

    def get(
        self,
        url_name: str,
        url_args: dict[str, str] | None = None,
        query: Query | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> ServerResponse:
        """
        Performs a GET request on the API server, on the URL with the given
        name

        The URL names are found in the discovery
        """
        return self._request(
            "GET", url_name, url_args=url_args, query=query, headers=headers, **kwargs
        )

    def patch(
        self,
        url_name: str,
        data: ClientRequest,
        url_args: dict[str, str] | None = None,
        query: Query | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> ServerResponse:
        """
        Performs a PATCH request on the API server, on the URL with the given
        name

        The URL names are found in the discovery
        """
        return self._request(
            "PATCH", url_name, url_args=url_args, query=query, data=data, headers=headers, **kwargs
        )

    def post(
        self,
        url_name: str,
        data: ClientRequest,
        url_args: dict[str, str] | None = None,
        query: Query | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> ServerResponse:
        """
        Performs a POST request on the API server, on the URL with the given
        name

        The URL names are found in the discovery
        """
        return self._request(
            "POST", url_name, url_args=url_args, query=query, data=data, headers=headers, **kwargs
        )

    def options(
        self,
        url_name: str,
        url_args: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> ServerResponse:
        """
        Performs an OPTIONS request on the API server, on the URL with the given
        name

        The URL names are found in the discovery
        """
        return self._request("OPTIONS", url_name, url_args=url_args, headers=headers, **kwargs)

    def put(
        self,
        url_name: str,
        url_args: dict[str, str] | None = None,
        data: ClientRequest | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """
        Performs a PUT request on the API server, on the URL with the given
        name

        The URL names are found in the discovery
        """
        return self._request(
            "PUT", url_name, url_args=url_args, data=data, headers=headers, **kwargs
        )

    def delete(
        self,
        url_name: str,
        url_args: dict[str, str] | None = None,
        data: ClientRequest | None = None,
        query: Query | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> ServerResponse:
        """
        Performs a DELETE request on the API server, on the URL with the given
        name

        The URL names are found in the discovery
        """
        return self._request(
            "DELETE", url_name, url_args=url_args, query=query, data=data, headers=headers, **kwargs
        )

    def _request(
        self,
        method: str,
        url_name: str,
        url_args: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        query: Query | None = None,
        data: ClientRequest | None = None,
        **kwargs: Any,
    ) -> ServerResponse:
        """
        Sends a request to the API server (through the host)
        """
        json_data = kwargs.pop("json", None)
        for name in kwargs:
            if name not in _IGNORED_REQUEST_OPTIONS:
                raise TypeError(f"request() got an unexpected keyword argument {name!r}")

        if url_args is None:
            url_args = {}
        args = [(str(key), str(value)) for key, value in url_args.items()]

        if headers is None:
            headers = {}
        extra_headers: dict[str, str] = {}

        data_json: bytes | None
        if data is None or isinstance(data, bytes):
            data_json = data
        else:
            data_json = json.dumps(data).encode("UTF-8")
        if data_json is None and json_data is not None:
            # As requests does for its json= argument.
            data_json = json.dumps(json_data, allow_nan=False).encode("utf-8")
            extra_headers["Content-Type"] = "application/json"

        status, content_type, body = self._backend.request(
            method,
            url_name,
            args,
            _query_pairs(query),
            _header_pairs(extra_headers, self._default_headers, headers),
            data_json,
        )
        del status  # as in the SDK: the answer's JSON is returned whatever the status
        body = bytes(body)
        encoding = _encoding(content_type)
        try:
            return json.loads(body.decode(encoding) if encoding else body)  # type: ignore[no-any-return]
        except ValueError:
            return {
                "type": "Error",
                "data": [
                    {
                        "message": body.decode(encoding or "utf-8", errors="replace"),
                    }
                ],
                "status": "error",
            }

    def __repr__(self) -> str:
        return f"<ApiClient base_url={self._base_url}, default_headers={self._default_headers},>"

