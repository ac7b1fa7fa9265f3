"""An HTTP/1.1 streaming transport for httpx, written directly on anyio sockets.

httpx's default transport (httpcore) spends most of its CPU at high concurrency on pool
bookkeeping and on per-read layers around h11. This transport keeps httpx's client API
(redirects, cookies, auth, ``Response``) and replaces only the wire layer:

* one connection per in-flight request; idle connections wait in a LIFO deque per
  (scheme, host, port), so checkout and checkin are O(1) and never scan the pool;
* the response body is decoded in one pass per socket read: a chunked read yields one
  ``bytes`` object holding every complete chunk payload of that read;
* the time of every socket read is taken with ``time.perf_counter()`` before any decoding
  and published through ``response.extensions["anyio_llmreq.arrival"]`` (:class:`Arrival`);
* timeouts of the body cost nothing per read: instead of a cancel scope per read, one
  watchdog timer per event loop wakes up rarely, and when a stream has waited too long it
  shuts the socket down, which makes the pending read return and raise ``ReadTimeout``.

It runs on asyncio, uvloop and trio. Proxies are not supported (see :class:`AnyioTransport`).

The HTTP/1.1 wire format (request head, response head, body framing, chunked decoding)
is the sans-IO codec in :mod:`._http11`; this module holds what touches sockets, clocks
and event loops: the pool, the body streams, the watchdogs and the naming of errors.
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import socket
import ssl
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, final

import anyio
import anyio.abc
import attrs
import httpx

from ._aiostream import ReadBatch, open_asyncio_stream
from ._http11 import MAX_HEAD, ChunkedDecoder, encode_head, framing, parse_head

if TYPE_CHECKING:
    import trio

__all__ = ("ARRIVAL_EXTENSION", "DEADLINE_EXTENSION", "AnyioTransport", "Arrival")

#: Response extension holding the :class:`Arrival` of the response.
ARRIVAL_EXTENSION: Final = "anyio_llmreq.arrival"
#: Request extension: absolute ``anyio.current_time()`` deadline for the whole request.
DEADLINE_EXTENSION: Final = "anyio_llmreq.deadline"

_ONE_SEND: Final = 65536  # bodies up to this size travel in the same send as the head
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_INF: Final = math.inf

_Key = tuple[str, str, int]


@final
@attrs.define(eq=False)
class Arrival:
    """When the bytes of one response arrived, as ``time.perf_counter()`` values.

    Both are taken right after the socket read returned, before any parsing, so they
    exclude the client's own decoding work.

    Attributes:
        time: arrival of the socket read that produced the bytes most recently yielded
            by the response stream. Before the first body bytes are yielded, the read
            that completed the response head.
        first_byte: arrival of the read holding the first byte of the response head.
    """

    time: float
    first_byte: float


@attrs.define(eq=False)
class _Connection:
    stream: anyio.abc.ByteStream
    key: _Key
    idle_since: float = 0.0


class AnyioTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 transport for ``httpx.AsyncClient`` built on anyio sockets.

    Use it as ``httpx.AsyncClient(transport=AnyioTransport(), timeout=...)``; redirects,
    cookies and auth stay in httpx's client layer.

    * There is no limit on concurrent connections (one per in-flight request), so
      ``PoolTimeout`` is never raised. At most ``max_keepalive_per_host`` idle
      connections are kept per (scheme, host, port), each for ``keepalive_expiry``
      seconds.
    * Timeouts come from ``request.extensions["timeout"]`` as httpx sets them: ``connect``
      covers TCP connect and TLS handshake, ``write`` sending the request, ``read`` the
      longest wait for the next socket read. ``request.extensions["anyio_llmreq.deadline"]``
      (an absolute ``anyio.current_time()``) bounds the whole request, body included, and
      raises ``httpx.ReadTimeout("Request deadline exceeded")``.
    * An idle connection is checked before it is reused, as urllib3 and aiohttp check a
      pooled one: one the server closed (or that has unexpected bytes to read) is
      dropped for the next. A request is never sent twice: once written, its failure is
      the request's, since the server may have received it.
    * ``Expect: 100-continue`` is dropped from requests; interim 1xx responses are skipped.
    * Proxies are not supported: passing ``proxy``, or (with ``trust_env``) a request whose
      URL an ``HTTP(S)_PROXY``/``ALL_PROXY`` variable applies to, raises
      ``httpx.ProxyError``. Use ``httpx.AsyncClient(proxy=...)`` without this transport
      for those.

    Args:
        verify: ``True`` verifies TLS certificates against the same trust store as httpx
            (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, else certifi's bundle); a
            path to a CA bundle file or directory; ``False`` disables verification; an
            ``ssl.SSLContext`` is used as is.
        cert: client certificate: a file, ``(certfile, keyfile)`` or
            ``(certfile, keyfile, password)``; ignored when *verify* is an ``SSLContext``.
        max_keepalive_per_host: idle connections kept per origin; ``None`` for no limit.
        keepalive_expiry: seconds an idle connection may be reused; ``None`` for ever.
        trust_env: honour proxy environment variables (by refusing them, see above).
        proxy: must be ``None``.
        local_address: local IP address to bind outgoing connections to.
        read_size: maximum bytes asked of each socket read.
    """

    def __init__(
        self,
        *,
        verify: bool | str | ssl.SSLContext = True,
        cert: str | tuple[str, str] | tuple[str, str, str] | None = None,
        max_keepalive_per_host: int | None = None,
        keepalive_expiry: float | None = 60.0,
        trust_env: bool = True,
        proxy: object = None,
        local_address: str | None = None,
        read_size: int = 65536,
    ) -> None:
        if proxy is not None:
            raise httpx.ProxyError(_PROXY_MESSAGE.format(proxy=proxy))
        if read_size < 1:
            raise ValueError("read_size must be a positive integer")
        if max_keepalive_per_host is not None and max_keepalive_per_host < 0:
            raise ValueError("max_keepalive_per_host must be >= 0 or None")
        self._verify = verify
        self._cert = cert
        self._ssl_context: ssl.SSLContext | None = None  # built on first https request
        self._max_keepalive = max_keepalive_per_host
        self._keepalive_expiry = keepalive_expiry
        self._local_address = local_address
        self._read_size = read_size
        self._idle: dict[_Key, deque[_Connection]] = {}
        self._closed = False
        self._watchdog: _Watchdog | None = None
        self._batch: ReadBatch | None = None  # the asyncio read batch of the current loop
        # Read once, like httpx does: os.environ lookups per request would cost more
        # than the rest of the request setup.
        self._env_proxies = urllib.request.getproxies_environment() if trust_env else {}

    # -- public API -----------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        default_port = _DEFAULT_PORTS.get(scheme)
        if default_port is None:
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'."
            )
        host = url.raw_host.decode("ascii")
        if not host:
            raise httpx.UnsupportedProtocol("Request URL is missing a host.")
        port = url.port or default_port
        if self._env_proxies:
            self._refuse_env_proxy(scheme, host)

        method = request.method
        head, chunked_body, keep_alive = encode_head(
            method, request.url.raw_path, request.headers.raw
        )
        body: bytes | None = None
        if isinstance(request.stream, httpx.ByteStream):
            # In-memory body: can be sent together with the head and re-sent on retry.
            # Its synchronous iterator: the asynchronous one is a generator per request.
            body = b"".join(request.stream)
            if chunked_body:
                body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"

        extensions = request.extensions
        timeouts = extensions.get("timeout") or {}
        connect_timeout = timeouts.get("connect")
        write_timeout = timeouts.get("write")
        read_timeout = timeouts.get("read")
        deadline: float | None = extensions.get(DEADLINE_EXTENSION)

        key = (scheme, host, port)
        conn = await self._checkout(key)
        phase = "connect"
        with anyio.CancelScope() as scope:
            try:
                if conn is None:
                    scope.deadline = _until(connect_timeout, deadline)
                    conn = _Connection(await self._connect(host, port, scheme), key)
                phase = "write"
                scope.deadline = _until(write_timeout, deadline)
                if body is not None:
                    await _send_bytes(conn, head, body)
                else:
                    await _send_stream(conn, head, request.stream, chunked_body)
                phase = "read"
                scope.deadline = _until(read_timeout, deadline)
                return await self._read_response(
                    conn, scope, method, keep_alive, read_timeout, deadline
                )
            except BaseException:
                if conn is not None:
                    await anyio.aclose_forcefully(conn.stream)
                raise
        # Only reached when our own scope timed out.
        if deadline is not None and anyio.current_time() >= deadline:
            raise httpx.ReadTimeout("Request deadline exceeded", request=request)
        if phase == "connect":
            raise httpx.ConnectTimeout(f"Timed out connecting to {host}:{port}", request=request)
        if phase == "write":
            raise httpx.WriteTimeout("Timed out sending the request", request=request)
        raise httpx.ReadTimeout("Timed out waiting for the response headers", request=request)

    async def aclose(self) -> None:
        """Close every idle connection; streams still open close theirs when they end."""
        self._closed = True
        idle = [conn for dq in self._idle.values() for conn in dq]
        self._idle.clear()
        for conn in idle:
            await anyio.aclose_forcefully(conn.stream)

    # -- connections ------------------------------------------------------------------

    async def _checkout(self, key: _Key) -> _Connection | None:
        dq = self._idle.get(key)
        expiry = self._keepalive_expiry
        while dq:
            conn = dq.pop()
            if expiry is not None and perf_counter() - conn.idle_since >= expiry:
                # LIFO order: when the newest idle connection has expired, all older
                # ones have.
                stale = [conn, *dq]
                dq.clear()
                for old in stale:
                    await anyio.aclose_forcefully(old.stream)
                return None
            if not _dropped(conn.stream):
                return conn
            await anyio.aclose_forcefully(conn.stream)
        return None

    async def _release(self, conn: _Connection) -> None:
        if self._closed or self._max_keepalive == 0:
            await anyio.aclose_forcefully(conn.stream)
            return
        dq = self._idle.get(conn.key)
        if dq is None:
            dq = self._idle[conn.key] = deque()
        now = conn.idle_since = perf_counter()
        stale: list[_Connection] = []
        # Purge from the old end here so connections buried under a busy top of the
        # stack do not linger until the next quiet period.
        expiry = self._keepalive_expiry
        if expiry is not None:
            while dq and now - dq[0].idle_since >= expiry:
                stale.append(dq.popleft())
        if self._max_keepalive is not None and len(dq) >= self._max_keepalive:
            stale.append(dq.popleft())
        dq.append(conn)
        for old in stale:
            await anyio.aclose_forcefully(old.stream)

    async def _connect(self, host: str, port: int, scheme: str) -> anyio.abc.ByteStream:
        try:
            loop = _running_loop()
            if loop is not None:
                batch = self._batch
                if batch is None or batch.owner is not loop:
                    batch = self._batch = ReadBatch(loop)
                return await open_asyncio_stream(
                    host,
                    port,
                    ssl_context=self._get_ssl_context() if scheme == "https" else None,
                    local_host=self._local_address,
                    batch=batch,
                )
            if scheme == "https":
                return await anyio.connect_tcp(
                    host,
                    port,
                    local_host=self._local_address,
                    ssl_context=self._get_ssl_context(),
                    tls_hostname=host,
                    # HTTP frames its own bodies, so a missing TLS close_notify is harmless.
                    tls_standard_compatible=False,
                )
            from ._triostream import TrioStream  # trio is an optional dependency

            return TrioStream(await anyio.connect_tcp(host, port, local_host=self._local_address))
        except socket.gaierror as exc:
            raise httpx.ConnectError(f"Could not resolve host {host!r}: {exc}") from exc
        except ssl.SSLError as exc:
            raise httpx.ConnectError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise httpx.ConnectError(
                f"TLS handshake with {host}:{port} failed: the server closed the connection"
            ) from exc
        except OSError as exc:
            raise httpx.ConnectError(
                f"Could not connect to {host}:{port}: {_describe_os_error(exc)}"
            ) from exc

    def _get_ssl_context(self) -> ssl.SSLContext:
        ctx = self._ssl_context
        if ctx is None:
            verify = self._verify
            if isinstance(verify, ssl.SSLContext):
                ctx = verify  # used as is: the caller configured it, cert included
            else:
                ctx = _trust_context(verify)
                if not verify:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                ctx.set_alpn_protocols(["http/1.1"])
                if self._cert is not None:
                    if isinstance(self._cert, str):
                        ctx.load_cert_chain(self._cert)
                    else:
                        ctx.load_cert_chain(*self._cert)
            self._ssl_context = ctx
        return ctx

    def _refuse_env_proxy(self, scheme: str, host: str) -> None:
        proxies = self._env_proxies
        proxy = proxies.get(scheme) or proxies.get("all")
        if proxy and not urllib.request.proxy_bypass(host):
            raise httpx.ProxyError(_PROXY_MESSAGE.format(proxy=proxy))

    # -- response ---------------------------------------------------------------------

    async def _read_response(
        self,
        conn: _Connection,
        scope: anyio.CancelScope,
        method: str,
        keep_alive: bool,
        read_timeout: float | None,
        deadline: float | None,
    ) -> httpx.Response:
        receive = conn.stream.receive
        clock = _read_clock(conn.stream)
        read_size = self._read_size
        buf = b""
        searched = 0
        first_byte = 0.0
        last = 0.0
        while True:
            end = buf.find(b"\r\n\r\n", searched)
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise httpx.RemoteProtocolError("Response header section exceeds 64 KiB")
                searched = max(len(buf) - 3, 0)
                if first_byte:
                    scope.deadline = _until(read_timeout, deadline)
                try:
                    data = await receive(read_size)
                except anyio.EndOfStream as exc:
                    if not first_byte:
                        raise httpx.RemoteProtocolError(
                            "Server disconnected without sending a response."
                        ) from exc
                    raise httpx.RemoteProtocolError(
                        "Server disconnected while sending the response headers."
                    ) from exc
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    raise httpx.ReadError(f"Error reading the response: {_describe(exc)}") from exc
                last = clock()
                if not first_byte:
                    first_byte = last
                buf += data
                continue

            if end > MAX_HEAD:
                raise httpx.RemoteProtocolError("Response header section exceeds 64 KiB")
            version, status, reason, headers = parse_head(buf[:end])
            buf = buf[end + 4 :]
            searched = 0
            if 100 <= status < 200 and status != 101:
                continue  # interim response (100 Continue, 103 Early Hints)
            break

        arrival = Arrival(last, first_byte)
        extensions: dict[str, Any] = {
            "http_version": version,
            "reason_phrase": reason,
            ARRIVAL_EXTENSION: arrival,
        }
        length, chunked, keep_alive = framing(
            version, status, method, headers, keep_alive=keep_alive
        )
        if length == 0:
            if buf or not keep_alive:
                await anyio.aclose_forcefully(conn.stream)
            else:
                await self._release(conn)
            return httpx.Response(
                status, headers=headers, stream=httpx.ByteStream(b""), extensions=extensions
            )
        stream_cls: type[_BodyStream]
        if chunked:
            stream_cls = _ChunkedStream
        elif length is not None:
            stream_cls = _LengthStream
        else:
            stream_cls = _CloseDelimitedStream
        stream = stream_cls(self, conn, arrival, buf, length or 0, keep_alive, read_timeout)
        if read_timeout is not None or deadline is not None:
            stream.watch(self._get_watchdog(), deadline)
        return httpx.Response(status, headers=headers, stream=stream, extensions=extensions)

    def _get_watchdog(self) -> _Watchdog:
        watchdog = self._watchdog
        try:
            loop: object = asyncio.get_running_loop()
        except RuntimeError:
            import trio

            loop = trio.lowlevel.current_trio_token()
            if watchdog is None or watchdog.owner is not loop:
                watchdog = self._watchdog = _TrioWatchdog(loop)
        else:
            if watchdog is None or watchdog.owner is not loop:
                assert isinstance(loop, asyncio.AbstractEventLoop)
                watchdog = self._watchdog = _AsyncioWatchdog(loop)
        return watchdog


