"""Tests of AnyioTransport over real sockets, against a scripted raw HTTP server.

The server runs its own asyncio loop in a thread, so the client side is free to run on
asyncio, uvloop or trio, and every test controls the exact bytes and pauses on the wire.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from anyio_llmreq._engine import body_pusher
from anyio_llmreq._transport import ARRIVAL_EXTENSION, AnyioTransport, Arrival

from .rawserver import refused_port, self_signed_cert

pytestmark = pytest.mark.anyio


# -- scripted server -------------------------------------------------------------------


class Conn:
    """One accepted connection, as seen by a server handler."""

    def __init__(
        self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer

    async def request(self) -> tuple[bytes, bytes] | None:
        """Read one request: (head, decoded body), or None at EOF."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lower = head.lower()
        body = b""
        if b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                body += (await self.reader.readexactly(size + 2))[:-2]
                if not size:
                    break
        elif b"content-length:" in lower:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            body = await self.reader.readexactly(length)
        self.server.requests.append((head, body))
        return head, body

    async def send(self, *pieces: bytes, delay: float = 0.0) -> None:
        """Send each piece in its own write, pausing *delay* seconds between them."""
        for i, piece in enumerate(pieces):
            if i and delay:
                await asyncio.sleep(delay)
            self.writer.write(piece)
            await self.writer.drain()

    async def wait_client_close(self, within: float = 10.0) -> bool:
        """Wait until the client closes its end; True when it did."""

        async def drain() -> None:
            while await self.reader.read(65536):
                pass

        try:
            await asyncio.wait_for(drain(), within)
        except asyncio.TimeoutError:
            return False
        except ConnectionError:
            pass
        self.server.client_closed.set()
        return True


Handler = Callable[[Conn], Awaitable[None]]


