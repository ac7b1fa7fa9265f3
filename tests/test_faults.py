"""Faults over real sockets: every one is a failed output with a clear one-line error,
the partial output kept, within a bounded time, on every loop and both transports.

"default" is whatever ``Client()`` uses (our anyio transport); "httpx" is httpx's own.
"""

from __future__ import annotations

import pathlib
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import anyio
import anyio._core._sockets as anyio_sockets
import pytest

from anyio_llmreq import RequestFuncInput, RequestFuncOutput, Timeouts
from anyio_llmreq.testing import MockBehaviour, open_mock_server

from .clients import make_client
from .rawserver import (
    Connection,
    RawServer,
    chunked,
    eventually,
    head,
    refused_port,
    self_signed_cert,
)

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
SSE_HEAD = [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]
# Every fault must resolve well within this (the read timeouts below are 0.2 s).
BOUND = 5.0
SHORT = Timeouts(connect=2.0, read=0.2)




def req(url: str, **kwargs: Any) -> RequestFuncInput:
    return RequestFuncInput("a b c", url, 3, 6, "m", **kwargs)


async def send(
    kind: str, url: str, backend: str = "openai-chat", **kwargs: Any
) -> RequestFuncOutput:
    """Send through ``Client.stream`` then ``Client.send``: the two must report the same
    output (timings aside), since ``send`` drains the stream ``stream`` exposes."""
    with anyio.fail_after(2 * BOUND):
        async with make_client(kind, **kwargs) as client:
            async with client.stream(backend, req(url)) as stream:
                async for _ in stream:
                    pass
            streamed = stream.output
            out = await client.send(backend, req(url))
    assert untimed(streamed) == untimed(out)
    return out


def untimed(out: RequestFuncOutput) -> tuple[Any, ...]:
    """What an output says, less the timings that differ between two runs."""
    return (
        out.success,
        out.error,
        out.generated_text,
        out.reasoning_text,
        out.output_tokens,
        out.output_tokens_source,
        len(out.itl),
        out.status_code,
        out.streamed,
        out.prompt_len,
        out.prompt_tokens,
        out.ttft > 0,
    )


def failed(out: RequestFuncOutput, *needles: str) -> str:
    """Assert a failed output with a one-line error naming each of *needles*."""
    assert not out.success
    error = out.error
    assert error and "\n" not in error and len(error) < 600, error
    assert "no details" not in error, error
    for needle in needles:
        assert needle.lower() in error.lower(), error
    return error


def kept(out: RequestFuncOutput, words: int) -> None:
    """The partial output of a stream that broke after *words* one-word events."""
    assert len(out.generated_text.split()) == words
    assert out.ttft > 0
    assert len(out.itl) == words - 1
    assert out.latency - out.ttft == pytest.approx(sum(out.itl), abs=1e-9)


# --- connecting -----------------------------------------------------------------------------


async def test_connection_refused(transport: str) -> None:
    with refused_port() as port:
        out = await send(transport, f"http://127.0.0.1:{port}{CHAT}")
    failed(out, "ConnectError", "refused")
    assert out.status_code is None and out.ttft == 0.0


