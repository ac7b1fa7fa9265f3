"""The transport's request head encoding against a field-by-field reference."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from anyio_llmreq._transport._pool import _encode_head

URL = httpx.URL("http://example.com:8000/v1/completions?a=b")


def _reference_head(request: httpx.Request) -> tuple[bytes, bool, bool]:
    """The field-by-field encoding ``_encode_head`` must reproduce."""
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    chunked = False
    keep_alive = True
    for name, value in request.headers.raw:
        lname = name.lower()
        if lname == b"expect" and value.lower() == b"100-continue":
            continue
        if lname == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lname == b"connection" and b"close" in value.lower():
            keep_alive = False
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts), chunked, keep_alive


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("Accept", "*/*"), ("Connection", "keep-alive")],
        [("Connection", "Close")],
        [("Expect", "100-Continue"), ("X-A", "1")],
        [("Expect", "something-else")],
        [("Transfer-Encoding", "gzip, chunked"), ("Transfer-Encoding", "identity")],
        [("Transfer-Encoding", "Chunked")],
        [("X-Empty", "")],
    ],
)
def test_encode_head_matches_field_by_field_encoding(headers: list[tuple[str, str]]) -> None:
    request = httpx.Request("GET", URL, headers=headers)
    request.headers = httpx.Headers(headers)  # no Host: only these fields
    assert _encode_head(request) == _reference_head(request)
    full = httpx.Request("POST", URL, headers=headers, content=b"x")
    assert _encode_head(full) == _reference_head(full)


@pytest.mark.parametrize(
    ("headers", "culprit"),
    [
        ([("X-A", "1"), ("X-B", "a\r\nInjected: 1")], "b'X-B'"),
        ([("X-A", "a\nb"), ("X-B", "a\rb")], "b'X-A'"),
        ([(b"X-\rA", b"1")], "b'X-\\rA'"),
        ([("X-A", "trailing\r")], "b'X-A'"),
    ],
)
def test_encode_head_rejects_line_breaks(headers: list[Any], culprit: str) -> None:
    request = httpx.Request("GET", URL, headers=headers)
    message = f"Illegal line break in header {culprit}"
    with pytest.raises(httpx.LocalProtocolError, match=f"^{re.escape(message)}$"):
        _encode_head(request)