class Server:
    """A raw HTTP server on 127.0.0.1 whose connections run a scripted handler."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.client_closed = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(
            self._on_connection, "127.0.0.1", 0, ssl=self.ssl_context, backlog=4096
        )

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self.handler(Conn(self, reader, writer))
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Server:
        server = Server(handler, ssl_context).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def respond_forever(response: bytes) -> Handler:
    """A handler that answers every request on the connection with *response*."""

    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.send(response)

    return handler


def client(
    server: Server, transport: AnyioTransport | None = None, **kwargs: object
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport or AnyioTransport(trust_env=False),
        base_url=server.url,
        **kwargs,  # type: ignore[arg-type]
    )


def chunked(*payloads: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads)
    return body + b"0\r\n" + trailer + b"\r\n"


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
EVENTS = [b'data: {"choices":[{"text":" tok%d"}]}\n\n' % i for i in range(5)]


async def wait_for(event: threading.Event) -> None:
    """Wait for an event set by the server thread, without blocking the event loop."""
    assert await anyio.to_thread.run_sync(event.wait, 5.0)


# -- chunked bodies (the decoder on its own: tests/test_http11.py) ----------------------


async def test_chunked_several_chunks_in_one_read(serve: Callable[..., Server]) -> None:
    server = serve(respond_forever(CHUNKED_HEAD + chunked(*EVENTS)))
    async with client(server) as c, c.stream("GET", "/") as response:
        pieces = [piece async for piece in response.aiter_raw()]
    # One write on the wire, one socket read, so one piece with every payload joined.
    assert pieces == [b"".join(EVENTS)]


async def test_push_hands_over_each_read_with_its_arrival(serve: Callable[..., Server]) -> None:
    # Three writes 20 ms apart: the body is pushed from the loop's read callback (trio:
    # the reactor task), one call per read, stamped when it came off the socket.
    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.send(CHUNKED_HEAD, *[chunked(e)[:-5] for e in EVENTS[:3]], delay=0.02)
            await conn.send(b"0\r\n\r\n")

    server = serve(handler)
    transport = AnyioTransport(trust_env=False)
    async with client(server, transport) as c:
        for _ in range(2):  # the second request reuses the connection the first released
            request = c.build_request("GET", server.url)
            response = await transport.handle_async_request(request)
            push = body_pusher(response)
            assert push is not None
            got: list[tuple[bytes, float]] = []
            before = time.perf_counter()
            await push(lambda data, now, got=got: got.append((data, now)))
            assert b"".join(data for data, _ in got) == b"".join(EVENTS[:3])
            stamps = [now for _, now in got]
            assert stamps == sorted(stamps) and before <= stamps[0] <= time.perf_counter()
            assert stamps[-1] - stamps[0] >= 0.03  # separate reads, not one late batch
            await response.aclose()
    assert server.connections == 1


async def test_read_size_bounds_each_socket_read(
    serve: Callable[..., Server], anyio_backend: object
) -> None:
    # One 6,000-byte chunk in one write, read with read_size=1,000: asyncio's selector
    # transport would otherwise ask recv for 256 KiB (a buffer glibc maps and unmaps on
    # every read) and take it all at once.
    body = bytes(range(256)) * 23 + b"x" * 112
    server = serve(respond_forever(CHUNKED_HEAD + chunked(body)))
    transport = AnyioTransport(trust_env=False, read_size=1000)
    async with client(server, transport) as c:
        request = c.build_request("GET", server.url)
        response = await transport.handle_async_request(request)
        push = body_pusher(response)
        assert push is not None
        got: list[bytes] = []
        await push(lambda data, now: got.append(data))
        await response.aclose()
    assert b"".join(got) == body
    if anyio_backend == ("asyncio", {"use_uvloop": True}):
        return  # uvloop reads into a buffer of its own, of its own size
    # Each read's payload is handed over as it came: none over read_size.
    assert max(map(len, got)) <= 1000 and len(got) >= 6


async def test_push_errors_are_those_of_iterating(serve: Callable[..., Server]) -> None:
    # A good read, then a malformed chunk size or the connection closing mid-body.
    first = CHUNKED_HEAD + chunked(EVENTS[0])[:-5]
    for rest, error in [(b"zz\r\n", "Malformed chunk size"), (b"", "Server disconnected")]:

        async def handler(conn: Conn, rest: bytes = rest) -> None:
            if await conn.request() is not None:
                await conn.send(first, rest, delay=0.02)
                conn.writer.close()

        server = serve(handler)
        transport = AnyioTransport(trust_env=False)
        async with client(server, transport) as c:
            response = await transport.handle_async_request(c.build_request("GET", server.url))
            push = body_pusher(response)
            assert push is not None
            got: list[bytes] = []
            with pytest.raises(httpx.RemoteProtocolError, match=error):
                await push(lambda data, now, got=got: got.append(data))
            assert got == [EVENTS[0]]

    def refuse(data: bytes, now: float) -> None:
        raise ValueError("consumer gave up")

    server = serve(respond_forever(CHUNKED_HEAD + chunked(*EVENTS)))
    transport = AnyioTransport(trust_env=False)
    async with client(server, transport) as c:
        response = await transport.handle_async_request(c.build_request("GET", server.url))
        push = body_pusher(response)
        assert push is not None
        with pytest.raises(ValueError, match="consumer gave up"):
            await push(refuse)
        await response.aclose()  # the consumer's error leaves the connection to close


async def test_chunked_split_at_every_byte(serve: Callable[..., Server]) -> None:
    raw = CHUNKED_HEAD + chunked(b"hello ", b"world", trailer=b"X-Trailer: 1\r\n")

    async def handler(conn: Conn) -> None:
        while (request := await conn.request()) is not None:
            split = int(request[0].split(b" ")[1].strip(b"/"))
            await conn.send(raw[:split], raw[split:], delay=0.002)

    server = serve(handler)
    async with client(server) as c:
        for split in range(1, len(raw)):
            response = await c.get(f"/{split}")
            assert response.content == b"hello world", split
    assert server.connections == 1


async def test_chunked_byte_at_a_time(serve: Callable[..., Server]) -> None:
    raw = CHUNKED_HEAD + chunked(*EVENTS[:2])

    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(*[bytes([b]) for b in raw], delay=0.0005)

    server = serve(handler)
    async with client(server) as c:
        response = await c.get("/")
    assert response.content == b"".join(EVENTS[:2])


# -- framing and keep-alive -------------------------------------------------------------


async def test_content_length_and_keep_alive_reuse(serve: Callable[..., Server]) -> None:
    server = serve(
        respond_forever(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Case: Kept\r\n\r\nhello world")
    )
    async with client(server) as c:
        for _ in range(3):
            response = await c.get("/")
            assert response.content == b"hello world"
        assert response.headers.raw[1] == (b"X-Case", b"Kept")  # raw case preserved
        assert response.extensions["http_version"] == b"HTTP/1.1"
        assert response.extensions["reason_phrase"] == b"OK"
    assert server.connections == 1


async def test_content_length_split(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01", b"2345", b"6789", delay=0.01
        )

    async with client(serve(handler)) as c, c.stream("GET", "/") as response:
        pieces = [piece async for piece in response.aiter_raw()]
    # The first piece came with the head; the others may merge on a loaded machine.
    assert pieces[0] == b"01"
    assert b"".join(pieces) == b"0123456789"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.0 200 OK\r\n\r\nuntil close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
    ],
    ids=["http10", "no-framing"],
)
async def test_read_until_close(serve: Callable[..., Server], raw: bytes) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(raw[:-5], raw[-5:], delay=0.01)

    server = serve(handler)
    async with client(server) as c:
        assert (await c.get("/")).content == b"until close"
        assert (await c.get("/")).content == b"until close"
    assert server.connections == 2


async def test_connection_close_not_reused(serve: Callable[..., Server]) -> None:
    server = serve(
        respond_forever(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    )
    async with client(server) as c:
        assert (await c.get("/")).text == "ok"
        assert (await c.get("/")).text == "ok"
    assert server.connections == 2


async def test_no_body_responses_keep_connection(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        while (request := await conn.request()) is not None:
            if request[0].startswith(b"HEAD"):
                await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            elif b"/204" in request[0]:
                await conn.send(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                await conn.send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")

    server = serve(handler)
    async with client(server) as c:
        assert (await c.head("/")).content == b""
        assert (await c.get("/204")).status_code == 204
        assert (await c.get("/304")).status_code == 304
    assert server.connections == 1


async def test_idle_connection_closed_by_the_server_is_not_reused(
    serve: Callable[..., Server],
) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        # ... and close: the client holds a keep-alive connection the server dropped.

    async def body() -> AsyncIterator[bytes]:
        yield b"streamed"

    server = serve(handler)
    async with client(server) as c:
        assert (await c.get("/")).text == "ok"
        await anyio.sleep(0.05)
        assert (await c.post("/", content=b"again")).text == "ok"
        await anyio.sleep(0.05)
        # Found closed before anything was written: a streamed body is safe too.
        assert (await c.post("/", content=body())).text == "ok"
    assert server.connections == 3
    assert [r[1] for r in server.requests] == [b"", b"again", b"streamed"]


async def test_idle_connection_with_unasked_bytes_is_not_reused(
    serve: Callable[..., Server],
) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        # Then a second, unasked-for response: the connection is out of step.
        await conn.send(*[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"] * 2, delay=0.02)
        await conn.request()

    server = serve(handler)
    async with client(server) as c:
        assert (await c.get("/")).text == "ok"
        await anyio.sleep(0.05)
        assert (await c.get("/")).text == "ok"
    assert server.connections == 2


async def test_a_request_the_server_received_is_never_replayed(
    serve: Callable[..., Server],
) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await conn.request()
        # Read the whole second request, then die without answering.
        conn.writer.transport.abort()

    server = serve(handler)
    async with client(server) as c:
        assert (await c.get("/")).text == "ok"
        with pytest.raises(httpx.TransportError):
            await c.post("/", content=b"generate")
    assert [r[1] for r in server.requests] == [b"", b"generate"]
    assert server.connections == 1


async def test_keepalive_expiry(serve: Callable[..., Server]) -> None:
    server = serve(respond_forever(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    async with client(server, AnyioTransport(trust_env=False, keepalive_expiry=0.05)) as c:
        await c.get("/")
        await anyio.sleep(0.1)
        await c.get("/")
    assert server.connections == 2


async def test_max_keepalive_per_host(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            await asyncio.sleep(0.05)  # keep the three requests in flight together
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = serve(handler)
    transport = AnyioTransport(trust_env=False, max_keepalive_per_host=1)
    async with client(server, transport) as c:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(c.get, "/")
        assert server.connections == 3
        assert [len(dq) for dq in transport._idle.values()] == [1]


async def test_aclose_closes_idle_connections(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await conn.wait_client_close()

    server = serve(handler)
    transport = AnyioTransport(trust_env=False)
    async with client(server, transport) as c:
        await c.get("/")
        assert not server.client_closed.is_set()
    await wait_for(server.client_closed)
    assert not transport._idle


# -- closing early and cancellation -----------------------------------------------------


def partial_then_wait_handler() -> Handler:
    async def handler(conn: Conn) -> None:
        while (request := await conn.request()) is not None:
            if b"/partial" in request[0]:
                await conn.send(CHUNKED_HEAD + chunked(EVENTS[0])[:-5])
                await conn.wait_client_close()
                return
            await conn.send(CHUNKED_HEAD + chunked(*EVENTS))

    return handler


async def test_early_close_closes_connection(serve: Callable[..., Server]) -> None:
    server = serve(partial_then_wait_handler())
    transport = AnyioTransport(trust_env=False)
    async with client(server, transport) as c:
        async with c.stream("GET", "/partial") as response:
            # Closing inside the loop rather than breaking out of it: httpx's nested async
            # generators would be left to the garbage collector, which trio warns about.
            async for piece in response.aiter_raw():
                assert piece == EVENTS[0]
                await response.aclose()
        await wait_for(server.client_closed)
        assert not transport._idle
        assert (await c.get("/full")).content == b"".join(EVENTS)
    assert server.connections == 2


async def test_cancellation_mid_stream_closes_socket(serve: Callable[..., Server]) -> None:
    server = serve(partial_then_wait_handler())
    transport = AnyioTransport(trust_env=False)
    pieces = []
    async with client(server, transport) as c:
        with anyio.move_on_after(0.3) as scope:
            async with c.stream("GET", "/partial") as response:
                async for piece in response.aiter_raw():
                    pieces.append(piece)
        assert scope.cancelled_caught
        assert pieces == [EVENTS[0]]
        await wait_for(server.client_closed)
        assert not transport._idle


# -- requests ----------------------------------------------------------------------------


async def test_interim_responses_skipped_and_expect_dropped(serve: Callable[..., Server]) -> None:
    server = serve(
        respond_forever(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
        )
    )
    async with client(server) as c:
        response = await c.post("/", content=b"payload", headers={"Expect": "100-continue"})
        assert (response.status_code, response.content) == (201, b"done")
        assert (await c.get("/")).status_code == 201
    head, body = server.requests[0]
    assert body == b"payload"
    assert b"expect" not in head.lower()
    assert server.connections == 1


async def test_streamed_request_body_is_chunked(serve: Callable[..., Server]) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b""
        yield b"world"

    server = serve(respond_forever(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    async with client(server) as c:
        await c.post("/", content=body())
    assert server.requests[0][1] == b"hello world"
    assert b"transfer-encoding: chunked" in server.requests[0][0].lower()


async def test_redirects_and_cookies_via_httpx(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        while (request := await conn.request()) is not None:
            if request[0].startswith(b"GET /start "):
                await conn.send(
                    b"HTTP/1.1 302 Found\r\nLocation: /end\r\nSet-Cookie: session=abc; Path=/\r\n"
                    b"Content-Length: 0\r\n\r\n"
                )
            else:
                await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend")

    server = serve(handler)
    async with client(server, follow_redirects=True) as c:
        response = await c.get("/start")
    assert response.text == "end"
    assert [r.status_code for r in response.history] == [302]
    assert b"cookie: session=abc" in server.requests[1][0].lower()
    assert server.connections == 1


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 2OO OK\r\n\r\n", "Malformed status line"),
        (b"ICY 200 OK\r\n\r\n", "Malformed status line"),
        (b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "Malformed response header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "Malformed Content-Length"),
        (CHUNKED_HEAD + b"zz\r\n", "Malformed chunk size"),
        (CHUNKED_HEAD + b"2\r\nabc\r\n", "not followed by CRLF"),
        (CHUNKED_HEAD + b"5\r\nab", "before the response body was complete"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            "before the response body was complete",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcdef", "longer than its Content-Length"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n", "exceeds 64 KiB"),
        (b"HTTP/1.1 200 OK\r\nX: y", "while sending the response headers"),
        (b"", "Server disconnected without sending a response."),
    ],
    ids=[
        "status-code",
        "status-version",
        "header",
        "content-length",
        "chunk-size",
        "chunk-crlf",
        "eof-chunked",
        "eof-length",
        "too-long",
        "huge-head",
        "eof-head",
        "no-response",
    ],
)
async def test_malformed_responses(serve: Callable[..., Server], raw: bytes, message: str) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(raw)

    async with client(serve(handler)) as c:
        with pytest.raises(httpx.RemoteProtocolError, match=message):
            await c.get("/")


async def test_connection_refused() -> None:
    with refused_port() as port:
        async with httpx.AsyncClient(transport=AnyioTransport(trust_env=False)) as c:
            with pytest.raises(httpx.ConnectError, match=f"(?i)127.0.0.1:{port}.*refused"):
                await c.get(f"http://127.0.0.1:{port}/")


async def test_dns_failure() -> None:
    async with httpx.AsyncClient(transport=AnyioTransport(trust_env=False)) as c:
        with pytest.raises(
            httpx.ConnectError, match="Could not resolve host 'nonexistent.invalid'"
        ):
            await c.get("http://nonexistent.invalid/")


async def test_unsupported_scheme() -> None:
    transport = AnyioTransport(trust_env=False)
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(httpx.Request("GET", "ftp://example.com/"))


# -- timeouts ----------------------------------------------------------------------------


def stall_after(first: bytes) -> Handler:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(first)
        await conn.wait_client_close()

    return handler


async def test_read_timeout_waiting_for_head(serve: Callable[..., Server]) -> None:
    server = serve(stall_after(b""))
    async with client(server, timeout=httpx.Timeout(5.0, read=0.2)) as c:
        start = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            await c.get("/")
        assert 0.15 < time.perf_counter() - start < 2.0
    await wait_for(server.client_closed)


async def test_read_timeout_in_body(serve: Callable[..., Server]) -> None:
    server = serve(stall_after(CHUNKED_HEAD + chunked(EVENTS[0])[:-5]))
    pieces = []
    async with client(server, timeout=httpx.Timeout(5.0, read=0.2)) as c:
        start = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout, match="read timeout"):
            async with c.stream("GET", "/") as response:
                async for piece in response.aiter_raw():
                    pieces.append(piece)
        assert 0.15 < time.perf_counter() - start < 2.0
    assert pieces == [EVENTS[0]]
    await wait_for(server.client_closed)


async def test_slow_consumer_is_not_a_read_timeout(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        pieces = [CHUNKED_HEAD, *(chunked(event)[:-5] for event in EVENTS[:3]), b"0\r\n\r\n"]
        await conn.send(*pieces, delay=0.01)

    timeout = httpx.Timeout(5.0, read=0.1)
    async with client(serve(handler), timeout=timeout) as c, c.stream("GET", "/") as response:
        body = b""
        async for piece in response.aiter_raw():
            body += piece
            await anyio.sleep(0.25)  # the read timeout only counts time spent waiting on us
    assert body == b"".join(EVENTS[:3])


async def test_write_timeout(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        await asyncio.sleep(30)  # never reads the request; cancelled when the server stops

    server = serve(handler)
    async with client(server, timeout=httpx.Timeout(5.0, write=0.2)) as c:
        with pytest.raises(httpx.WriteTimeout):
            await c.post("/", content=b"x" * (32 * 1024 * 1024))


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(serve: Callable[..., Server], tls_files: tuple[Path, Path]) -> Server:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    return serve(respond_forever(CHUNKED_HEAD + chunked(*EVENTS)), ctx)


async def test_tls_verify_false(tls_server: Server) -> None:
    async with client(tls_server, AnyioTransport(trust_env=False, verify=False)) as c:
        for _ in range(2):
            assert (await c.get("/")).content == b"".join(EVENTS)
    assert tls_server.connections == 1


async def test_read_size_bounds_each_tls_read(
    serve: Callable[..., Server], tls_files: tuple[Path, Path], anyio_backend: object
) -> None:
    # The TLS side of test_read_size_bounds_each_socket_read. asyncio's TLS protocol
    # joins a turn's reads into one data_received, so the bound shows only in the
    # size it asks of each SSLObject.read (256 KiB by default).
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    body = bytes(range(256)) * 23 + b"x" * 112
    server = serve(respond_forever(CHUNKED_HEAD + chunked(body)), ctx)
    transport = AnyioTransport(trust_env=False, verify=False, read_size=1000)
    async with client(server, transport) as c:
        for _ in range(2):
            assert (await c.get("/")).content == body
        (conn,) = [conn for idle in transport._idle.values() for conn in idle]
        asyncio_tls = getattr(getattr(conn.own, "_transport", None), "_ssl_protocol", None)
        if anyio_backend == ("asyncio", {}):
            assert asyncio_tls is not None and asyncio_tls.max_size == 1000
        else:  # uvloop's TLS and trio's read into buffers of their own
            assert asyncio_tls is None


async def test_tls_phases_are_timed_apart(tls_server: Server) -> None:
    # TCP and the TLS handshake each timed; a reused connection has neither.
    async with client(tls_server, AnyioTransport(trust_env=False, verify=False)) as c:
        arrivals = []
        for _ in range(2):
            response = await c.get("/")
            arrivals.append(response.extensions[ARRIVAL_EXTENSION])
    first, second = arrivals
    assert not first.reused and second.reused and second.opened is None
    assert first.opened is not None
    assert first.opened.connect is not None and first.opened.connect >= 0
    assert first.opened.tls is not None and first.opened.tls > 0
    for arrival in arrivals:
        assert 0 < arrival.sent <= arrival.first_byte <= arrival.head <= arrival.body


async def test_body_after_the_head_is_stamped_apart(serve: Callable[..., Server]) -> None:
    # The head in one write, the body later in another: the first body byte is the
    # body's read; a body that came with the head has the head's stamp.
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(CHUNKED_HEAD, chunked(EVENTS[0]), delay=0.05)
        await conn.request()
        await conn.send(CHUNKED_HEAD + chunked(EVENTS[0]))

    server = serve(handler)
    async with client(server) as c:
        late = (await c.get("/")).extensions[ARRIVAL_EXTENSION]
        along = (await c.get("/")).extensions[ARRIVAL_EXTENSION]
    assert late.sent <= late.first_byte <= late.head <= late.body
    assert late.body > late.head  # two reads, 50 ms apart on the wire
    assert along.body == along.head
    assert not late.reused and along.reused


async def test_tls_custom_context(tls_server: Server, tls_files: tuple[Path, Path]) -> None:
    ctx = ssl.create_default_context(cafile=str(tls_files[0]))
    async with client(tls_server, AnyioTransport(trust_env=False, verify=ctx)) as c:
        assert (await c.get("/")).content == b"".join(EVENTS)


async def test_tls_default_verify_rejects_self_signed(tls_server: Server) -> None:
    async with client(tls_server) as c:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await c.get("/")


async def test_tls_trusts_what_httpx_trusts(
    tls_server: Server, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SSL_CERT_FILE, as httpx honours it; then a CA file given as verify=.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
    async with client(tls_server) as c:
        assert (await c.get("/")).content == b"".join(EVENTS)
    async with httpx.AsyncClient(base_url=tls_server.url) as plain:
        assert (await plain.get("/")).content == b"".join(EVENTS)
    monkeypatch.delenv("SSL_CERT_FILE")
    async with client(tls_server, AnyioTransport(verify=str(tls_files[0]))) as c:
        assert (await c.get("/")).content == b"".join(EVENTS)


def test_default_trust_is_certifis_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    import certifi

    from anyio_llmreq._transport._tls import trust_context

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    expected = ssl.create_default_context(cafile=certifi.where()).get_ca_certs()
    ours = trust_context(True)
    assert ours.get_ca_certs() == expected and expected
    assert ours.verify_mode == ssl.CERT_REQUIRED and ours.check_hostname


# -- arrival timestamps --------------------------------------------------------------------


async def test_arrival_times(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        pieces = [CHUNKED_HEAD, *(chunked(event)[:-5] for event in EVENTS[:3]), b"0\r\n\r\n"]
        await conn.send(*pieces, delay=0.05)

    async with client(serve(handler)) as c:
        start = time.perf_counter()
        async with c.stream("GET", "/") as response:
            arrival = response.extensions[ARRIVAL_EXTENSION]
            assert isinstance(arrival, Arrival)
            head_time = arrival.time
            assert start < arrival.first_byte <= head_time <= time.perf_counter()
            seen = []
            async for piece in response.aiter_raw():
                now = time.perf_counter()
                assert arrival.time <= now  # taken before the consumer got the bytes
                seen.append((piece, arrival.time))
    assert [piece for piece, _ in seen] == EVENTS[:3]
    times = [head_time] + [t for _, t in seen]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap > 0.03 for gap in gaps), gaps


# -- proxies -------------------------------------------------------------------------------


async def test_proxy_environment_is_refused(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    server = serve(respond_forever(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    async with client(server, AnyioTransport()) as c:
        with pytest.raises(
            httpx.ProxyError, match=r"http_client=httpx\.AsyncClient\(proxy=\.\.\.\)"
        ):
            await c.get("/")
    async with client(server, AnyioTransport(trust_env=False)) as c:
        assert (await c.get("/")).text == "ok"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with client(server, AnyioTransport()) as c:
        assert (await c.get("/")).text == "ok"


def test_proxy_argument_is_refused() -> None:
    with pytest.raises(httpx.ProxyError, match="does not support proxies"):
        AnyioTransport(proxy="http://proxy.invalid:3128")


# -- scale -----------------------------------------------------------------------------------


async def test_thousand_concurrent_streams(serve: Callable[..., Server]) -> None:
    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.send(CHUNKED_HEAD, *(chunked(event)[:-5] for event in EVENTS), b"0\r\n\r\n")

    server = serve(handler)
    results: list[bytes] = []
    transport = AnyioTransport(trust_env=False)

    async def one() -> None:
        async with c.stream("POST", "/", json={"prompt": "hi"}) as response:
            results.append(b"".join([piece async for piece in response.aiter_raw()]))

    async with client(server, transport, timeout=httpx.Timeout(30.0)) as c:
        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(one)
        assert sum(len(dq) for dq in transport._idle.values()) == server.connections
    assert results == [b"".join(EVENTS)] * 1000


# -- the head's read timeout on the watchdog (no cancel scope per request) --------------


async def test_read_timeout_counts_from_each_read_of_the_head(
    serve: Callable[..., Server],
) -> None:
    """Each wait for the head has the whole read timeout: a head trickling in slower
    than that in total is read; one that stalls half-way times out."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok"

    async def trickle(conn: Conn) -> None:
        await conn.request()
        await conn.send(head[:10], head[10:25], head[25:], delay=0.12)

    timeout = httpx.Timeout(5.0, read=0.2)
    async with client(serve(trickle), timeout=timeout) as c:
        response = await c.get("/")
    assert response.content == b"ok"

    server = serve(stall_after(head[:20]))
    async with client(server, timeout=timeout) as c:
        start = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout, match="response headers"):
            await c.get("/")
        assert 0.15 < time.perf_counter() - start < 2.0
    await wait_for(server.client_closed)


