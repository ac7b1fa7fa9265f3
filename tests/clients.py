"""The clients the fault, cancellation and security tests run against each server."""

from __future__ import annotations

from typing import Any

import httpx

from anyio_llmreq import Client


def make_client(kind: str, **kwargs: Any) -> Client:
    """``default``: what ``Client()`` uses (our anyio transport); ``httpx``: httpx's own."""
    if kind == "httpx":
        verify = kwargs.pop("verify", True)
        return Client(transport=httpx.AsyncHTTPTransport(verify=verify), **kwargs)
    return Client(**kwargs)
