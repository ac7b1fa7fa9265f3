"""``AnyioTransport``: the connection pool, sending a request, reading a response head.

A request checks an idle connection out (or connects), sends its head and body, reads the
response head and returns a :class:`~._body.Body` on that connection; the body checks the
connection back in once read whole. The retry rule is that there is none: an idle
connection is checked before reuse instead, and a request once written is never re-sent.
"""

from __future__ import annotations

import math
import select
import socket
import ssl
import sys
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

import anyio
import httpx

from ._body import Body, ChunkedFraming, CloseFraming, Framing, LengthFraming, shutdown
from ._errors import describe, describe_os_error
from ._http11 import MAX_HEAD, RawHeaders, encode_head, is_interim, parse_response
from ._interface import ARRIVAL_EXTENSION, DEFAULT_READ_SIZE, Arrival, ConnectTimes, OwnStream
from ._timers import AsyncioWatchdog, TrioWatchdog, Watchdog
from ._tls import client_context

if TYPE_CHECKING:
    import asyncio

    import anyio.abc

    from ._asyncio_protocol import ReadBatch

__all__ = ["AnyioTransport", "Connection", "RawResponse"]

_ONE_SEND: Final = 65536  # bodies up to this size travel in the same send as the head
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_INF: Final = math.inf

_Key = tuple[str, str, int]


class Connection:
    """One pooled connection: its stream, and the same stream as an ``OwnStream`` when
    it is one of ours (None: anyio's own, trio over TLS).

    While a response head is awaited the connection is in the watchdog's set
    (``check``), which enforces the read timeout as it does for bodies: no cancel
    scope (and its timer) per request. A plain class: attrs would compile its methods
    at import.
    """

    __slots__ = (
        "fd",
        "head_timeout",
        "idle_since",
        "key",
        "opened",
        "own",
        "stream",
        "timed_out",
        "wait_start",
        "watchdog",
    )

    stream: anyio.abc.ByteStream
    key: _Key
    own: OwnStream | None
    # The socket's descriptor, for the idle check (-1: none).
    fd: int
    idle_since: float
    # The wait for the response head: its start, its limit, and whether it ran out.
    wait_start: float | None
    head_timeout: float
    timed_out: bool
    # How it opened (its first request reports it).
    opened: ConnectTimes
    # The watchdog of its event loop, for a connection that can only live in that loop
    # (asyncio's); None: looked up at each wait (the running trio run's).
    watchdog: Watchdog | None

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        key: _Key,
        own: OwnStream | None,
        opened: ConnectTimes | None = None,
    ) -> None:
        self.stream = stream
        self.key = key
        self.own = own
        self.fd = _fileno(stream)
        self.idle_since = 0.0
        self.wait_start = None
        self.head_timeout = _INF
        self.timed_out = False
        self.opened = ConnectTimes() if opened is None else opened
        self.watchdog = None

    def __repr__(self) -> str:
        return f"<Connection {self.key} fd={self.fd}>"

    def check(self, now: float) -> float:
        """The watchdog's check of the wait for the response head (see ``Watchdog``)."""
        wait_start = self.wait_start
        if wait_start is None:
            return _INF
        due = wait_start + self.head_timeout
        if now < due:
            return due
        self.timed_out = True
        self.wait_start = None
        shutdown(self.stream)  # the pending receive ends with EOF
        return _INF


class AnyioTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 transport for ``httpx.AsyncClient`` built on anyio.

    Use it as ``httpx.AsyncClient(transport=AnyioTransport(), timeout=...)``; redirects,
    cookies and auth stay in httpx's client layer.

    On asyncio (and uvloop) it reads through a raw asyncio ``Protocol``, on trio through a
    private epoll reactor; elsewhere (trio over TLS, or trio without epoll) it falls back
    to anyio's streams. Either way every socket read is stamped when its bytes came off the
    socket (``response.extensions["anyio_llmreq.arrival"]``) and a response body yields
    one ``bytes`` per read.

    * There is no limit on concurrent connections (one per in-flight request), so
      ``PoolTimeout`` is never raised. At most ``max_keepalive_per_host`` idle
      connections are kept per (scheme, host, port), each for ``keepalive_expiry``
      seconds.
    * Timeouts come from ``request.extensions["timeout"]`` as httpx sets them: ``connect``
      covers TCP connect and TLS handshake, ``write`` sending the request, ``read`` the
      longest wait for the next socket read.
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
        read_size: int = DEFAULT_READ_SIZE,
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
        self._idle: dict[_Key, deque[Connection]] = {}
        self._closed = False
        self._watchdog: Watchdog | None = None
        self._batch: ReadBatch | None = None  # the asyncio read batch of the current loop
        # Read once, like httpx does: os.environ lookups per request would cost more
        # than the rest of the request setup.
        self._env_proxies = urllib.request.getproxies_environment() if trust_env else {}

    # -- public API -----------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = self.origin(request.url)
        head, chunked_body, keep_alive = encode_head(
            request.method, request.url.raw_path, request.headers.raw
        )
        body: bytes | None = None
        if isinstance(request.stream, httpx.ByteStream):
            # In-memory body: can be sent together with the head.
            # Its synchronous iterator: the asynchronous one is a generator per request.
            body = b"".join(request.stream)
        timeouts = request.extensions.get("timeout") or {}
        raw = await self.roundtrip(
            key, request.method, head, body, chunked_body, keep_alive, timeouts, request
        )
        return raw.to_httpx()

    def origin(self, url: httpx.URL) -> _Key:
        """The pool key (scheme, host, port) of *url*; raises ``UnsupportedProtocol``
        (and ``ProxyError`` for a URL the proxy environment applies to)."""
        scheme = url.scheme
        default_port = _DEFAULT_PORTS.get(scheme)
        if default_port is None:
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{scheme}://'."
            )
        host = url.raw_host.decode("ascii")
        if not host:
            raise httpx.UnsupportedProtocol("Request URL is missing a host.")
        if self._env_proxies:
            self._refuse_env_proxy(scheme, host)
        return (scheme, host, url.port or default_port)

    async def roundtrip(
        self,
        key: _Key,
        method: str,
        head: bytes,
        body: bytes | None,
        chunked_body: bool,
        keep_alive: bool,
        timeouts: dict[str, float | None],
        request: httpx.Request | Any = None,
    ) -> RawResponse:
        """Send an encoded request head (``encode_head``'s) and its body, read the
        response head: the wire work of ``handle_async_request``, without building
        httpx's ``Response`` (the engine's fast path calls it directly).

        *body* ``None``: *request*'s stream is sent instead. *request* is only named
        in the errors raised.
        """
        if body is not None and chunked_body:
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        conn = await self._checkout(key)
        opened = None  # a pooled connection: nothing to report about its opening
        try:
            if conn is None:
                scheme, host, port = key
                with anyio.CancelScope(deadline=_until(timeouts.get("connect"))):
                    conn = await self._connect(host, port, scheme, key)
                if conn is None:  # our scope timed out
                    raise httpx.ConnectTimeout(
                        f"Timed out connecting to {host}:{port}", request=request
                    )
                opened = conn.opened
            own = conn.own
            wait: Awaitable[None] | None
            if own is not None and body is not None and len(body) <= _ONE_SEND:
                # The usual request: it fits the socket's buffer and is sent without a
                # wait, so there is no write deadline to set (a cancel scope and a timer).
                wait = None if _send_now(own, head + body) else _drain(own)
            elif body is not None:
                wait = _send_bytes(conn, head, body)
            else:
                wait = _send_stream(conn, head, request.stream, chunked_body)
            if wait is not None:
                written = False
                with anyio.CancelScope(deadline=_until(timeouts.get("write"))):
                    await wait
                    written = True
                if not written:  # our scope timed out
                    raise httpx.WriteTimeout("Timed out sending the request", request=request)
            return await self._read_response(
                conn, method, keep_alive, timeouts.get("read"), request, perf_counter(), opened
            )
        except BaseException:
            if conn is not None:
                await anyio.aclose_forcefully(conn.stream)
            raise

    async def aclose(self) -> None:
        """Close every idle connection; streams still open close theirs when they end."""
        self._closed = True
        idle = [conn for dq in self._idle.values() for conn in dq]
        self._idle.clear()
        for conn in idle:
            await anyio.aclose_forcefully(conn.stream)

    # -- the pool ---------------------------------------------------------------------

    async def _checkout(self, key: _Key) -> Connection | None:
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
            if not _dropped(conn):
                return conn
            await anyio.aclose_forcefully(conn.stream)
        return None

    async def _release(self, conn: Connection) -> None:
        if self._closed or self._max_keepalive == 0:
            await anyio.aclose_forcefully(conn.stream)
            return
        dq = self._idle.get(conn.key)
        if dq is None:
            dq = self._idle[conn.key] = deque()
        now = conn.idle_since = perf_counter()
        stale: list[Connection] = []
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

    async def _connect(self, host: str, port: int, scheme: str, key: _Key) -> Connection:
        """A new connection, on the stream that suits the running loop."""
        times = ConnectTimes()
        try:
            loop = _running_loop()
            if loop is not None:
                # Imported here: a trio application never loads asyncio for us, and under
                # asyncio it is loaded already, so this costs one lookup per connection.
                from ._asyncio_protocol import ReadBatch, open_asyncio_stream

                batch = self._batch
                if batch is None or batch.owner is not loop:
                    batch = self._batch = ReadBatch(loop)
                ours = await open_asyncio_stream(
                    host,
                    port,
                    ssl_context=self._get_ssl_context() if scheme == "https" else None,
                    local_host=self._local_address,
                    batch=batch,
                    times=times,
                    read_size=self._read_size,
                )
                conn = Connection(ours, key, ours, times)
                conn.watchdog = self._get_watchdog()
                return conn
            # anyio resolves and connects in one step (Happy Eyeballs): one figure.
            began = perf_counter()
            tcp = await anyio.connect_tcp(host, port, local_host=self._local_address)
            connected = perf_counter()
            times.connect = connected - began
            if scheme == "https":
                from anyio.streams.tls import TLSStream

                try:
                    tls = await TLSStream.wrap(
                        tcp,
                        hostname=host,
                        ssl_context=self._get_ssl_context(),
                        # HTTP frames its own bodies: a missing TLS close_notify is harmless.
                        standard_compatible=False,
                    )
                except BaseException:
                    await anyio.aclose_forcefully(tcp)
                    raise
                times.tls = perf_counter() - connected
                return Connection(tls, key, None, times)
            from ._trio_reactor import TrioStream  # trio is an optional dependency

            stream = TrioStream(tcp, self._read_size)
            return Connection(stream, key, stream, times)
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
                f"Could not connect to {host}:{port}: {describe_os_error(exc)}"
            ) from exc

    def _get_ssl_context(self) -> ssl.SSLContext:
        ctx = self._ssl_context
        if ctx is None:
            ctx = self._ssl_context = client_context(self._verify, self._cert)
        return ctx

    def _refuse_env_proxy(self, scheme: str, host: str) -> None:
        proxies = self._env_proxies
        proxy = proxies.get(scheme) or proxies.get("all")
        if proxy and not urllib.request.proxy_bypass(host):
            raise httpx.ProxyError(_PROXY_MESSAGE.format(proxy=proxy))

    # -- response ---------------------------------------------------------------------

    async def _read_response(
        self,
        conn: Connection,
        method: str,
        keep_alive: bool,
        read_timeout: float | None,
        request: httpx.Request | None,
        sent: float,
        opened: ConnectTimes | None,
    ) -> RawResponse:
        """Read the response head of the request written at *sent* (``perf_counter``) on
        *conn*, a new connection when *opened* says how it opened."""
        receive = conn.stream.receive
        own = conn.own
        clock: Callable[[], float] = own.arrival_time if own is not None else perf_counter
        read_size = self._read_size
        buf = b""
        searched = 0
        first_byte = 0.0
        last = 0.0
        # The read timeout of each wait for the head, on the watchdog (``Connection.check``).
        watchdog = None
        if read_timeout is not None:
            watchdog = conn.watchdog or self._get_watchdog()
            conn.head_timeout = read_timeout
            conn.timed_out = False
            conn.wait_start = sent
            watchdog.add(conn, sent + read_timeout)
        try:
            while True:
                end = buf.find(b"\r\n\r\n", searched)
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise httpx.RemoteProtocolError("Response header section exceeds 64 KiB")
                    searched = max(len(buf) - 3, 0)
                    if first_byte and watchdog is not None:
                        conn.wait_start = perf_counter()
                    try:
                        data = await receive(read_size)
                    except Exception as exc:
                        if conn.timed_out:
                            raise _head_timeout(request) from exc
                        if isinstance(exc, anyio.EndOfStream):
                            if not first_byte:
                                raise httpx.RemoteProtocolError(
                                    "Server disconnected without sending a response."
                                ) from exc
                            raise httpx.RemoteProtocolError(
                                "Server disconnected while sending the response headers."
                            ) from exc
                        if isinstance(
                            exc, anyio.BrokenResourceError | anyio.ClosedResourceError | OSError
                        ):
                            raise httpx.ReadError(
                                f"Error reading the response: {describe(exc)}"
                            ) from exc
                        raise
                    last = clock()
                    if not first_byte:
                        first_byte = last
                    buf += data
                    continue

                if end > MAX_HEAD:
                    raise httpx.RemoteProtocolError("Response header section exceeds 64 KiB")
                head = buf[:end]
                buf = buf[end + 4 :]
                searched = 0
                parsed = parse_response(head, method, keep_alive)
                if is_interim(parsed[1]):
                    continue
                break
        finally:
            if watchdog is not None:
                conn.wait_start = None
                watchdog.discard(conn)
        if conn.timed_out:
            # It ran out as the last bytes came in: the socket is shut down already.
            raise _head_timeout(request)

        arrival = Arrival(last, first_byte)
        arrival.sent = sent
        arrival.opened = opened
        if buf:
            arrival.body = last  # body bytes came with the head
        version, status, reason, headers, length, chunked, keep_alive = parsed
        if length == 0:
            if buf or not keep_alive:
                await anyio.aclose_forcefully(conn.stream)
            else:
                await self._release(conn)
            return RawResponse(status, reason, version, headers, None, arrival)
        body_framing: Framing
        if chunked:
            body_framing = ChunkedFraming()
        elif length is not None:
            body_framing = LengthFraming(length)
        else:
            body_framing = CloseFraming()
        stream = Body(
            conn,
            self._release,
            arrival,
            buf,
            body_framing,
            keep_alive,
            read_timeout,
            self._read_size,
        )
        if watchdog is not None:
            stream.watch(watchdog)
        return RawResponse(status, reason, version, headers, stream, arrival)

    def _get_watchdog(self) -> Watchdog:
        watchdog = self._watchdog
        loop = _running_loop()
        if loop is None:
            import trio

            token = trio.lowlevel.current_trio_token()
            if watchdog is None or watchdog.owner is not token:
                watchdog = self._watchdog = TrioWatchdog(token)
        elif watchdog is None or watchdog.owner is not loop:
            watchdog = self._watchdog = AsyncioWatchdog(loop)
        return watchdog