@pytest.fixture
def offline_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names ending in ``.invalid`` fail to resolve without a DNS query.

    ``.invalid`` never resolves (RFC 6761), but asking a resolver still sends a query;
    every lookup the transports use (anyio's, and the stdlib's, which trio calls) is
    answered here instead. Yields the names refused.
    """
    refused: list[str] = []
    real_sync = socket.getaddrinfo
    real_async = anyio_sockets.getaddrinfo

    def invalid(host: object) -> bool:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.rstrip(".").endswith(".invalid"):
            refused.append(name)
            return True
        return False

    def fake_sync(host: Any, *args: Any, **kwargs: Any) -> Any:
        if invalid(host):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_sync(host, *args, **kwargs)

    async def fake_async(host: Any, *args: Any, **kwargs: Any) -> Any:
        if invalid(host):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real_async(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_sync)
    monkeypatch.setattr(anyio_sockets, "getaddrinfo", fake_async)
    monkeypatch.setattr(anyio, "getaddrinfo", fake_async)
    yield refused


async def test_dns_failure(transport: str, offline_resolver: list[str]) -> None:
    out = await send(transport, f"http://llm-server.invalid:8000{CHAT}")
    failed(out, "ConnectError", "Name or service not known")
    assert offline_resolver  # the lookup was answered here, not by the network


async def test_https_url_to_a_plain_http_server(transport: str) -> None:
    def plain_http(conn: Connection) -> None:
        conn.sock.recv(4096)  # the TLS ClientHello; a plain server answers 400
        conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    with RawServer(plain_http, read_request=False) as server:
        out = await send(transport, server.url(CHAT, "https"))
    failed(out, "ConnectError", "WRONG_VERSION_NUMBER")


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    directory: pathlib.Path = tmp_path_factory.mktemp("tls")
    cert, key = self_signed_cert(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def one_token_reply(conn: Connection) -> None:
    body = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    headers = [("Content-Type", "text/event-stream"), ("Content-Length", str(len(body)))]
    conn.send(head(200, headers) + body)


async def test_self_signed_certificate_is_refused(
    transport: str, tls_context: ssl.SSLContext
) -> None:
    with RawServer(one_token_reply, tls=tls_context) as server:
        out = await send(transport, server.url(CHAT, "https"))
        # The server's side of the failed handshake runs in its own thread: wait for it.
        await eventually(lambda: server.tls_failures == 2)
    failed(out, "ConnectError", "CERTIFICATE_VERIFY_FAILED")
    assert server.tls_failures == 2


# --- HTTP errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.parametrize("body", ["json", "html"])
async def test_http_error_status(transport: str, status: int, body: str) -> None:
    behaviour = MockBehaviour(status=status, error_body=body, error_message="try later")
    async with open_mock_server(behaviour) as server:
        out = await send(transport, server.base_url + CHAT)
    error = failed(out, f"HTTP {status}", "try later")
    assert error.startswith(f"HTTP {status}")
    assert out.status_code == status
    assert out.generated_text == "" and out.ttft == 0.0


async def test_http_error_with_a_huge_body_is_cut(transport: str) -> None:
    def huge_error(conn: Connection) -> None:
        body = b"<html>" + b"x" * 1_000_000 + b"</html>"
        headers = [("Content-Type", "text/html"), ("Content-Length", str(len(body)))]
        conn.send(head(502, headers, "Bad Gateway") + body)

    with RawServer(huge_error) as server:
        out = await send(transport, server.url(CHAT))
    error = failed(out, "HTTP 502 Bad Gateway", "<html>")
    assert len(error) < 300


# --- servers that go quiet or away ------------------------------------------------------------


async def test_server_accepts_and_never_answers(transport: str) -> None:
    with RawServer(lambda conn: conn.wait_for_client_close(), read_request=False) as server:
        out = await send(transport, server.url(CHAT), timeouts=SHORT)
        await eventually(lambda: server.client_closes == 2)  # the client hung up, twice
    failed(out, "Timeout")
    assert out.status_code is None


async def test_headers_then_nothing(transport: str) -> None:
    async with open_mock_server(MockBehaviour(headers_then_hang=True)) as server:
        out = await send(transport, server.base_url + CHAT, timeouts=SHORT)
    failed(out, "Timeout")
    assert out.status_code == 200 and out.generated_text == ""


async def test_stall_mid_stream_keeps_the_partial_output(transport: str) -> None:
    async with open_mock_server(MockBehaviour(stall_after=2)) as server:
        out = await send(transport, server.base_url + COMPLETIONS, "openai", timeouts=SHORT)
    failed(out, "Timeout")
    kept(out, 2)


async def test_reset_mid_stream_keeps_the_partial_output(transport: str) -> None:
    async with open_mock_server(MockBehaviour(reset_after=3)) as server:
        out = await send(transport, server.base_url + COMPLETIONS, "openai")
    failed(out)
    kept(out, 3)


async def test_close_inside_a_chunk_is_an_error(transport: str) -> None:
    """A chunked body cut short is a transport error, not a clean end of stream."""

    def cut(conn: Connection) -> None:
        event = b'data: {"choices":[{"text":"one"}]}\n\n'
        conn.send(head(200, SSE_HEAD) + chunked([event])[0] + b"100\r\ndata: {")

    with RawServer(cut) as server:
        out = await send(transport, server.url(COMPLETIONS), "openai")
    failed(out)
    kept(out, 1)


async def test_trickle_one_byte_at_a_time(transport: str) -> None:
    behaviour = MockBehaviour(unicode=True)
    async with open_mock_server(behaviour) as server:
        whole = await send(transport, server.base_url + CHAT)
        server.behaviour = behaviour.with_overrides({"trickle": True})
        trickled = await send(transport, server.base_url + CHAT)
    assert whole.success and trickled.success, trickled.error
    assert trickled.generated_text == whole.generated_text
    assert trickled.output_tokens == whole.output_tokens == 6


# --- responses larger than any sane limit -------------------------------------------------------

LIMIT = 64 * 1024


def endless(prefix: bytes, piece: bytes, framing: str, content_type: str, sent: list[int]) -> Any:
    """A handler that sends *prefix* then *piece* forever, until the client goes away."""

    def handler(conn: Connection) -> None:
        headers = [("Content-Type", content_type)]
        if framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        frame = chunked([piece])[0] if framing == "chunked" else piece
        first = chunked([prefix])[0] if framing == "chunked" and prefix else prefix
        conn.send(head(200, headers) + first)
        total = len(first)
        try:
            while not conn.server.stopping.is_set():
                conn.send(frame)
                total += len(frame)
        finally:
            sent.append(total)

    return handler


@pytest.mark.parametrize(
    ("prefix", "piece", "content_type", "message"),
    [
        pytest.param(
            b"data: ", b"x" * 4096, "text/event-stream", "stream event larger", id="endless-line"
        ),
        pytest.param(
            b"", b"data: x\n" * 512, "text/event-stream", "stream event larger", id="endless-event"
        ),
        pytest.param(
            b'{"text": "', b"y" * 4096, "application/json", "response body larger", id="json-body"
        ),
    ],
)
@pytest.mark.parametrize("framing", ["chunked", "close"])
async def test_response_larger_than_the_limit(
    transport: str, prefix: bytes, piece: bytes, content_type: str, message: str, framing: str
) -> None:
    sent: list[int] = []
    handler = endless(prefix, piece, framing, content_type, sent)
    with RawServer(handler) as server:
        out = await send(transport, server.url(COMPLETIONS), "openai", max_response_bytes=LIMIT)
        await eventually(lambda: len(sent) == 2)  # its writes fail once the client hung up
    failed(out, message, f"{LIMIT} bytes")
    # The client stopped reading at the limit: what the server got out is the limit
    # plus what the socket buffers held, nowhere near unbounded.
    assert max(sent) < 32 * 1024 * 1024