_PROXY_MESSAGE: Final = (
    "AnyioTransport does not support proxies (proxy: {proxy}). Pass "
    "http_client=httpx.AsyncClient(proxy=...) without this transport instead, or "
    "AnyioTransport(trust_env=False) / NO_PROXY to ignore the proxy environment variables."
)


# -- sending the request ---------------------------------------------------------------


def _encode_head(request: httpx.Request) -> tuple[bytes, bool, bool]:
    """:func:`._http11.encode_head` of a whole ``httpx.Request`` (the request path calls
    ``encode_head`` itself)."""
    return encode_head(request.method, request.url.raw_path, request.headers.raw)


async def _send(conn: _Connection, data: bytes) -> None:
    try:
        await conn.stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise httpx.WriteError(f"Error sending the request: {_describe(exc)}") from exc


async def _send_bytes(conn: _Connection, head: bytes, body: bytes) -> None:
    if len(body) <= _ONE_SEND:
        await _send(conn, head + body)
    else:
        await _send(conn, head)
        await _send(conn, body)


async def _send_stream(
    conn: _Connection, head: bytes, stream: httpx.AsyncByteStream | Any, chunked: bool
) -> None:
    await _send(conn, head)
    parts = stream.__aiter__()
    try:
        async for part in parts:
            if part:
                await _send(conn, b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
    finally:
        # Close the body's async generator here, in this task: left to the garbage
        # collector it would be finalized outside any event loop context.
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()
    if chunked:
        await _send(conn, b"0\r\n\r\n")


# -- response bodies -----------------------------------------------------------------


class _BodyStream(httpx.AsyncByteStream):
    """Base of the response body streams: one ``bytes`` per socket read."""

    __slots__ = (
        "_arrival",
        "_clock",
        "_conn",
        "_deadline",
        "_expired",
        "_initial",
        "_keep_alive",
        "_read_size",
        "_read_timeout",
        "_receive",
        "_remaining",
        "_transport",
        "_wait_start",
        "_watchdog",
    )

    def __init__(
        self,
        transport: AnyioTransport,
        conn: _Connection,
        arrival: Arrival,
        initial: bytes,
        length: int,
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._remaining = length  # Content-Length bodies only
        self._conn: _Connection | None = conn
        self._receive = conn.stream.receive
        self._clock = _read_clock(conn.stream)
        self._read_size = transport._read_size
        self._arrival = arrival
        self._initial = initial  # body bytes that came in with the head
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout
        self._watchdog: _Watchdog | None = None
        self._deadline = _INF  # perf_counter() domain
        self._wait_start: float | None = None
        self._expired: str | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        raise NotImplementedError  # pragma: no cover

    async def aclose(self) -> None:
        conn = self._conn
        if conn is not None:
            # Not fully read (closed early or cancelled): the connection's state is
            # unknown, so it is closed, never reused.
            self._conn = None
            self._unwatch()
            await anyio.aclose_forcefully(conn.stream)

    # The watchdog calls _check() from its timer; it never runs during a read.

    def watch(self, watchdog: _Watchdog, deadline: float | None) -> None:
        if deadline is not None:
            self._deadline = deadline - anyio.current_time() + perf_counter()
        self._watchdog = watchdog
        watchdog.add(self, self._check(perf_counter()))

    def _unwatch(self) -> None:
        if self._watchdog is not None:
            self._watchdog.discard(self)
            self._watchdog = None

    def _check(self, now: float) -> float:
        """Expire the stream if due; return when to check it next (inf: never)."""
        if self._conn is None:
            return _INF
        if now >= self._deadline:
            return self._expire("Request deadline exceeded")
        due = self._deadline
        read_timeout = self._read_timeout
        if read_timeout is not None:
            wait_start = self._wait_start
            if wait_start is None:
                # The consumer is busy, not waiting on us: look again one period later.
                due = min(due, now + read_timeout)
            elif now >= wait_start + read_timeout:
                return self._expire(f"No data received for {read_timeout} s (read timeout)")
            else:
                due = min(due, wait_start + read_timeout)
        return due

    def _expire(self, reason: str) -> float:
        self._expired = reason
        conn = self._conn
        if conn is not None:
            # Shutting the socket down wakes the pending receive with EOF on every
            # backend, without a cancel scope around each read.
            try:
                raw = conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)
                try:
                    raw.shutdown(socket.SHUT_RDWR)
                except TypeError:
                    # uvloop's transport sockets refuse shutdown(); a dup of the fd does not.
                    with socket.socket(fileno=os.dup(raw.fileno())) as dup:
                        dup.shutdown(socket.SHUT_RDWR)
            except (OSError, anyio.TypedAttributeLookupError):
                pass
        return _INF

    async def _finish(self, reusable: bool) -> None:
        conn = self._conn
        assert conn is not None
        self._conn = None
        self._unwatch()
        if reusable and self._keep_alive and self._expired is None:
            await self._transport._release(conn)
        else:
            await anyio.aclose_forcefully(conn.stream)

    async def _receive_failed(self, exc: BaseException) -> None:
        """Close the connection and translate *exc*; always raises."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._unwatch()
            await anyio.aclose_forcefully(conn.stream)
        if not isinstance(exc, Exception):
            raise exc  # cancellation and the like: propagate untouched
        if self._expired is not None:
            raise httpx.ReadTimeout(self._expired) from exc
        if isinstance(exc, anyio.EndOfStream):
            raise httpx.RemoteProtocolError(
                "Server disconnected before the response body was complete."
            ) from exc
        if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError | OSError):
            raise httpx.ReadError(f"Error reading the response body: {_describe(exc)}") from exc
        raise exc


class _ChunkedStream(_BodyStream):
    __slots__ = ("_decoder",)

    def __init__(
        self,
        transport: AnyioTransport,
        conn: _Connection,
        arrival: Arrival,
        initial: bytes,
        length: int,
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        super().__init__(transport, conn, arrival, initial, length, keep_alive, read_timeout)
        self._decoder = ChunkedDecoder()

    async def __anext__(self) -> bytes:
        decoder = self._decoder
        while True:
            data = self._initial
            if data:
                self._initial = b""
            else:
                if self._conn is None:
                    raise StopAsyncIteration
                if self._watchdog is not None:
                    self._wait_start = perf_counter()
                try:
                    data = await self._receive(self._read_size)
                except BaseException as exc:
                    await self._receive_failed(exc)
                    raise  # pragma: no cover - _receive_failed always raises
                self._arrival.time = self._clock()
                self._wait_start = None
            try:
                parts = decoder.decode(data)
            except httpx.RemoteProtocolError as exc:
                await self._receive_failed(exc)
                raise  # pragma: no cover
            if decoder.done:
                await self._finish(decoder.clean)
            if parts:
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def push(self, consume: Callable[[bytes, float], None]) -> None:
        """Hand the whole body to ``consume(payload, arrival)``, one call per read.

        On asyncio the payloads are decoded and consumed in the event loop's read
        callback, on trio (plain TCP) in the run's reactor task: a token stream costs no
        task wakeup per read. Other connections (trio over TLS) are iterated. Errors are
        those of iterating the stream; an exception from *consume* propagates unchanged
        (the connection is then closed by ``aclose``).
        """
        conn = self._conn
        stream: Any = conn.stream if conn is not None else None
        if not hasattr(stream, "push"):
            async for payload in self:
                consume(payload, self._arrival.time)
            return
        decoder = self._decoder
        arrival = self._arrival
        failed: list[tuple[BaseException, bool]] = []  # (error, raised by the decoder)
        watched = self._watchdog is not None

        def sink(data: bytes, now: float) -> bool:
            """Decode and consume one read; True once the body is complete or failed."""
            arrival.time = now
            if watched:
                self._wait_start = now  # a read timeout counts from the latest read
            try:
                parts = decoder.decode(data)
            except Exception as exc:
                failed.append((exc, True))
                return True
            try:
                if parts:
                    consume(parts[0] if len(parts) == 1 else b"".join(parts), now)
            except Exception as exc:
                failed.append((exc, False))
                return True
            return decoder.done

        initial = self._initial
        self._initial = b""
        if watched:
            self._wait_start = perf_counter()
        done = bool(initial) and sink(initial, arrival.time)
        if not done:
            done = await stream.push(sink)
        self._wait_start = None
        if failed:
            exc, from_decoder = failed[0]
            if from_decoder:
                await self._receive_failed(exc)
            raise exc
        if done:
            await self._finish(decoder.clean)
            return
        # The connection ended or failed first: iterating says why, as it always does.
        async for payload in self:
            consume(payload, arrival.time)


class _LengthStream(_BodyStream):
    __slots__ = ()

    async def __anext__(self) -> bytes:
        data = self._initial
        if data:
            self._initial = b""
        else:
            if self._conn is None:
                raise StopAsyncIteration
            if self._watchdog is not None:
                self._wait_start = perf_counter()
            try:
                data = await self._receive(self._read_size)
            except BaseException as exc:
                await self._receive_failed(exc)
                raise  # pragma: no cover
            self._arrival.time = self._clock()
            self._wait_start = None
        remaining = self._remaining = self._remaining - len(data)
        if remaining <= 0:
            if remaining < 0:
                await self._receive_failed(
                    httpx.RemoteProtocolError("Response body is longer than its Content-Length")
                )
            await self._finish(True)
        return data


class _CloseDelimitedStream(_BodyStream):
    __slots__ = ()

    async def __anext__(self) -> bytes:
        data = self._initial
        if data:
            self._initial = b""
            return data
        if self._conn is None:
            raise StopAsyncIteration
        if self._watchdog is not None:
            self._wait_start = perf_counter()
        try:
            data = await self._receive(self._read_size)
        except anyio.EndOfStream as exc:
            if self._expired is not None:
                await self._receive_failed(exc)
            await self._finish(False)
            raise StopAsyncIteration from None
        except BaseException as exc:
            await self._receive_failed(exc)
            raise  # pragma: no cover
        self._arrival.time = self._clock()
        self._wait_start = None
        return data


# -- timeouts of body streams ----------------------------------------------------------


class _Watchdog:
    """Enforces read timeouts and deadlines of the streams of one event loop.

    One timer per loop sleeps until the earliest time a stream could expire, then asks
    every watched stream (``_check``) whether it has; the streams only store the start of
    each wait, so a read costs one attribute store instead of a cancel scope.
    """

    __slots__ = ("_active", "_due", "owner")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self._active: set[_BodyStream] = set()
        self._due = _INF  # perf_counter() time the timer is set for

    def add(self, stream: _BodyStream, due: float) -> None:
        self._active.add(stream)
        if due < self._due:
            self._due = due
            self._arm(due)

    def discard(self, stream: _BodyStream) -> None:
        self._active.discard(stream)
        if not self._active and self._due != _INF:
            # Nothing left to watch: stop the timer instead of letting it sleep until
            # the last deadline it was armed for (up to a whole read timeout).
            self._due = _INF
            self._disarm()

    def _sweep(self) -> float:
        now = perf_counter()
        due = _INF
        for stream in list(self._active):
            next_check = stream._check(now)
            if next_check == _INF:
                self._active.discard(stream)
            elif next_check < due:
                due = next_check
        # Never spin: timers may fire a hair early and clocks are coarse.
        self._due = max(due, now + 0.001) if due != _INF else _INF
        return self._due

    def _arm(self, due: float) -> None:
        raise NotImplementedError  # pragma: no cover

    def _disarm(self) -> None:
        raise NotImplementedError  # pragma: no cover


class _AsyncioWatchdog(_Watchdog):
    __slots__ = ("_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None

    def _arm(self, due: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(max(due - perf_counter(), 0.0), self._fire)

    def _disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        due = self._sweep()
        if due != _INF:
            self._arm(due)


class _TrioWatchdog(_Watchdog):
    __slots__ = ("_running", "_scope")

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        super().__init__(token)
        self._scope: trio.CancelScope | None = None
        self._running = False

    def _arm(self, due: float) -> None:
        import trio

        if self._scope is not None:
            self._scope.deadline = _to_trio_time(due)
        elif not self._running:
            # trio has no timer callbacks; a system task needs no nursery of ours and
            # is cancelled when the run ends.
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="anyio_llmreq watchdog")

    def _disarm(self) -> None:
        if self._scope is not None:
            self._scope.cancel()  # _run sees _due == _INF and ends

    async def _run(self) -> None:
        import trio

        try:
            while self._due != _INF:
                with trio.CancelScope(deadline=_to_trio_time(self._due)) as scope:
                    self._scope = scope
                    await trio.sleep_forever()
                self._scope = None
                self._sweep()
        finally:
            self._scope = None
            self._running = False
            self._due = _INF


def _trust_context(verify: bool | str) -> ssl.SSLContext:
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


def _dropped(stream: anyio.abc.ByteStream) -> bool:
    """Whether an idle connection can no longer carry a request (urllib3's check).

    An idle HTTP/1.1 connection has nothing to read: a readable one was closed by the
    server, or holds bytes no request asked for. Either way it is not reused.
    """
    check = getattr(stream, "dropped", None)
    if check is not None and check():
        return True  # our asyncio stream: the event loop already read the EOF or bytes
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if sock is None:
        return False
    try:
        fd = sock.fileno()
    except OSError:
        return True
    return fd < 0 or _readable(fd)


def _readable(fd: int) -> bool:
    """Whether *fd* has bytes (or an EOF) to read, without waiting."""
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()  # poll, not select: no limit on the descriptor's number
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def body_pusher(
    response: httpx.Response,
) -> Callable[[Callable[[bytes, float], None]], Awaitable[None]] | None:
    """``push`` of *response*'s body when it is a chunked body of ours (``push`` itself
    knows whether its connection can push each read or must be iterated); else ``None``."""
    stream = response.stream
    if type(stream) is _ChunkedStream and "content-encoding" not in response.headers:
        return stream.push
    return None


def body_released(stream: object) -> bool:
    """Whether *stream* is a body stream of ours that has ended and given its
    connection back: closing it then does nothing and never suspends."""
    return isinstance(stream, _BodyStream) and stream._conn is None


def _on_asyncio() -> bool:
    """True inside an asyncio (or uvloop) event loop, False under trio."""
    return _running_loop() is not None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio (or uvloop) event loop; None under trio."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _read_clock(stream: anyio.abc.ByteStream) -> Callable[[], float]:
    """When the latest received bytes came off the socket.

    The asyncio stream stamps each chunk as the loop reads it; for anyio's sockets the
    best we have is the moment ``receive`` returned.
    """
    arrival_time: Callable[[], float] | None = getattr(stream, "arrival_time", None)
    return arrival_time if arrival_time is not None else perf_counter


def _to_trio_time(perf: float) -> float:
    import trio

    return perf - perf_counter() + trio.current_time()


# -- helpers ---------------------------------------------------------------------------


def _until(timeout: float | None, deadline: float | None) -> float:
    """The cancel-scope deadline for a phase limited by *timeout* and *deadline*."""
    until = _INF if timeout is None else anyio.current_time() + timeout
    if deadline is not None and deadline < until:
        return deadline
    return until


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, anyio.BrokenResourceError | anyio.ClosedResourceError) and cause:
        exc = cause
    return _name_and_text(exc)


def _describe_os_error(exc: OSError) -> str:
    cause = exc.__cause__
    # anyio reports several failed addresses as "All connection attempts failed" caused
    # by an exception group (a builtin only from Python 3.11 on, hence getattr).
    group: Iterable[BaseException] | None = getattr(cause, "exceptions", None)
    if group is not None:
        return "; ".join(_flatten(group))
    return _name_and_text(cause or exc)


def _flatten(excs: Iterable[BaseException]) -> Iterable[str]:
    for exc in excs:
        inner: Iterable[BaseException] | None = getattr(exc, "exceptions", None)
        if inner is not None:
            yield from _flatten(inner)
        else:
            yield _name_and_text(exc)


def _name_and_text(exc: BaseException) -> str:
    # The class name says "ConnectionRefusedError" where the text may not.
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