async def test_the_watchdog_holds_only_what_waits(serve: Callable[..., Server]) -> None:
    """A response read whole with its head never enters the watchdog's set; a timed-out
    head leaves it, and the connection is not reused."""
    transport = AnyioTransport(trust_env=False)
    server = serve(respond_forever(CHUNKED_HEAD + chunked(*EVENTS)))
    async with client(server, transport, timeout=httpx.Timeout(5.0, read=1.0)) as c:
        for _ in range(3):
            assert (await c.get("/")).content == b"".join(EVENTS)
        watchdog = transport._watchdog
        assert watchdog is not None and not watchdog._active
    stalled = serve(stall_after(b""))
    transport = AnyioTransport(trust_env=False)
    async with client(stalled, transport, timeout=httpx.Timeout(5.0, read=0.1)) as c:
        for _ in range(2):
            with pytest.raises(httpx.ReadTimeout):
                await c.get("/")
        watchdog = transport._watchdog
        assert watchdog is not None and not watchdog._active
        assert not any(transport._idle.values())
    assert stalled.connections == 2


def test_a_whole_chunked_body_in_one_read_is_decoded_at_once() -> None:
    from anyio_llmreq._transport._http11 import ChunkedDecoder

    for data, payloads, clean in [
        (chunked(*EVENTS), EVENTS, True),
        (chunked(b"a\r\nb"), [b"a\r\nb"], True),
        (b"0\r\n\r\n", [], True),
        (chunked(EVENTS[0]) + b"junk\r\n", [EVENTS[0]], False),
        (chunked(EVENTS[0], trailer=b"X: y\r\n"), [EVENTS[0]], True),
    ]:
        for _ in range(2):  # the second time, the size lines are known ones
            decoder = ChunkedDecoder()
            assert decoder.decode(data) == payloads
            assert decoder.done and decoder.clean == clean
