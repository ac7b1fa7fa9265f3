"""Helpers for the end-to-end backend tests: one request against a fresh mock server."""

from __future__ import annotations

from typing import Any

import pytest

from anyio_llmreq import Client, RequestFuncInput, RequestFuncOutput, Timeouts
from anyio_llmreq.testing import MockBehaviour, MockServer, open_mock_server

#: Read timeout for the stall tests: short, so the whole suite stays fast.
STALL_READ = 0.3


async def run(
    backend: str,
    path: str,
    behaviour: MockBehaviour | None = None,
    *,
    prompt: Any = "a b c",
    output_len: int = 6,
    timeouts: Timeouts | None = None,
    compat: bool = False,
    **request: Any,
) -> tuple[RequestFuncOutput, MockServer]:
    """Send one request with *backend* to *path* on a mock server behaving as told.

    With *compat*, it goes through ``ASYNC_REQUEST_FUNCS[backend]`` (given our client).
    """
    from anyio_llmreq import ASYNC_REQUEST_FUNCS

    async with open_mock_server(behaviour or MockBehaviour()) as server:
        url = server.base_url + path
        req = RequestFuncInput(prompt, url, 3, output_len, "m", **request)
        async with Client(timeouts=timeouts or Timeouts()) as client:
            if compat:
                out = await ASYNC_REQUEST_FUNCS[backend](req, client=client)
            else:
                out = await client.send(backend, req)
        return out, server


def check_stream(out: RequestFuncOutput, events: int) -> None:
    """A successful streamed output with *events* output-bearing events."""
    assert out.success, out.error
    assert out.error == ""
    assert out.streamed is True
    assert out.ttft > 0
    assert len(out.itl) == events - 1
    assert out.latency - out.ttft == pytest.approx(sum(out.itl), abs=1e-9)


def check_whole_body(out: RequestFuncOutput) -> None:
    """A successful non-streamed output: TTFT is the latency, no ITL."""
    assert out.success, out.error
    assert out.streamed is False
    assert out.ttft == out.latency > 0
    assert out.itl == []


def words(text: str) -> int:
    return len(text.split())
