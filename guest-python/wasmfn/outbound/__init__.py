"""Outbound connections for functions, through the host (``wasi:http`` and
``wasmfn:platform/tcp``).

A function reaches only the hosts its ``function.toml`` lists in ``[network] allow``; the host
checks every request (and so every redirect), makes the connection, does TLS against trusted
roots and bounds the request by the invocation's deadline. There are no sockets in the guest:
``requests``, ``urllib.request`` and ``http.client`` are made to send through the host when
the bundle starts (:func:`install`), so code written for CPython runs unchanged.

Failures raise what Python code expects, all of them ``OSError`` subclasses of
:class:`OutboundError`: :class:`NotAllowed` (also a ``PermissionError``) names the host and the
setting to change; :class:`OutboundTimeout` is a ``TimeoutError``; a refused connection is a
``ConnectionRefusedError``. Through ``requests`` they are ``requests.exceptions`` subclasses.
"""

import sys

from . import http_client, requests_adapter, sockets, transport
from .errors import (
    ConnectionFailed,
    NotAllowed,
    OutboundError,
    OutboundTimeout,
    ResponseTooLarge,
    TLSFailed,
)
from .http_client import HTTPConnection, HTTPSConnection
from .sockets import HostSocket, connect
from .transport import Response, send

__all__ = [
    "OutboundError",
    "NotAllowed",
    "OutboundTimeout",
    "ConnectionFailed",
    "TLSFailed",
    "ResponseTooLarge",
    "Response",
    "send",
    "HTTPConnection",
    "HTTPSConnection",
    "connect",
    "HostSocket",
    "install",
    "warm",
]

_PATCHES = {"requests.adapters": requests_adapter.patch, "smtplib": sockets.patch_smtplib}


class _PatchOnImport:
    """Patches ``requests`` and ``smtplib`` when they are imported, whenever that is."""

    def find_spec(self, name, path=None, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                loader = spec.loader
                original = loader.exec_module

                def exec_module(module, original=original, patch=patch):
                    original(module)
                    patch(module)

                loader.exec_module = exec_module
                return spec
        return None


def install() -> None:
    """Sends ``http.client``, ``urllib.request``, ``requests``, ``smtplib`` and
    ``socket.create_connection`` through the host, and makes the rest of ``socket`` raise.
    Called by the bundle's entry before it imports the function's modules."""
    sockets.close_sockets()
    http_client.install()
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def warm() -> None:
    """Loads at build time what a call's first request would load, so that the snapshot holds
    it and no call compiles it again: the host transport (its ``wasi:http`` binding modules)
    and, when the bundle has ``requests``, the module it imports on every request
    (``netrc``, by ``get_netrc_auth``) and its request-preparing path. Measured on the
    benches/outbound function: 11 ms a call before, most of it these imports from source."""
    transport.get_transport()
    requests = sys.modules.get("requests")
    if requests is None:
        return
    import netrc  # noqa: F401 - see above

    try:
        requests.Session().prepare_request(requests.Request("GET", "http://wasmfn.invalid/"))
    except Exception:  # noqa: BLE001 - a warm-up only: the calls will say what is wrong
        pass
