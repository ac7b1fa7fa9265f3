"""The fast request path (JSON requests to our own transport, no httpx Request/Response)
against the httpx path through the same transport: the same bytes on the wire, the same
outputs, and the same fallbacks (redirects, error statuses, content codings, empty
bodies)."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import socket
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import attrs
import pytest

from anyio_llmreq import Client, RequestFuncInput, RequestFuncOutput

pytestmark = pytest.mark.anyio

_TOKEN = (
    b'data: {"choices":[{"index":0,"text":" hi","delta":{"content":" hi"},'
    b'"finish_reason":null}],"usage":null}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}\n\n'
    b"data: [DONE]\n\n"
)
_SSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"%x\r\n%s\r\n0\r\n\r\n" % (len(_TOKEN), _TOKEN)
)
_BODY = b'{"data":[{"embedding":[0.5]}],"results":[{"index":0}],"usage":{"prompt_tokens":3}}'
_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_BODY),
    _BODY,
)
_GZ = gzip.compress(_BODY)
_GZIP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_GZ), _GZ)
)
_ERROR = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\noverload!"
_EMPTY = b"HTTP/1.1 204 No Content\r\n\r\n"
_ODD_TYPE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi"


@attrs.define
class _Server:
    """Answers each request with the next reply of *replies* (cycled), and records the
    raw bytes of every request it read."""

    replies: list[bytes]
    seen: list[bytes] = attrs.Factory(list)
    port: int = 0
    _next: int = 0

    def reply(self) -> bytes:
        data = self.replies[self._next % len(self.replies)]
        self._next += 1
        return data.replace(b"{PORT}", str(self.port).encode())


def _read_request(conn: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    length = 0
    for line in buf[:end].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(buf) < end + length:
        buf += conn.recv(65536)
    return buf[: end + length], buf[end + length :]


@contextlib.contextmanager
def _serve(replies: list[bytes]) -> Iterator[_Server]:
    server = _Server(replies)
    listener = socket.create_server(("127.0.0.1", 0))
    server.port = listener.getsockname()[1]

    def handle(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                got = _read_request(conn, buf)
                if got is None:
                    return
                request, buf = got
                server.seen.append(request)
                conn.sendall(server.reply())

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server
    finally:
        listener.close()


_TIMING = ("ttft", "latency", "itl", "tpot", "start_time")


def _comparable(out: RequestFuncOutput) -> dict[str, Any]:
    fields = dict(vars(out))
    for name in _TIMING:
        fields.pop(name)
    fields["itl"] = len(out.itl)
    for name in ("ttft_content", "ttft_reasoning"):
        fields[name] = fields[name] is None
    # The same phases known (or not) on both paths, whatever their times.
    phases = out.http_phases
    if phases is not None:
        fields["http_phases"] = {
            k: v if isinstance(v, bool) else v is None for k, v in phases.items()
        }
    return fields


async def _both(
    backend: str, inp: RequestFuncInput, replies: list[bytes], **client: Any
) -> tuple[list[bytes], list[bytes], RequestFuncOutput, RequestFuncOutput]:
    """(fast path's requests, httpx path's requests, fast output, httpx output), from
    one server (so that Host is the same), each path starting at its first reply."""
    outs = []
    seen = []
    with _serve(replies) as server:
        url = inp.api_url.replace("{PORT}", str(server.port))
        for fast in (True, False):
            server._next = 0
            async with Client(api_key="sk-test", **client) as c:
                assert c._fast is not None
                if not fast:
                    c._fast = None  # the same transport, through httpx's Request/Response
                outs.append(await c.send(backend, dataclasses.replace(inp, api_url=url)))
            seen.append(server.seen[:])
            server.seen.clear()
    return seen[0], seen[1], outs[0], outs[1]


def _inp(path: str, prompt: Any = "hello", **kw: Any) -> RequestFuncInput:
    url = kw.pop("api_url", "http://127.0.0.1:{PORT}" + path)
    return RequestFuncInput(prompt, url, 2, 4, "m", **kw)


CASES = [
    ("openai", _inp("/v1/completions"), [_SSE]),
    ("openai", _inp("/v1/completions", request_id="bench-1"), [_SSE]),
    (
        "openai-chat",
        _inp("/v1/chat/completions", request_id="r-2", extra_headers={"X-Trace": "1"}),
        [_SSE],
    ),
    ("openai-chat", _inp("/v1/chat/completions", extra_headers={"X-Trace": "1"}), [_SSE]),
    ("openai", _inp("/v1/completions", extra_headers={"accept": "text/event-stream"}), [_SSE]),
    ("openai-embeddings", _inp("/v1/embeddings"), [_JSON]),
    ("vllm-rerank", _inp("/rerank", prompt=["q", "a"]), [_JSON]),
    ("openai", _inp("/v1/completions"), [_JSON]),  # a JSON answer to a stream request
    ("openai-embeddings", _inp("/v1/embeddings"), [_GZIP]),  # httpx decodes it
    ("openai", _inp("/v1/completions"), [_ERROR]),
    ("openai", _inp("/v1/completions"), [_EMPTY]),
    # A 2xx with an empty body once made send() raise (httpx's ByteStream iterated).
    (
        "openai-embeddings",
        _inp("/v1/embeddings"),
        [
            _JSON.split(b"\r\n\r\n")[0].replace(
                b"Content-Length: %d" % len(_BODY), b"Content-Length: 0"
            )
            + b"\r\n\r\n"
        ],
    ),
    ("openai", _inp("/v1/completions"), [_ODD_TYPE]),
    # 307 keeps the method and body; 302 turns the POST into a GET.
    (
        "openai",
        _inp("/v1/completions"),
        [
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /v2/completions\r\n"
            b"Content-Length: 0\r\n\r\n",
            _SSE,
        ],
    ),  # fmt: skip
    (
        "openai-embeddings",
        _inp("/v1/embeddings"),
        [
            b"HTTP/1.1 302 Found\r\nLocation: http://localhost:{PORT}/e\r\n"
            b"Content-Length: 0\r\n\r\n",
            _JSON,
        ],
    ),  # fmt: skip
    (
        "openai",
        _inp("/v1/completions"),
        [b"HTTP/1.1 308 Permanent Redirect\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"],
    ),
]


@pytest.mark.parametrize(("backend", "inp", "replies"), CASES)
async def test_fast_path_sends_the_same_bytes_and_measures_the_same(
    backend: str, inp: RequestFuncInput, replies: list[bytes]
) -> None:
    fast_seen, slow_seen, fast_out, slow_out = await _both(backend, inp, replies)
    assert fast_seen == slow_seen
    assert fast_seen  # something was sent
    assert _comparable(fast_out) == _comparable(slow_out)


async def test_fast_path_outputs_and_head() -> None:
    fast_seen, _, out, _ = await _both("openai", _inp("/v1/completions"), [_SSE])
    assert out.success, out.error
    assert out.generated_text == " hi"
    head = fast_seen[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /v1/completions HTTP/1.1"
    assert head[1].startswith(b"Host: 127.0.0.1:")
    assert head[-1].startswith(b"Content-Length: ")
    assert b"Authorization: Bearer sk-test" in head


async def test_fast_path_too_many_redirects_and_errors_match() -> None:
    loop = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"
    fast_seen, slow_seen, fast_out, slow_out = await _both(
        "openai", _inp("/v1/completions"), [loop]
    )
    assert len(fast_seen) == len(slow_seen) == 20
    assert not fast_out.success
    assert fast_out.error == slow_out.error
    assert "redirect" in fast_out.error.lower()


async def test_fast_path_refused_connection_matches() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        outs = []
        for fast in (True, False):
            async with Client(api_key="k") as c:
                if not fast:
                    c._fast = None
                inp = RequestFuncInput("x", f"http://127.0.0.1:{port}/v1/completions", 1, 1, "m")
                outs.append(await c.send("openai", inp))
    assert not outs[0].success
    assert _comparable(outs[0]) == _comparable(outs[1])


async def test_fast_path_non_ascii_header_raises_as_httpx_does() -> None:
    inp = RequestFuncInput(
        "x", "http://127.0.0.1:1/v1/completions", 1, 1, "m", extra_headers={"X-N": "é"}
    )
    errors = []
    for fast in (True, False):
        async with Client() as c:
            if not fast:
                c._fast = None
            with pytest.raises(UnicodeEncodeError) as info:
                await c.send("openai", inp)
            errors.append(str(info.value))
    assert errors[0] == errors[1]


async def test_mock_transport_takes_the_httpx_path() -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [], "usage": {"prompt_tokens": 1}})

    async with Client(transport=httpx.MockTransport(handler)) as c:
        assert c._fast is None
        out = await c.send(
            "openai-embeddings", _inp("/v1/embeddings", api_url="http://h/v1/embeddings")
        )
    assert out.success, out.error


def test_the_shared_client_is_one_per_event_loop() -> None:
    """The drop-in functions' client is cached per loop (not looked up in a RunVar each
    time): the same within a loop, a fresh one in the next loop, the old one closed."""
    import asyncio

    from anyio_llmreq._compat import shared_client

    async def twice() -> tuple[Client, Client]:
        return await shared_client(), await shared_client()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1] and second[0] is second[1]
    assert first[0] is not second[0]
    assert first[0]._http is None  # closed when its loop ended
    trio_pair = anyio.run(twice, backend="trio")
    assert trio_pair[0] is trio_pair[1] and trio_pair[0] not in (first[0], second[0])


async def test_a_fast_request_output_is_built_whole() -> None:
    """The output's derived fields (ttft, latency, tpot, the usage count) on the fast
    path, with a server usage count and without one."""
    body = (
        b'data: {"choices":[{"text":" a"}]}\n\ndata: {"choices":[{"text":" b"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}\n\n'
        b"data: [DONE]\n\n"
    )
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    with _serve([reply]) as server:
        url = f"http://127.0.0.1:{server.port}/v1/completions"
        async with Client() as c:
            out = await c.send("openai", RequestFuncInput("hi", url, 7, 4, "m"))
    assert out.success and out.error == "" and out.generated_text == " a b"
    assert out.output_tokens == 3 and out.output_tokens_source == "usage"
    assert out.prompt_tokens == 2 and out.prompt_len == 7 and out.status_code == 200
    assert out.ttft > 0 and out.latency >= out.ttft and len(out.itl) == 1
    assert out.tpot == pytest.approx((out.latency - out.ttft) / 2)


async def test_request_ids_share_one_cached_head() -> None:
    # The bench gives every request its own x-request-id: the head is cached without it.
    async with Client(api_key="sk-test") as c:
        heads = []
        for n in range(3):
            inp = _inp("/v1/completions", request_id=f"bench-{n}")
            inp = dataclasses.replace(inp, api_url="http://127.0.0.1:9/v1/completions")
            _, request, _ = c._prepare("openai", inp)
            heads.append(request.head)  # type: ignore[union-attr]
        assert len(c._heads) == 1
    assert [h.count(b"x-request-id: bench-%d\r\n" % n) for n, h in enumerate(heads)] == [1] * 3
    same = {h.replace(b"bench-0", b"bench-1").replace(b"bench-2", b"bench-1") for h in heads}
    assert len(same) == 1
