"""The exceptions of outbound connections, and the one each host error becomes."""

SETTING = "[network] allow in function.toml"


class OutboundError(OSError):
    """An outbound request failed."""


class NotAllowed(OutboundError, PermissionError):
    """The host is not in the function's ``[network] allow`` (or resolves to a private address)."""


class OutboundTimeout(OutboundError, TimeoutError):
    """Connecting, or waiting for the response, took longer than allowed."""


class ConnectionFailed(OutboundError, ConnectionError):
    """The connection could not be made, or broke."""


class ConnectionRefused(ConnectionFailed, ConnectionRefusedError):
    """Nobody listens at the host's port."""


class NameNotResolved(ConnectionFailed):
    """The host's name could not be resolved."""


class TLSFailed(OutboundError):
    """TLS failed; ``certificate`` is true when the server's certificate was not trusted."""

    certificate = False


class ResponseTooLarge(OutboundError):
    """The response body is larger than the node allows."""


def origin(scheme: str, authority: str) -> str:
    host, _, port = authority.rpartition(":")
    if not host or not port.isdigit():
        host, port = authority, ("443" if scheme == "https" else "80")
    return f"{scheme}://{host}:{port}"


def http_error(code: object, scheme: str, authority: str) -> OutboundError:
    """The exception for a wasi:http error code (its generated class name says which)."""
    kind = type(code).__name__.removeprefix("ErrorCode_")
    where = origin(scheme, authority)
    host = authority.rsplit(":", 1)[0] if ":" in authority else authority
    if kind == "HttpRequestDenied":
        return NotAllowed(
            f"{where} is not allowed: add it to {SETTING} (or ask the operator to)"
        )
    if kind == "DestinationIpProhibited":
        return NotAllowed(
            f"{host} is or resolves to a private, loopback or link-local address, which only "
            f"an entry naming the address can reach: add the address (with the port) to {SETTING}"
        )
    if kind == "ConnectionLimitReached":
        return OutboundError(f"{where}: this invocation has sent as many outbound requests as the node allows")
    if kind == "DnsError":
        payload = getattr(code, "value", None)
        why = getattr(payload, "rcode", None) or "lookup failed"
        return NameNotResolved(f"{host} could not be resolved: {why}")
    if kind == "ConnectionRefused":
        return ConnectionRefused(f"connecting to {where} was refused")
    if kind == "ConnectionTimeout":
        return OutboundTimeout(f"connecting to {where} timed out")
    if kind in ("ConnectionReadTimeout", "HttpResponseTimeout"):
        return OutboundTimeout(f"{where} did not answer in time")
    if kind == "TlsCertificateError":
        error = TLSFailed(f"the certificate of {where} is not trusted")
        error.certificate = True
        return error
    if kind in ("TlsProtocolError", "TlsAlertReceived"):
        return TLSFailed(f"TLS with {where} failed")
    if kind == "HttpResponseBodySize":
        limit = getattr(code, "value", None)
        shown = f" of {limit} bytes" if isinstance(limit, int) else ""
        return ResponseTooLarge(f"the response of {where} is larger than the limit{shown}")
    if kind == "InternalError":
        detail = getattr(code, "value", None)
        return ConnectionFailed(f"{where}: {detail or 'the request failed'}")
    return ConnectionFailed(f"{where}: the request failed ({kind})")



def tcp_error(error: object, host: str, port: int) -> OutboundError:
    """The exception for a ``wasmfn:platform/tcp`` connect error (its class name says which)."""
    kind = type(error).__name__.removeprefix("ConnectError_")
    text = getattr(error, "value", "") or f"{host}:{port}: the connection failed"
    return {
        "NotAllowed": NotAllowed,
        "Unresolved": NameNotResolved,
        "Refused": ConnectionRefused,
        "Timeout": OutboundTimeout,
        "Tls": TLSFailed,
    }.get(kind, ConnectionFailed)(text)

