"""``http.client`` connections (and so ``urllib.request``) over the host's outbound requests."""

import http.client

from .errors import OutboundError
from .transport import chunks, send


class HTTPConnection:
    """``http.client.HTTPConnection`` over the host's outbound requests."""

    default_port = 80
    scheme = "http"
    debuglevel = 0
    # urllib.request asks the class for a body's length.
    _get_content_length = staticmethod(http.client.HTTPConnection._get_content_length)

    def __init__(self, host, port=None, timeout=None, source_address=None, blocksize=8192, **_):
        if port is None and host.count(":") == 1:
            host, _, given = host.partition(":")
            port = int(given) if given else None
        self.host = host
        self.port = port or self.default_port
        self.timeout = timeout if isinstance(timeout, (int, float)) else None
        self.sock = None
        self._method = None
        self._url = None
        self._headers = []
        self._body = []
        self._response = None
        self.debuglevel = 0

    def set_debuglevel(self, level):
        self.debuglevel = level

    def set_tunnel(self, host, port=None, headers=None):
        raise OutboundError("proxies (CONNECT tunnels) are not available to functions")

    def connect(self):
        pass

    def close(self):
        if self._response is not None:
            self._response.close()
            self._response = None

    def _authority(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == self.default_port else f"{host}:{self.port}"

    def putrequest(self, method, url, skip_host=False, skip_accept_encoding=False):
        self._method = method
        if url.startswith(("http://", "https://")):
            self._url = url
        else:
            self._url = f"{self.scheme}://{self._authority()}{url or '/'}"
        self._headers = []
        self._body = []

    def putheader(self, header, *values):
        shown = []
        for value in values:
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("latin-1")
            shown.append(str(value))
        self._headers.append((header, ", ".join(shown)))

    def endheaders(self, message_body=None, *, encode_chunked=False):
        if message_body is not None:
            self._body.append(message_body)

    def send(self, data):
        self._body.append(data)

    def request(self, method, url, body=None, headers={}, *, encode_chunked=False):
        self.putrequest(method, url)
        for name, value in dict(headers).items():
            self.putheader(name, value)
        if body is not None:
            self._body.append(body)

    def getresponse(self):
        parts = []
        for part in self._body:
            parts.extend(chunks(part))
        self._response = send(
            self._method or "GET", self._url, self._headers, parts, timeout=self.timeout
        )
        return self._response


class HTTPSConnection(HTTPConnection):
    """``http.client.HTTPSConnection``: TLS is the host's, certificates checked against its
    trusted roots (``context``, ``cert_file`` and ``key_file`` are not used)."""

    default_port = 443
    scheme = "https"

    def __init__(self, host, port=None, *args, context=None, **kwargs):
        super().__init__(host, port, *args, **kwargs)


# ---- requests -----------------------------------------------------------------------------



def install() -> None:
    """Makes ``http.client``'s connection classes these, and gives ``urllib.request`` the
    HTTPS handler CPython without ``_ssl`` lacks."""
    import urllib.request

    http.client.HTTPConnection = HTTPConnection
    http.client.HTTPSConnection = HTTPSConnection

    class HTTPSHandler(urllib.request.AbstractHTTPHandler):
        def https_open(self, req):
            return self.do_open(HTTPSConnection, req)

        https_request = urllib.request.AbstractHTTPHandler.do_request_

    urllib.request.HTTPSHandler = HTTPSHandler
    urllib.request._opener = None