class RawResponse:
    """A response head as read off the wire, and its body: what ``roundtrip`` returns.

    ``to_httpx`` makes the ``httpx.Response`` that ``handle_async_request`` returns;
    the engine's fast path reads the few fields it needs from here instead.
    """

    __slots__ = ("arrival", "headers", "reason", "status_code", "stream", "version")

    def __init__(
        self,
        status_code: int,
        reason: bytes,
        version: bytes,
        headers: RawHeaders,
        stream: Body | None,
        arrival: Arrival,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.version = version
        self.headers = headers
        self.stream = stream  # None: the body is empty (and the connection released)
        self.arrival = arrival

    def to_httpx(self) -> httpx.Response:
        extensions: dict[str, Any] = {
            "http_version": self.version,
            "reason_phrase": self.reason,
            ARRIVAL_EXTENSION: self.arrival,
        }
        stream = self.stream
        return httpx.Response(
            self.status_code,
            headers=self.headers,
            stream=httpx.ByteStream(b"") if stream is None else stream,
            extensions=extensions,
        )


_PROXY_MESSAGE: Final = (
    "AnyioTransport does not support proxies (proxy: {proxy}). Pass "
    "http_client=httpx.AsyncClient(proxy=...) without this transport instead, or "
    "AnyioTransport(trust_env=False) / NO_PROXY to ignore the proxy environment variables."
)


# -- idle connections ------------------------------------------------------------------


def _dropped(conn: Connection) -> bool:
    """Whether an idle connection can no longer carry a request (urllib3's check).

    An idle HTTP/1.1 connection has nothing to read: a readable one was closed by the
    server, or holds bytes no request asked for. Either way it is not reused. The
    socket is asked even when the loop has seen nothing: a server's close that came
    with (or right after) its last response is not read until the loop's next turn.
    """
    if conn.own is not None and conn.own.dropped():
        return True  # e.g. the asyncio loop already read the EOF or the bytes
    # The descriptor was taken at connect time: a stream of ours closed since says so
    # above, and one of anyio's is closed by the pool alone (never while idle in it).
    fd = conn.fd
    return fd >= 0 and _readable(fd)


def _fileno(stream: anyio.abc.ByteStream) -> int:
    from anyio.abc import SocketAttribute  # not at import: only a connection needs it

    sock = stream.extra(SocketAttribute.raw_socket, None)
    if sock is None:
        return -1
    try:
        return int(sock.fileno())
    except OSError:
        return -1


def _readable(fd: int) -> bool:
    """Whether *fd* has bytes (or an EOF) to read, without waiting."""
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()  # poll, not select: no limit on the descriptor's number
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


# -- sending the request ---------------------------------------------------------------


def _encode_head(request: httpx.Request) -> tuple[bytes, bool, bool]:
    """:func:`._http11.encode_head` of a whole ``httpx.Request`` (the request path calls
    ``encode_head`` itself)."""
    return encode_head(request.method, request.url.raw_path, request.headers.raw)


async def _send(conn: Connection, data: bytes) -> None:
    try:
        await conn.stream.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise httpx.WriteError(f"Error sending the request: {describe(exc)}") from exc


async def _send_bytes(conn: Connection, head: bytes, body: bytes) -> None:
    if len(body) <= _ONE_SEND:
        await _send(conn, head + body)
    else:
        await _send(conn, head)
        await _send(conn, body)


async def _send_stream(
    conn: Connection, head: bytes, stream: httpx.AsyncByteStream | Any, chunked: bool
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


# -- helpers ---------------------------------------------------------------------------


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio (or uvloop) event loop; None under trio (or before asyncio
    was ever imported, when no asyncio loop can be running)."""
    asyncio = sys.modules.get("asyncio")
    # Not get_running_loop(): under trio its RuntimeError would be raised every time.
    return None if asyncio is None else asyncio._get_running_loop()


def _head_timeout(request: httpx.Request | None) -> httpx.ReadTimeout:
    return httpx.ReadTimeout("Timed out waiting for the response headers", request=request)


def _send_now(own: OwnStream, data: bytes) -> bool:
    """``own.send_nowait(data)``, its errors named as ``_send`` names them."""
    try:
        return own.send_nowait(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise httpx.WriteError(f"Error sending the request: {describe(exc)}") from exc


async def _drain(own: OwnStream) -> None:
    try:
        await own.drain()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise httpx.WriteError(f"Error sending the request: {describe(exc)}") from exc


def _until(timeout: float | None) -> float:
    """The cancel-scope deadline of a phase limited by *timeout*."""
    return _INF if timeout is None else anyio.current_time() + timeout
