"""The typed client harnesses embed: ``send`` one request, or ``stream`` timed deltas."""

from __future__ import annotations

import collections
import contextlib
import math
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
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
    build_http_request,
    check_status,
    close_chunks,
    is_event_stream,
)
from ._exceptions import ConfigError, RequestTimeout
from ._models import Delta, RequestFuncInput, RequestFuncOutput
from ._sse import DEFAULT_MAX_EVENT_BYTES
from ._transport import AnyioTransport, body_pusher, body_released
from .backends._base import Backend, api_key_from_env
from .backends._registry import get_backend

__all__ = ["Client", "ResponseStream", "TimedDelta", "default_transport"]

_URL_CACHE = 1024
# What httpx's client would send by default, less Accept-Encoding: a compressed event
# stream would be held back by the compressor and decoded at a cost.
_DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Connection": "keep-alive",
    "User-Agent": f"anyio-llmreq/{__version__}",
}


def default_transport(verify: bool | ssl.SSLContext = True) -> httpx.AsyncBaseTransport:
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

    A plain async iterator (no generator), so leaving the loop early is clean.
    """

    _exchange: Exchange
    _chunks: AsyncIterator[bytes] | None
    _stamp: Callable[[], float]
    _sse: bool = True
    _pending: collections.deque[TimedDelta] = attrs.Factory(collections.deque)

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> TimedDelta:
        pending = self._pending
        while not pending:
            if self._chunks is None:
                raise StopAsyncIteration
            await self._read()
        return pending.popleft()

    async def _read(self) -> None:
        ex = self._exchange
        chunks = self._chunks
        assert chunks is not None
        sink: list[Delta] = []
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            self._chunks = None
            if not self._sse:
                now = self._stamp()
                self._guard(ex.feed_whole_body, now, sink)
                self._pending.extend(TimedDelta(now, delta) for delta in sink)
            return
        except Exception as exc:  # recorded in the output, never raised
            ex.fail(exc)
            self._chunks = None
            return
        now = self._stamp()
        if self._sse:
            self._guard(ex.feed, chunk, now, sink)
            self._pending.extend(TimedDelta(now, delta) for delta in sink)
        else:
            ex.feed_body(chunk)

    def _guard(self, feed: Callable[..., None], *args: object) -> None:
        try:
            feed(*args)
        except Exception as exc:  # recorded in the output, never raised
            self._exchange.fail(exc)
            self._chunks = None

    @property
    def output(self) -> RequestFuncOutput:
        """What the request measured so far (final once iteration has ended)."""
        return self._exchange.output()


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
        timeouts: per-request deadlines.
        verify: TLS verification: True, False or an ``ssl.SSLContext``.
        api_key: sent as a bearer token to backends that take one; by default the
            ``OPENAI_API_KEY`` environment variable, read at each request.
        clock: the clock every timing is read from.
        max_response_bytes: the largest stream event or non-streaming body buffered;
            a larger one fails the request instead of exhausting memory.
    """

    http_client: httpx.AsyncClient | None = None
    transport: httpx.AsyncBaseTransport | None = None
    timeouts: Timeouts = Timeouts()
    verify: bool | ssl.SSLContext = True
    api_key: str | None = attrs.field(default=None, repr=False)
    clock: Callable[[], float] = time.perf_counter
    max_response_bytes: int = DEFAULT_MAX_EVENT_BYTES
    _http: httpx.AsyncClient | None = attrs.field(default=None, init=False, repr=False)
    # The transport of the client we own, called directly (see ``_open``).
    _direct: httpx.AsyncBaseTransport | None = attrs.field(default=None, init=False, repr=False)
    _urls: dict[str, httpx.URL] = attrs.field(factory=dict, init=False, repr=False)

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
                self._direct = self.transport or default_transport(self.verify)
                self._http = httpx.AsyncClient(
                    transport=self._direct,
                    timeout=self.timeouts.to_httpx(),
                    follow_redirects=True,
                )
        return self._http

    @property
    def _timeout_extension(self) -> dict[str, float | None]:
        return self.timeouts.to_httpx().as_dict()

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
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        extensions["timeout"] = self._timeout_extension
        return httpx.Request(
            method, parsed, headers={**_DEFAULT_HEADERS, **headers}, extensions=extensions, **body
        )

    async def _open(self, http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        """Send *request*; return the response with its head read and its body streaming.

        With the client we own, the transport is called directly: httpx's client layer
        (auth, cookies, event hooks) costs as much per request as the transport itself.
        The rare redirect is then handed to that layer, which follows it.
        """
        direct = self._direct
        if direct is None:
            return await http.send(request, stream=True)
        response = await direct.handle_async_request(request)
        if response.has_redirect_location:
            await response.aclose()
            return await http.send(request, stream=True)
        response.request = request
        return response

    def _prepare(
        self, backend: Backend | str, request: RequestFuncInput
    ) -> tuple[Exchange, httpx.Request]:
        resolved = get_backend(backend) if isinstance(backend, str) else backend
        if not isinstance(request, RequestFuncInput):
            raise ConfigError(f"expected a RequestFuncInput, got {type(request).__name__}")
        http = self._ensure_http()
        make = http.build_request if self._direct is None else self._make_request
        http_request, audio = build_http_request(
            make, resolved, request, self.api_key or api_key_from_env()
        )
        exchange = Exchange(resolved, request, self.max_response_bytes)
        exchange.input_audio_duration = audio
        return exchange, http_request

    async def send(self, backend: Backend | str, request: RequestFuncInput) -> RequestFuncOutput:
        """Send *request* with *backend* (an instance or a registry name); never raises
        for a failed request.

        Raises:
            ConfigError: the request can't be built (raised before any I/O).
        """
        ex, http_request = self._prepare(backend, request)
        http = self._ensure_http()
        total = self.timeouts.total
        # No total deadline: no cancel scope, which would only add its cost.
        deadline = anyio.move_on_after(total) if total is not None else contextlib.nullcontext()
        with deadline as scope:
            ex.start = self.clock()
            try:
                await self._pump(http, http_request, ex)
            except Exception as exc:  # becomes the output's error
                ex.fail(exc)
        if scope is not None and scope.cancelled_caught:
            ex.fail(RequestTimeout(f"RequestTimeout: total deadline of {total} s exceeded"))
        return ex.output()

    async def _pump(
        self, http: httpx.AsyncClient, http_request: httpx.Request, ex: Exchange
    ) -> None:
        response = await self._open(http, http_request)
        try:
            ex.status_code = response.status_code
            await check_status(response)
            push = body_pusher(response) if self.clock is time.perf_counter else None
            if push is not None and is_event_stream(response, ex.backend):
                await push(ex.feed)
                return
            stamp = arrival_clock(response, self.clock)
            chunks = body_chunks(response)
            try:
                if is_event_stream(response, ex.backend):
                    feed = ex.feed
                    async for chunk in chunks:
                        feed(chunk, stamp())
                else:
                    async for chunk in chunks:
                        ex.feed_body(chunk)
                    ex.feed_whole_body(stamp())
            finally:
                await close_chunks(chunks)
        finally:
            if body_released(response.stream):
                # Nothing left to close, so no await in here suspends: no shield needed.
                await response.aclose()
            else:
                with anyio.CancelScope(shield=True):
                    await response.aclose()

    @contextlib.asynccontextmanager
    async def stream(
        self, backend: Backend | str, request: RequestFuncInput
    ) -> AsyncIterator[ResponseStream]:
        """Send *request* and yield a ``ResponseStream`` of ``TimedDelta``s.

        ``stream.output`` holds the measured output once iteration ends; errors end the
        iteration and are recorded there, never raised.

        Raises:
            ConfigError: the request can't be built (raised before any I/O).
        """
        ex, http_request = self._prepare(backend, request)
        http = self._ensure_http()
        total = self.timeouts.total
        response: httpx.Response | None = None
        with anyio.move_on_after(math.inf if total is None else total) as scope:
            ex.start = self.clock()
            sse = True
            try:
                response = await self._open(http, http_request)
                ex.status_code = response.status_code
                await check_status(response)
                sse = is_event_stream(response, ex.backend)
            except Exception as exc:  # becomes the output's error
                ex.fail(exc)
                stream = ResponseStream(ex, None, self.clock)
            else:
                chunks = body_chunks(response)
                stream = ResponseStream(ex, chunks, arrival_clock(response, self.clock), sse)
            try:
                yield stream
            finally:
                if stream._chunks is not None:
                    await close_chunks(stream._chunks)
                if response is not None:
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
        if scope.cancelled_caught:
            ex.fail(RequestTimeout(f"RequestTimeout: total deadline of {total} s exceeded"))
