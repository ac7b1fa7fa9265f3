"""The typed client harnesses embed: ``send`` one request, or ``stream`` timed deltas."""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

import anyio
import attrs
import httpx

from .__version__ import __version__
from ._engine import (
    Exchange,
    Timeouts,
    arrival_clock,
    body_chunks,
    body_pusher,
    body_released,
    build_http_request,
    check_status,
    close_chunks,
    event_stream_by_type,
    is_event_stream,
    raw_content_type,
    redirect_request,
    stamp_clock,
    timed_body_pusher,
)
from ._exceptions import ConfigError, RequestTimeout
from ._media import needs_media, prepare_media
from ._models import Delta, RequestFuncInput, RequestFuncOutput
from ._sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_STREAM_BYTES
from ._transport import ARRIVAL_EXTENSION, AnyioTransport, Consume, TimedBody
from ._transport._http11 import encode_head
from ._transport._pool import RawResponse
from .backends._base import Backend, api_key_from_env
from .backends._registry import get_backend

__all__ = ["Client", "ResponseStream", "TimedDelta", "default_transport"]

_URL_CACHE = 1024
_MAX_REDIRECTS = 20  # httpx's default
_DEFAULT_TIMEOUTS = Timeouts()
# A request without a total deadline runs in no cancel scope; this stands in for one
# (a nullcontext holds no state, so one serves every request).
_NO_SCOPE = contextlib.nullcontext()
# How long a read started after the total deadline may wait: long enough to take what
# had already arrived, too short to wait for more.
_LATE_READ_SECONDS = 0.005
# What httpx's client would send by default, less Accept-Encoding: a compressed event
# stream would be held back by the compressor and decoded at a cost.
_DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Connection": "keep-alive",
    "User-Agent": f"anyio-llmreq/{__version__}",
}
_DEFAULT_NAMES = frozenset(name.lower() for name in _DEFAULT_HEADERS)


def default_transport(verify: bool | str | ssl.SSLContext = True) -> httpx.AsyncBaseTransport:
    """The transport a ``Client`` uses unless given one: ours, on anyio sockets.

    httpx's default pool walks every connection on each request start and finish, which
    serialises work at high concurrency; ours keeps idle connections in a free list per
    host and stamps each socket read.
    """
    return AnyioTransport(verify=verify)


@attrs.frozen
class TimedDelta:
    """A delta and the ``perf_counter`` time its bytes arrived."""

    time: float
    delta: Delta


@attrs.define(eq=False)
class ResponseStream:
    """The deltas of one response as they arrive; ``output`` once iteration ends.

    A plain async iterator (no generator), so leaving the loop early is clean. The
    request's total deadline bounds only its own reads, never the caller's code between
    them: bytes that arrived in time are read even when the caller comes back late.
    ``Client.send`` drains this same stream, so both report the same outputs.
    """

    _exchange: Exchange
    # The response to close at the end; on the fast path, our body itself.
    _response: httpx.Response | TimedBody | None
    _chunks: AsyncIterator[bytes] | None
    _stamp: Callable[[], float]
    _sse: bool = True
    # Absolute anyio.current_time() of the total deadline; inf for none.
    _deadline: float = math.inf
    _total: float | None = None
    # The body's push, when the engine reads it that way (``body_pusher``).
    _push: Callable[[Consume], Awaitable[None]] | None = None
    _pending: collections.deque[TimedDelta] = attrs.Factory(collections.deque)
    # The body's iterator, kept to be closed after the iteration ended for any reason.
    _source: AsyncIterator[bytes] | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._source = self._chunks

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> TimedDelta:
        pending = self._pending
        while not pending:
            if self._chunks is None:
                raise StopAsyncIteration
            await self._read()
        return pending.popleft()

    @property
    def output(self) -> RequestFuncOutput:
        """What the request measured so far (final once iteration has ended)."""
        return self._exchange.output()

    async def _read(self) -> None:
        ex = self._exchange
        chunks = self._chunks
        assert chunks is not None
        sink: list[Delta] = []
        try:
            if self._deadline == math.inf:
                chunk = await chunks.__anext__()
            else:
                chunk = await self._read_by_deadline(chunks)
            now = self._stamp()
            if self._sse:
                ex.feed(chunk, now, sink)
            else:
                ex.feed_body(chunk)
        except StopAsyncIteration:
            self._chunks = None
            if not self._sse:
                now = self._stamp()
                self._record(ex.feed_whole_body, now, sink)
        except Exception as exc:  # recorded in the output, never raised
            ex.fail(exc)
            self._chunks = None
        if sink:
            self._pending.extend(TimedDelta(now, delta) for delta in sink)

    async def _read_by_deadline(self, chunks: AsyncIterator[bytes]) -> bytes:
        now = anyio.current_time()
        deadline = self._deadline
        if now >= deadline:
            # The caller came back after the deadline: what had arrived by then is
            # still the request's; only waiting for more is not.
            deadline = now + _LATE_READ_SECONDS
        with anyio.CancelScope(deadline=deadline):
            return await chunks.__anext__()
        raise _deadline_error(self._total)

    def _record(self, feed: Callable[..., None], *args: object) -> None:
        try:
            feed(*args)
        except Exception as exc:  # recorded in the output, never raised
            self._exchange.fail(exc)

    async def _drain(self) -> None:
        """Read the rest of the body without building deltas (``Client.send``'s path)."""
        chunks = self._chunks
        if chunks is None:
            return
        ex = self._exchange
        # No total deadline: no cancel scope, which would only add its cost.
        deadline = self._deadline
        scope = anyio.CancelScope(deadline=deadline) if deadline != math.inf else None
        with scope or _NO_SCOPE:
            try:
                if self._push is not None:
                    await self._push(ex.feed)
                elif self._sse:
                    feed = ex.feed
                    stamp = self._stamp
                    async for chunk in chunks:
                        feed(chunk, stamp())
                else:
                    async for chunk in chunks:
                        ex.feed_body(chunk)
                    ex.feed_whole_body(self._stamp())
            except Exception as exc:  # becomes the output's error
                ex.fail(exc)
        if scope is not None and scope.cancelled_caught:
            ex.fail(_deadline_error(self._total))

    async def _aclose(self) -> None:
        self._chunks = None
        source, self._source = self._source, None
        if source is not None:
            await close_chunks(source)
        response, self._response = self._response, None
        if response is None:
            return
        released = response.released if isinstance(response, TimedBody) else body_released(response)
        if released:
            # Nothing left to close, so no await in here suspends: no shield needed.
            await response.aclose()
        else:
            with anyio.CancelScope(shield=True):
                await response.aclose()


