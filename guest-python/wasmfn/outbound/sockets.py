"""Plain TCP and TLS through the host's ``wasmfn:platform/tcp``: sockets the host holds
(``socket.create_connection``), ``smtplib``'s ``SMTP_SSL`` and ``starttls()``, and the rest of
``socket`` made to raise instead of ending the instance."""

import io

from .. import _buildtime
from .errors import SETTING, ConnectionFailed, NotAllowed, tcp_error


class HostSocket:
    """A connected socket whose connection the host holds (``socket.create_connection`` and
    ``smtplib`` get these): ``sendall``, ``recv``, ``makefile``, timeouts, and
    :meth:`start_tls` for STARTTLS."""

    def __init__(self, connection, host: str, port: int, timeout) -> None:
        import socket

        self.family, self.type, self.proto = socket.AF_INET, socket.SOCK_STREAM, 6
        self._connection = connection
        self._host, self._port = host, port
        self._timeout = timeout

    def _call(self, method, *args):
        from componentize_py_types import Err

        if self._connection is None:
            raise ConnectionFailed(f"{self._host}:{self._port}: the socket is closed")
        try:
            return method(*args)
        except Err as e:
            raise tcp_error(e.value, self._host, self._port) from None

    def _timeout_ms(self):
        return None if self._timeout is None else max(1, int(self._timeout * 1000))

    def sendall(self, data, flags=0) -> None:
        self._call(self._connection.write, bytes(data))

    def send(self, data, flags=0) -> int:
        self.sendall(data)
        return len(data)

    def recv(self, size: int, flags=0) -> bytes:
        return self._call(self._connection.read, max(1, min(size, 1 << 16)), self._timeout_ms())

    def recv_into(self, buffer, nbytes=0, flags=0) -> int:
        data = self.recv(nbytes or len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def makefile(self, mode="r", buffering=None, *, encoding=None, errors=None, newline=None):
        raw = _SocketIO(self)
        if "w" in mode:
            return io.BufferedWriter(raw)
        reader = io.BufferedReader(raw)
        if "b" in mode:
            return reader
        return io.TextIOWrapper(reader, encoding, errors, newline)

    def start_tls(self) -> None:
        """Turns the connection into TLS, checking the certificate for its host."""
        self._call(self._connection.start_tls)

    def settimeout(self, timeout) -> None:
        self._timeout = timeout

    def gettimeout(self):
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def setsockopt(self, *args) -> None:
        pass

    def getpeername(self):
        return (self._host, self._port)

    def getsockname(self):
        return ("0.0.0.0", 0)

    def fileno(self) -> int:
        return -1

    def shutdown(self, how) -> None:
        pass

    def close(self) -> None:
        if self._connection is not None:
            self._connection.__exit__(None, None, None)
            self._connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class _SocketIO(io.RawIOBase):
    def __init__(self, sock: HostSocket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)

    def write(self, data) -> int:
        self._sock.sendall(data)
        return len(data)


def connect(host: str, port: int, tls: bool = False, timeout=None) -> HostSocket:
    """A :class:`HostSocket` to ``host:port`` (TLS at once when ``tls``), which
    ``[network] allow`` must list without a scheme (``smtp.example.com:465``)."""
    _buildtime.refuse("an outbound connection")
    from componentize_py_types import Err
    from wit_world.imports import tcp

    seconds = timeout if isinstance(timeout, (int, float)) else None
    try:
        connection = tcp.connect(
            host, int(port), tls, None if seconds is None else max(1, int(seconds * 1000))
        )
    except Err as e:
        raise tcp_error(e.value, host, port) from None
    return HostSocket(connection, host, int(port), seconds)


def _create_connection(address, timeout=None, source_address=None, **_):
    host, port = address[0], address[1]
    return connect(host, port, False, timeout)


def patch_smtplib(smtplib) -> None:
    """``smtplib.SMTP_SSL`` (absent without ``_ssl``) and ``SMTP.starttls`` with the host's
    TLS."""
    if getattr(smtplib, "_wasmfn", False):
        return
    smtplib._wasmfn = True
    import socket

    class SMTP_SSL(smtplib.SMTP):
        default_port = smtplib.SMTP_SSL_PORT

        def __init__(self, host="", port=0, local_hostname=None, *,
                     timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, context=None):
            self.context = context
            super().__init__(host, port, local_hostname, timeout, source_address)

        def _get_socket(self, host, port, timeout):
            if self.debuglevel > 0:
                self._print_debug("connect:", (host, port))
            return connect(host, port, True, timeout)

    def starttls(self, *, context=None):
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server.")
        (resp, reply) = self.docmd("STARTTLS")
        if resp != 220:
            raise smtplib.SMTPResponseException(resp, reply)
        self.sock.start_tls()
        self.file = None
        # As after any STARTTLS: what the server said before TLS counts no more.
        self.helo_resp = None
        self.ehlo_resp = None
        self.esmtp_features = {}
        self.does_esmtp = False
        return (resp, reply)

    smtplib.SMTP_SSL = SMTP_SSL
    smtplib.SMTP.starttls = starttls
    smtplib._have_ssl = True
    if "SMTP_SSL" not in smtplib.__all__:
        smtplib.__all__.append("SMTP_SSL")




def _no_sockets(*args, **kwargs):
    raise NotAllowed(
        "functions have no sockets of their own: use requests, urllib.request or http.client "
        "for HTTP(S), socket.create_connection or smtplib for other TCP, all of which the host "
        f"connects to the hosts in {SETTING} (docs/network.md)"
    )


def close_sockets() -> None:
    """Sockets of the guest's own (which the host does not give, and which would otherwise end
    the instance) raise a ``PermissionError``; name lookups raise ``socket.gaierror``, as when
    a name does not resolve; connections by address go through the host (:func:`connect`)."""
    import socket

    class LookupUnavailable(socket.gaierror):
        pass

    def no_lookups(*args, **kwargs):
        raise LookupUnavailable(
            socket.EAI_NONAME,
            "functions cannot resolve names themselves: the host resolves the names it "
            f"connects to, which {SETTING} lists (docs/network.md)",
        )

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, name, no_lookups)
    socket.create_server = _no_sockets
    socket.socket.__init__ = _no_sockets
    socket.create_connection = _create_connection

