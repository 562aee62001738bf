"""``requests`` through the host: its ``HTTPAdapter.send`` replaced, errors made
``requests.exceptions``."""

import sys

from .errors import NotAllowed, OutboundError, OutboundTimeout, TLSFailed
from .transport import send


def _requests_send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
    """``requests.adapters.HTTPAdapter.send`` through the host."""
    import requests.exceptions as rex
    from urllib3.response import HTTPResponse

    if isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = timeout
    try:
        response = send(
            request.method,
            request.url,
            list(request.headers.items()),
            request.body,
            timeout=connect,
            read_timeout=read,
        )
    except NotAllowed as e:
        raise _requests_error("NotAllowed", (rex.ConnectionError, PermissionError), e, request)
    except OutboundTimeout as e:
        if str(e).startswith("connecting"):
            raise rex.ConnectTimeout(e, request=request) from None
        raise rex.ReadTimeout(e, request=request) from None
    except TLSFailed as e:
        raise rex.SSLError(e, request=request) from None
    except OutboundError as e:
        raise rex.ConnectionError(e, request=request) from None
    raw = HTTPResponse(
        body=response,
        headers=response.getheaders(),
        status=response.status,
        reason=response.reason,
        preload_content=False,
        decode_content=False,
        original_response=response,
        request_method=request.method,
        request_url=request.url,
    )
    built = self.build_response(request, raw)
    if not stream:
        built.content
    return built


_requests_errors = {}


def _requests_error(name, bases, cause, request):
    kind = _requests_errors.get(name)
    if kind is None:
        kind = type(name, bases, {"__module__": __name__})
        _requests_errors[name] = kind
    error = kind(str(cause), request=request)
    error.__cause__ = None
    error.__suppress_context__ = True
    return error


def patch(module) -> None:
    adapters = module if module.__name__ == "requests.adapters" else sys.modules.get("requests.adapters")
    if adapters is not None and getattr(adapters.HTTPAdapter.send, "__wasmfn__", False) is False:
        _requests_send.__wasmfn__ = True
        adapters.HTTPAdapter.send = _requests_send


# ---- plain TCP and TLS (smtplib) ----------------------------------------------------------