def _deadline_error(total: float | None) -> RequestTimeout:
    return RequestTimeout(f"RequestTimeout: total deadline of {total} s exceeded")


class _FastRequest:
    """A JSON request for our own transport, before any ``httpx.Request`` exists.

    It is what ``Client._make_request`` would build (the same arguments): the head is
    encoded from these fields in httpx's header order, so the bytes on the wire are the
    same, and ``to_httpx`` builds that very ``httpx.Request`` when one is needed after
    all (a redirect, an error response). A plain class: attrs would compile its methods
    at import.
    """

    __slots__ = (
        "chunked",
        "content",
        "extensions",
        "head",
        "headers",
        "keep_alive",
        "method",
        "url",
    )

    method: str
    url: httpx.URL
    headers: dict[str, str]  # merged with the client's defaults
    content: bytes
    extensions: dict[str, Any]

    head: bytes  # the encoded request head (``encode_head``'s)
    chunked: bool
    keep_alive: bool

    def __init__(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes,
        extensions: dict[str, Any],
        head: bytes,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.content = content
        self.extensions = extensions
        self.head = head
        self.chunked = chunked
        self.keep_alive = keep_alive

    def to_httpx(self) -> httpx.Request:
        return httpx.Request(
            self.method,
            self.url,
            headers=self.headers,
            content=self.content,
            extensions=self.extensions,
        )


# (method, url, headers) -> the head without Content-Length (and its final CRLF CRLF),
# chunked, keep-alive, whether Content-Length was given: one request's headers are
# another's, so the head is encoded once, not per request.
_HeadKey = tuple[str, str, tuple[tuple[str, str], ...]]
_HeadParts = tuple[bytes, bool, bool, bool]


def _encode_fast_head(method: str, url: httpx.URL, headers: dict[str, str]) -> _HeadParts:
    """The parts of ``encode_head`` of the ``httpx.Request`` built from these fields:
    httpx puts Host first (unless given) and appends Content-Length (unless given);
    names and values are ASCII (httpx raises ``UnicodeEncodeError`` for others, and so
    does this)."""
    raw: list[tuple[bytes, bytes]] = []
    has_host = has_length = False
    for name, value in headers.items():
        lname = name.lower()
        if lname == "host":
            has_host = True
        elif lname == "content-length":
            has_length = True
        raw.append((name.encode("ascii"), value.encode("ascii")))
    if not has_host and url.host:
        raw.insert(0, (b"Host", url.netloc))
    head, chunked, keep_alive = encode_head(method, url.raw_path, raw)
    # Content-Length (digits only) comes last, after everything that sets the flags.
    return head[:-4], chunked, keep_alive, has_length


@attrs.define(eq=False)
class Client:
    """Sends requests to LLM servers and measures them.

    Use as ``async with Client() as client:``. One pooled HTTP client is shared by every
    request, so connections are reused. Failed requests are returned as outputs with
    ``success=False`` and a one-line ``error``; only bad configuration raises
    (``ConfigError``, before any I/O).

    Args:
        http_client: an ``httpx.AsyncClient`` to use (HTTP/2, proxies, ...); the caller
            keeps ownership and closes it.
        transport: an httpx transport for the client this object creates.
        timeouts: per-request deadlines; ``RequestFuncInput.timeout`` overrides
            ``total`` for one request. With *http_client*, ``connect``/``read``/
            ``write``/``pool`` are that client's own unless set here.
        verify: TLS verification: True (the trust store httpx uses), False, a CA
            bundle path or an ``ssl.SSLContext``.
        api_key: sent as a bearer token to backends that take one; ``""`` sends
            none. By default (``None``) the ``OPENAI_API_KEY`` environment variable,
            read at each request.
        clock: the clock every timing is read from.
        max_response_bytes: the largest stream event or non-streaming body buffered;
            a larger one fails the request instead of exhausting memory.
        max_stream_bytes: the most bytes one response stream may carry, which bounds
            the text and timings it accumulates; ``None`` for no limit.
    """

    http_client: httpx.AsyncClient | None = None
    transport: httpx.AsyncBaseTransport | None = None
    timeouts: Timeouts = Timeouts()
    verify: bool | str | ssl.SSLContext = True
    api_key: str | None = attrs.field(default=None, repr=False)
    clock: Callable[[], float] = time.perf_counter
    max_response_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_stream_bytes: int | None = DEFAULT_MAX_STREAM_BYTES
    _http: httpx.AsyncClient | None = attrs.field(default=None, init=False, repr=False)
    # The transport of the client we own, called directly (see ``_open``).
    _direct: httpx.AsyncBaseTransport | None = attrs.field(default=None, init=False, repr=False)
    _urls: dict[str, httpx.URL] = attrs.field(factory=dict, init=False, repr=False)
    _heads: dict[_HeadKey, _HeadParts] = attrs.field(factory=dict, init=False, repr=False)
    # ``_direct`` when it is our transport, unchanged: JSON requests then skip building
    # httpx's Request and Response (``_FastRequest``, ``AnyioTransport.roundtrip``).
    _fast: AnyioTransport | None = attrs.field(default=None, init=False, repr=False)
    # (timeouts, their httpx extension): built once, not per request.
    _timeout_ext: tuple[Timeouts, dict[str, float | None]] | None = attrs.field(
        default=None, init=False, repr=False
    )

    async def __aenter__(self) -> Client:
        self._ensure_http()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections this client opened."""
        http, self._http = self._http, None
        if http is not None and http is not self.http_client:
            with anyio.CancelScope(shield=True):
                await http.aclose()

    def _ensure_http(self) -> httpx.AsyncClient:
        if self._http is None:
            if self.http_client is not None:
                self._http = self.http_client
            elif self.transport is None and urllib.request.getproxies():
                # Proxies in the environment are honoured, as vLLM's aiohttp session does:
                # httpx's own transport speaks to them (ours does not), NO_PROXY included.
                self._http = httpx.AsyncClient(
                    verify=self.verify,
                    timeout=self.timeouts.to_httpx(),
                    follow_redirects=True,
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
                )
            else:
                self._direct = direct = self.transport or default_transport(self.verify)
                if (
                    isinstance(direct, AnyioTransport)
                    and type(direct).handle_async_request is AnyioTransport.handle_async_request
                ):
                    self._fast = direct
                self._http = httpx.AsyncClient(
                    transport=self._direct,
                    timeout=self.timeouts.to_httpx(),
                    follow_redirects=True,
                )
        return self._http

    @property
    def _timeout_extension(self) -> dict[str, float | None]:
        cached = self._timeout_ext
        timeouts = self.timeouts
        if cached is None or cached[0] is not timeouts:
            cached = self._timeout_ext = (timeouts, timeouts.to_httpx().as_dict())
        return cached[1]

    def _make_request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        extensions: dict[str, Any],
        **body: Any,
    ) -> httpx.Request:
        """``build_request`` for the client we own, without its per-call merging work.

        Parsing the URL, merging cookies and client defaults cost more than the rest of
        a short request; URLs are parsed once, and the headers are ours alone.
        """
        parsed, merged = self._url_and_headers(url, headers, extensions)
        return httpx.Request(method, parsed, headers=merged, extensions=extensions, **body)

    def _make_fast(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        extensions: dict[str, Any],
        **body: Any,
    ) -> httpx.Request | _FastRequest:
        """``_make_request``, as a ``_FastRequest`` for a JSON body (bytes in hand)."""
        content = body.get("content")
        if len(body) != 1 or type(content) is not bytes or not content:
            return self._make_request(method, url, headers=headers, extensions=extensions, **body)
        parsed, merged = self._url_and_headers(url, headers, extensions)
        fields = tuple(merged.items())
        tail = b""
        if fields and fields[-1][0] == "x-request-id":
            # Each request's own (put last by build_http_request, its value checked by
            # merge_headers): the head is cached without it and the line appended, or no
            # two requests would share a cached head.
            tail = b"\r\nx-request-id: " + fields[-1][1].encode("ascii")
            fields = fields[:-1]
        key = (method, url, fields)
        parts = self._heads.get(key)
        if parts is None:
            try:
                parts = _encode_fast_head(method, parsed, dict(fields))
            except httpx.LocalProtocolError:
                # httpx's path raises it when sending, as the request's error.
                return httpx.Request(method, parsed, headers=merged, extensions=extensions, **body)
            if len(self._heads) >= _URL_CACHE:
                self._heads.clear()
            self._heads[key] = parts
        prefix, chunked, keep_alive, has_length = parts
        prefix += tail
        head = (
            prefix + b"\r\n\r\n"
            if has_length
            else b"%s\r\nContent-Length: %d\r\n\r\n" % (prefix, len(content))
        )
        return _FastRequest(method, parsed, merged, content, extensions, head, chunked, keep_alive)

    def _url_and_headers(
        self, url: str, headers: dict[str, str], extensions: dict[str, Any]
    ) -> tuple[httpx.URL, dict[str, str]]:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        extensions["timeout"] = self._timeout_extension
        # The caller's headers win over the defaults, whatever their case.
        if _DEFAULT_NAMES.isdisjoint(map(str.lower, headers)):
            merged = {**_DEFAULT_HEADERS, **headers}
        else:
            lowered = {name.lower() for name in headers}
            merged = {k: v for k, v in _DEFAULT_HEADERS.items() if k.lower() not in lowered}
            merged.update(headers)
        return parsed, merged

    async def _open(
        self, http: httpx.AsyncClient, request: httpx.Request | _FastRequest
    ) -> httpx.Response | tuple[RawResponse, str]:
        """Send *request*; return the response with its head read and its body streaming.

        With the client we own, the transport is called directly: httpx's client layer
        (auth, cookies, event hooks) costs as much per request as the transport itself.
        A redirect is followed from the response in hand, as httpx's client would.

        A ``_FastRequest`` goes to our transport as bytes; a plain answer (2xx, a body,
        no content coding, one ASCII Content-Type) comes back as (body, content type)
        without httpx's Response. Anything else becomes the httpx Request and Response
        the other path would have had, and goes on from there.
        """
        direct = self._direct
        if isinstance(request, _FastRequest):
            fast = self._fast
            assert fast is not None
            raw = await fast.roundtrip(
                fast.origin(request.url),
                request.method,
                request.head,
                request.content,
                request.chunked,
                request.keep_alive,
                request.extensions["timeout"],
            )
            if 200 <= raw.status_code < 300 and raw.stream is not None:
                ctype = raw_content_type(raw.headers)
                if ctype is not None:
                    return raw, ctype
            request = request.to_httpx()
            response = raw.to_httpx()
            response.request = request
        elif direct is None:
            return await http.send(request, stream=True)
        else:
            response = await direct.handle_async_request(request)
            response.request = request
        assert direct is not None
        for _ in range(_MAX_REDIRECTS - 1):
            if not response.has_redirect_location:
                return response
            await response.aclose()
            request = redirect_request(request, response)
            response = await direct.handle_async_request(request)
            response.request = request
        if not response.has_redirect_location:
            return response
        await response.aclose()
        request = redirect_request(request, response)
        raise httpx.TooManyRedirects(f"Exceeded {_MAX_REDIRECTS} redirects.", request=request)

    def _prepare(
        self, backend: Backend | str, request: RequestFuncInput
    ) -> tuple[Exchange, httpx.Request | _FastRequest, float | None]:
        resolved = get_backend(backend) if isinstance(backend, str) else backend
        if not isinstance(request, RequestFuncInput):
            raise ConfigError(f"expected a RequestFuncInput, got {type(request).__name__}")
        total = self.timeouts.total if request.timeout is None else request.timeout
        if total is not None and (
            isinstance(total, bool) or not isinstance(total, (int, float)) or not total > 0
        ):
            raise ConfigError(f"timeout must be a positive number of seconds, got {total!r}")
        http = self._ensure_http()
        make: Callable[..., httpx.Request | _FastRequest]
        if self._fast is not None:
            make = self._make_fast
        elif self._direct is not None:
            make = self._make_request
        elif self.timeouts != _DEFAULT_TIMEOUTS:
            # Given with a client of the caller's: applied to each request.
            make = functools.partial(http.build_request, timeout=self.timeouts.to_httpx())
        else:
            make = http.build_request
        http_request, audio = build_http_request(
            make, resolved, request, api_key_from_env() if self.api_key is None else self.api_key
        )
        exchange = Exchange(resolved, request, self.max_response_bytes, self.max_stream_bytes)
        exchange.input_audio_duration = audio
        return exchange, http_request, total

    async def _begin(self, backend: Backend | str, request: RequestFuncInput) -> ResponseStream:
        """Send *request* and read the response head: the stream ``send`` and ``stream``
        read the body from. A request that failed already has no body to read."""
        if needs_media(request):
            # Reading and encoding audio is blocking I/O: off the event loop.
            request = await anyio.to_thread.run_sync(prepare_media, request)
        ex, http_request, total = self._prepare(backend, request)
        http = self._ensure_http()
        deadline = math.inf if total is None else anyio.current_time() + total
        response: httpx.Response | TimedBody | None = None
        sse = False
        # No total deadline: no cancel scope, which would only add its cost.
        scope = anyio.CancelScope(deadline=deadline) if total is not None else None
        with scope or _NO_SCOPE:
            ex.start = self.clock()
            try:
                opened = await self._open(http, http_request)
                if type(opened) is tuple:
                    # The fast path's plain answer: our body, its stamps, no httpx.
                    raw, ctype = opened
                    ex.status_code = raw.status_code
                    if raw.arrival.clock is self.clock:
                        ex.arrival = raw.arrival
                    response = body = raw.stream
                    assert body is not None
                    sse = event_stream_by_type(ctype, ex.backend)
                    return self._fast_stream(ex, body, sse, deadline, total)
                assert isinstance(opened, httpx.Response)
                response = opened
                ex.status_code = response.status_code
                arrival = response.extensions.get(ARRIVAL_EXTENSION)
                if arrival is not None and arrival.clock is self.clock:
                    ex.arrival = arrival
                await check_status(response)
                sse = is_event_stream(response, ex.backend)
            except Exception as exc:  # becomes the output's error
                ex.fail(exc)
            else:
                push = body_pusher(response, self.clock) if sse else None
                stamp = arrival_clock(response, self.clock)
                return ResponseStream(
                    ex, response, body_chunks(response), stamp, sse, deadline, total, push
                )
        if scope is not None and scope.cancelled_caught:
            ex.fail(_deadline_error(total))
        return ResponseStream(ex, response, None, self.clock, sse, deadline, total)

    def _fast_stream(
        self, ex: Exchange, body: TimedBody, sse: bool, deadline: float, total: float | None
    ) -> ResponseStream:
        """The ``ResponseStream`` of a fast-path answer: what ``body_pusher``,
        ``arrival_clock`` and ``body_chunks`` give for the same body in an httpx
        Response (no content coding here, by the fast path's rule)."""
        clock = self.clock
        push = timed_body_pusher(body, clock) if sse else None
        stamp = stamp_clock(body.arrival, clock)
        return ResponseStream(ex, body, body, stamp, sse, deadline, total, push)

    async def send(self, backend: Backend | str, request: RequestFuncInput) -> RequestFuncOutput:
        """Send *request* with *backend* (an instance or a registry name); never raises
        for a failed request.

        Raises:
            ConfigError: the request can't be built (raised before any I/O).
        """
        stream = await self._begin(backend, request)
        try:
            await stream._drain()
        finally:
            await stream._aclose()
        return stream.output

    @contextlib.asynccontextmanager
    async def stream(
        self, backend: Backend | str, request: RequestFuncInput
    ) -> AsyncIterator[ResponseStream]:
        """Send *request* and yield a ``ResponseStream`` of ``TimedDelta``s.

        ``stream.output`` holds the measured output once iteration ends; errors end the
        iteration and are recorded there, never raised. The total deadline bounds the
        request's own waits, not the code inside the ``async with`` block.

        Raises:
            ConfigError: the request can't be built (raised before any I/O).
        """
        response_stream = await self._begin(backend, request)
        try:
            yield response_stream
        finally:
            await response_stream._aclose()
