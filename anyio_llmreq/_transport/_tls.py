"""The client TLS context: the trust store httpx uses, the client certificate, ALPN."""

from __future__ import annotations

import os
import ssl

__all__ = ["client_context", "trust_context"]


def client_context(
    verify: bool | str | ssl.SSLContext,
    cert: str | tuple[str, str] | tuple[str, str, str] | None,
) -> ssl.SSLContext:
    """The context of ``AnyioTransport(verify=..., cert=...)``; an ``SSLContext`` given
    as *verify* is used as is (the caller configured it, client certificate included)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    ctx = trust_context(verify)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    if cert is not None:
        if isinstance(cert, str):
            ctx.load_cert_chain(cert)
        else:
            ctx.load_cert_chain(*cert)
    return ctx


def trust_context(verify: bool | str) -> ssl.SSLContext:
    """A client context that trusts what httpx's does, so https works (or fails) alike:
    a given CA file or directory, else ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi's
    bundle (slim containers often have no system store)."""
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    if not verify:
        return ssl.create_default_context()
    cafile = os.environ.get("SSL_CERT_FILE")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    capath = os.environ.get("SSL_CERT_DIR")
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    import certifi  # httpx depends on it

    return ssl.create_default_context(cafile=certifi.where())
