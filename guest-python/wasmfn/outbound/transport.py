"""HTTP requests through the host's ``wasi:http/outgoing-handler``: :func:`send` and the
:class:`Response` it answers, as ``http.client`` gives responses."""

import http.client
import io
import urllib.parse

from .. import _buildtime
from .errors import ConnectionFailed, OutboundTimeout, ResponseTooLarge, http_error, origin

_CHUNK = 64 * 1024
# wasi:http writes at most 4096 bytes per blocking write.
_WRITE = 4096
# Headers the host sets itself or that belong to a connection, not to the request.
_DROPPED = {
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
}


class _WasiTransport:
    """Sends one request with wasi:http and answers ``(status, headers, body reader)``."""

    def __init__(self) -> None:
        from wit_world.imports import outgoing_handler, streams
        from wit_world.imports import wasi_http_types as types

        self._handler = outgoing_handler
        self._streams = streams
        self._types = types

    def fetch(self, method, scheme, authority, path, headers, body, timeouts):
        _buildtime.refuse("an outbound request")
        from componentize_py_types import Err

        t = self._types
        fields = t.Fields.from_list([(name, value) for name, value in headers])
        request = t.OutgoingRequest(fields)
        methods = {
            "GET": t.Method_Get(),
            "HEAD": t.Method_Head(),
            "POST": t.Method_Post(),
            "PUT": t.Method_Put(),
            "DELETE": t.Method_Delete(),
            "OPTIONS": t.Method_Options(),
            "PATCH": t.Method_Patch(),
        }
        request.set_method(methods.get(method) or t.Method_Other(method))
        request.set_scheme(t.Scheme_Https() if scheme == "https" else t.Scheme_Http())
        request.set_authority(authority)
        request.set_path_with_query(path)
        outgoing = request.body()
        options = t.RequestOptions()
        connect, first_byte, between = timeouts
        if connect is not None:
            options.set_connect_timeout(int(connect * 1e9))
        if first_byte is not None:
            options.set_first_byte_timeout(int(first_byte * 1e9))
        if between is not None:
            options.set_between_bytes_timeout(int(between * 1e9))
        try:
            future = self._handler.handle(request, options)
        except Err as e:
            raise http_error(e.value, scheme, authority) from None
        try:
            stream = outgoing.write()
            try:
                for chunk in body:
                    for start in range(0, len(chunk), _WRITE):
                        stream.blocking_write_and_flush(bytes(chunk[start : start + _WRITE]))
            finally:
                stream.__exit__(None, None, None)
            t.OutgoingBody.finish(outgoing, None)
        except Err:
            # The host stopped taking the body: the response (or its error) says why.
            pass
        pollable = future.subscribe()
        pollable.block()
        pollable.__exit__(None, None, None)
        answer = future.get()
        future.__exit__(None, None, None)
        from componentize_py_types import Ok

        # option<result<result<incoming-response, error-code>>>: ready, taken once, and then
        # the request's own outcome.
        if not isinstance(answer, Ok):
            raise ConnectionFailed(f"{origin(scheme, authority)}: no response")
        if isinstance(answer.value, Err):
            raise http_error(answer.value.value, scheme, authority)
        response = answer.value.value
        status = response.status()
        header_fields = response.headers()
        pairs = [(name, value.decode("latin-1")) for name, value in header_fields.entries()]
        header_fields.__exit__(None, None, None)
        incoming = response.consume()
        return status, pairs, _WasiBody(self, response, incoming, scheme, authority)


