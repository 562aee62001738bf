"""Request and response values as a function sees them."""

import json
from typing import Any, Iterable


class Headers:
    """Case-insensitive, read-only view of header pairs (names are stored in lower case)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = [(name.lower(), value) for name, value in pairs]

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self._pairs if key == name]

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self):
        return iter(key for key, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


class Request:
    """The request that triggered this invocation.

    ``path`` is the custom path after ``/invoke`` (``/`` when there is none); ``query`` keeps
    every pair in order, ``args`` the first value of each name; ``topic`` is the MQTT topic for
    MQTT-triggered calls.
    """

    def __init__(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: list[tuple[str, str]],
        body: bytes,
        trigger: str,
    ) -> None:
        self.method = method
        self.path = path
        self.query = list(query)
        # Made into `Headers` when first read: most functions never look at them.
        self._header_pairs = headers
        self._headers: Headers | None = None
        self.body = bytes(body)
        self.trigger = trigger

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._header_pairs)
        return self._headers

    @property
    def args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        for name, value in self.query:
            args.setdefault(name, value)
        return args

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def topic(self) -> str | None:
        return self.headers.get("x-topic")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path} trigger={self.trigger}>"


class Response:
    """A response chosen by the function: status, headers and body.

    ``body`` may be ``bytes``, ``str`` (sent as UTF-8 text) or any JSON-serialisable value
    (sent as JSON). ``content_type`` overrides the type the body implies.
    """

    def __init__(
        self,
        body: Any = b"",
        status: int = 200,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code (100-599), not {status!r}")
        self.status = status
        self.headers = list(headers.items() if isinstance(headers, dict) else headers or [])
        if isinstance(body, (bytes, bytearray, memoryview)):
            self.body, implied = bytes(body), "application/octet-stream"
        elif isinstance(body, str):
            self.body, implied = body.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            self.body, implied = json.dumps(body).encode("utf-8"), "application/json"
        has_type = any(name.lower() == "content-type" for name, _ in self.headers)
        if content_type is not None:
            self.headers = [(n, v) for n, v in self.headers if n.lower() != "content-type"]
            self.headers.append(("content-type", content_type))
        elif not has_type and self.body:
            self.headers.append(("content-type", implied))

    @classmethod
    def json_body(cls, body: bytes) -> "Response":
        """A 200 response carrying ``body``, already encoded JSON (what most functions return)."""
        response = cls.__new__(cls)
        response.status = 200
        response.headers = [("content-type", "application/json")]
        response.body = body
        return response

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"