class _WasiBody:
    """Reads a response body from its wasi:io stream; drops the resources child first."""

    def __init__(self, transport, response, incoming, scheme, authority) -> None:
        self._transport = transport
        self._response = response
        self._incoming = incoming
        self._stream = incoming.stream()
        self._where = (scheme, authority)

    def read(self, size: int) -> bytes:
        from componentize_py_types import Err

        if self._stream is None:
            return b""
        try:
            return self._stream.blocking_read(size)
        except Err as e:
            closed = type(e.value).__name__.endswith("Closed")
            if closed:
                self.close()
                return b""
            code = None
            failure = getattr(e.value, "value", None)
            if failure is not None:
                code = self._transport._types.http_error_code(failure)
            # Errors met while the body streams carry no error code in wasmtime's wasi:http,
            # only their text.
            detail = failure.to_debug_string() if failure is not None and code is None else ""
            self.close()
            if code is not None:
                raise http_error(code, *self._where) from None
            where = origin(*self._where)
            if "body size" in detail:
                limit = detail.rpartition("limit: ")[2].split(" ")[0]
                shown = f" of {limit} bytes" if limit.isdigit() else ""
                raise ResponseTooLarge(f"the response of {where} is larger than the limit{shown}") from None
            if "timeout" in detail:
                raise OutboundTimeout(f"{where} stopped sending the response") from None
            raise ConnectionFailed(f"{where}: the response broke off") from None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.__exit__(None, None, None)
            self._stream = None
            self._incoming.__exit__(None, None, None)
            self._response.__exit__(None, None, None)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


_transport = None


def get_transport():
    """The transport requests go through: the host's, made on first use."""
    global _transport
    if _transport is None:
        _transport = _WasiTransport()
    return _transport


def set_transport(transport) -> object:
    """Replaces the transport (tests); answers the previous one."""
    global _transport
    previous, _transport = _transport, transport
    return previous


class Response(io.RawIOBase):
    """A response as ``http.client.HTTPResponse`` gives it: ``status``, ``reason``, ``headers``
    (an ``http.client.HTTPMessage``), ``read()``, ``getheader()``, iteration by line."""

    def __init__(self, method: str, url: str, status: int, pairs, body) -> None:
        super().__init__()
        self.method = method
        self.url = url
        self.status = status
        self.code = status
        self.reason = http.client.responses.get(status, "")
        self.version = 11
        message = http.client.HTTPMessage()
        for name, value in pairs:
            message[name] = value
        self.headers = message
        self.msg = message
        self._pairs = list(pairs)
        self._body = body
        self._done = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if self._done:
            body.close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._done:
            return 0
        data = self._body.read(min(len(buffer), _CHUNK))
        if not data:
            self._done = True
            return 0
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while not self._done:
                data = self._body.read(_CHUNK)
                if not data:
                    self._done = True
                    break
                parts.append(data)
            return b"".join(parts)
        return super().read(size)

    def read1(self, size: int = -1) -> bytes:
        return self.read(_CHUNK if size is None or size < 0 else size)

    def close(self) -> None:
        self._done = True
        self._body.close()
        super().close()

    def isclosed(self) -> bool:
        return self._done

    def info(self):
        return self.headers

    def geturl(self) -> str:
        return self.url

    def getcode(self) -> int:
        return self.status

    def getheader(self, name: str, default=None):
        values = self.headers.get_all(name)
        return ", ".join(values) if values else default

    def getheaders(self):
        return list(self._pairs)


def chunks(body):
    if body is None:
        return []
    if isinstance(body, str):
        return [body.encode("utf-8")]
    if isinstance(body, (bytes, bytearray, memoryview)):
        return [bytes(body)]
    if hasattr(body, "read"):
        def reader():
            while True:
                data = body.read(_CHUNK)
                if not data:
                    return
                yield data.encode("utf-8") if isinstance(data, str) else data
        return reader()
    return (part.encode("utf-8") if isinstance(part, str) else part for part in body)


def send(method, url, headers=(), body=None, timeout=None, read_timeout=None) -> Response:
    """Sends one request through the host and answers its :class:`Response` (redirects are
    not followed: the libraries above follow them, each hop a request of its own).

    ``timeout`` bounds connecting (and, without ``read_timeout``, each wait for data);
    both are bounded by the invocation's own deadline.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs can be requested, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"the URL {url!r} has no host")
    authority = parts.netloc.rpartition("@")[2]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if isinstance(headers, dict):
        headers = headers.items()
    pairs = []
    for name, value in headers:
        if name.lower() in _DROPPED or value is None:
            continue
        if isinstance(value, str):
            value = value.encode("latin-1")
        pairs.append((name, bytes(value)))
    read = timeout if read_timeout is None else read_timeout
    status, response_headers, reader = get_transport().fetch(
        method.upper(), scheme, authority, path, pairs, chunks(body), (timeout, read, read)
    )
    return Response(method.upper(), url, status, response_headers, reader)


# ---- http.client ---------------------------------------------------------------------------

