"""The one engine: sends a backend's request, decodes the stream, stamps every timing.

Every backend is measured the same way:

* ``start_time`` is read just before the request is handed to httpx, so TTFT includes
  connection setup, as in vLLM;
* each network read is stamped once, when its bytes came off the socket (the transport
  reports it) or, with another transport, as soon as httpx hands them over; all events
  completed by that read share the stamp, before any JSON is parsed;
* TTFT is the stamp of the first event carrying output (text, reasoning, a tool call,
  or a ``ResultDelta``: a whole non-text answer such as an embedding); every later
  output-bearing event appends one ITL entry; latency ends at the last output-bearing
  event, so ``latency - ttft == sum(itl)`` holds exactly.
"""

from __future__ import annotations

import inspect
import math
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, KeysView
from typing import Any, TypeVar

import anyio
import attrs
import httpx

from ._exceptions import (
    ConfigError,
    EmptyResponseError,
    HTTPStatusError,
    RequestError,
    RequestTimeout,
    ServerReportedError,
    StreamProtocolError,
    TransportError,
)
from ._json import dumps
from ._models import (
    Accumulator,
    Delta,
    ErrorDelta,
    ReasoningDelta,
    RequestFuncInput,
    RequestFuncOutput,
    SSEEvent,
    TextDelta,
)
from ._sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder
from ._transport import ARRIVAL_EXTENSION, Arrival, Consume, TimedBody
from ._transport._http11 import RawHeaders
from .backends._base import Backend, TokenTextBackend

__all__ = [
    "Exchange",
    "Timeouts",
    "body_chunks",
    "body_pusher",
    "body_released",
    "close_chunks",
    "error_text",
]


_NO_OUTPUT = "Never received a valid chunk to calculate TTFT (the response carried no output)."
_ERROR_BODY_LIMIT = 2048
# How long the rest of a failed body is read to unwind httpx's generators.
_DRAIN_SECONDS = 0.5
_DRAIN_BYTES = 1024 * 1024


@attrs.frozen
class Timeouts:
    """Per-request deadlines in seconds; ``None`` disables one.

    ``read`` is the longest silence allowed between two reads of a response, so a stalled
    stream fails instead of hanging; ``total`` bounds the whole request.
    """

    connect: float | None = 30.0
    read: float | None = 300.0
    write: float | None = 60.0
    pool: float | None = 60.0
    total: float | None = None

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


def error_text(exc: BaseException) -> str:
    """A one-line description of *exc* that names its cause."""
    if isinstance(exc, RequestError):
        text = str(exc)
    else:
        detail = str(exc) or repr(exc)
        text = f"{type(exc).__name__}: {detail}"
    return " ".join(text.split())


# httpx's timeouts often carry no message (httpcore over trio, for one).
_TIMEOUT_DETAILS = {
    "ConnectTimeout": "no connection within the connect timeout",
    "ReadTimeout": "no data from the server within the read timeout",
    "WriteTimeout": "could not send the request within the write timeout",
    "PoolTimeout": "no free connection within the pool timeout",
}


def _root_cause(exc: BaseException) -> BaseException | None:
    """The innermost cause that has a message (the first of a group), if any.

    The implicit context is followed too: httpcore re-raises its errors with ``from None``.
    """
    found = None
    cause = exc.__cause__ or exc.__context__
    for _ in range(16):  # a bound instead of cycle detection; real chains are short
        if cause is None:
            break
        group = getattr(cause, "exceptions", None)
        if group:
            cause = group[0]
            continue
        if str(cause) and isinstance(cause, Exception):  # not a Cancelled: no news there
            found = cause
        cause = cause.__cause__ or cause.__context__
    return found


def _translate(exc: Exception) -> RequestError:
    """Map an exception raised while a request ran onto our tree."""
    if isinstance(exc, RequestError):
        return exc
    name = type(exc).__name__
    detail = " ".join(str(exc).split())
    root = _root_cause(exc)
    if root is not None and str(root) not in str(exc):
        # Wrappers often say only "All connection attempts failed" or nothing at all
        # (httpx over trio, for a TLS failure); the root cause says why.
        why = " ".join(f"{type(root).__name__}: {root}".split())
        detail = f"{detail}: {why}" if detail else why
    detail = detail or _TIMEOUT_DETAILS.get(name, "no details")
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"{name}: {detail}")
    if isinstance(exc, (httpx.TransportError, OSError, anyio.EndOfStream)):
        return TransportError(f"{name}: {detail}")
    if isinstance(exc, (ssl.SSLError, anyio.BrokenResourceError)):
        return TransportError(f"{name}: {detail}")
    if isinstance(exc, (httpx.DecodingError, UnicodeDecodeError)):
        return StreamProtocolError(f"{name}: {detail}")
    return RequestError(f"unexpected {name}: {detail}")


class Exchange:
    """The state of one request/response: decoding, timings, accumulated output.

    ``feed`` is the per-read hot path; it is synchronous and allocates little. A plain
    class (one per request, never compared or copied): attrs would compile its methods
    at import for nothing.
    """

    __slots__ = (
        "_body",
        "_body_bytes",
        "_content_at",
        "_reasoning_at",
        "_stream_left",
        "_token_text",
        "acc",
        "arrival",
        "backend",
        "decoder",
        "error",
        "first",
        "input_audio_duration",
        "itl",
        "last",
        "max_bytes",
        "max_stream_bytes",
        "request",
        "start",
        "status_code",
        "streamed",
    )

    backend: Backend
    request: RequestFuncInput
    max_bytes: int
    #: The most bytes the response stream may carry; ``None`` for no limit.
    max_stream_bytes: int | None
    start: float
    decoder: SSEDecoder
    acc: Accumulator
    itl: list[float]
    first: float | None
    last: float
    status_code: int | None
    streamed: bool
    input_audio_duration: float
    error: str
    _body: list[bytes]
    _body_bytes: int
    # Bytes the stream may still carry (the bound on what a request accumulates).
    _stream_left: float
    # The backend's optional fast path for plain token events (``TokenTextBackend``).
    _token_text: Callable[[str], str | None] | None
    # When the first content and the first reasoning event arrived (None: not yet).
    # Content events on the fast path are not looked at one by one: the fast path is
    # off from the first other output (reasoning, a tool call) until content starts, so
    # unmarked content is content from the first output event on.
    _content_at: float | None
    _reasoning_at: float | None
    #: Our transport's stamps of the response (``None`` with another transport).
    arrival: Arrival | None

    def __init__(
        self,
        backend: Backend,
        request: RequestFuncInput,
        max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_stream_bytes: int | None = None,
    ) -> None:
        self.backend = backend
        self.request = request
        self.max_bytes = max_bytes
        self.max_stream_bytes = max_stream_bytes
        self.start = 0.0
        self.decoder = SSEDecoder(max_bytes)
        self.acc = Accumulator()
        self.itl = []
        self.first = None
        self.last = 0.0
        self.status_code = None
        self.streamed = True
        self.input_audio_duration = 0.0
        self.error = ""
        self._body = []
        self._body_bytes = 0
        self._stream_left = math.inf if max_stream_bytes is None else max_stream_bytes
        self._token_text = token_text_of(backend)
        self._content_at = self._reasoning_at = None
        self.arrival = None

    def __repr__(self) -> str:
        return f"<Exchange {self.backend!r} status={self.status_code} error={self.error!r}>"

    def feed(self, chunk: bytes, now: float, sink: list[Delta] | None = None) -> None:
        """Decode one read's bytes stamped *now*; append its deltas to *sink* if given."""
        self._stream_left -= len(chunk)
        if self._stream_left < 0:
            raise StreamProtocolError(
                f"response stream longer than {self.max_stream_bytes} bytes; "
                "refusing to accumulate more"
            )
        events, only_data = self.decoder.feed_data(chunk)
        if not events:
            return
        token_text = self._token_text
        texts: list[str | None] | None = None
        if token_text is not None and only_data:
            # A read of data events only: the backend's fast path on all of them.
            texts = list(map(token_text, events))  # type: ignore[arg-type]
            if None not in texts:
                self.acc.text_parts.extend(texts)  # type: ignore[arg-type]
                if sink is not None:
                    sink.extend(map(TextDelta, texts))  # type: ignore[arg-type]
                self._stamp(now, len(texts))
                return
        parse = self.backend.parse_event
        acc = self.acc
        text_append = acc.text_parts.append
        outputs = 0  # output-bearing events in this read: they all share its stamp
        try:
            for index, item in enumerate(events):
                if isinstance(item, str):
                    # A plain data event: the backend's fast path, when it has one.
                    if token_text is not None:
                        text = token_text(item) if texts is None else texts[index]
                        if text is not None:
                            text_append(text)
                            if self._content_at is None:
                                self._mark_content(now)
                            outputs += 1
                            if sink is not None:
                                sink.append(TextDelta(text))
                            continue
                    event = SSEEvent(item)
                else:
                    event = item
                output = False
                for delta in parse(event):
                    # Plain text is the overwhelming case: fold it without a call.
                    if type(delta) is TextDelta:
                        text_append(delta.text)
                        output = True
                        if self._content_at is None:
                            self._mark_content(now)
                    elif acc.add(delta):
                        output = True
                        # Only the first reasoning, or any output before content while
                        # the fast path is on, has anything to mark.
                        if (self._reasoning_at is None and type(delta) is ReasoningDelta) or (
                            self._content_at is None and self._token_text is not None
                        ):
                            self._mark_other(delta, now)
                    elif type(delta) is ErrorDelta:
                        raise ServerReportedError(delta.message)
                    if sink is not None:
                        sink.append(delta)
                if output:
                    outputs += 1
        finally:
            if outputs:
                self._stamp(now, outputs)

    def _first_output(self, now: float) -> float:
        """When the first output event arrived (*now*: it is in the read being fed)."""
        return now if self.first is None else self.first

    def _mark_content(self, now: float) -> None:
        """Content (just appended) arrived at *now*: the first, unless the fast path
        took some earlier (then it started with the first output event)."""
        self._content_at = self._first_output(now) if len(self.acc.text_parts) > 1 else now
        self._token_text = token_text_of(self.backend)

    def _mark_other(self, delta: Delta, now: float) -> None:
        """An output event that is not content arrived at *now*."""
        if type(delta) is ReasoningDelta and self._reasoning_at is None:
            self._reasoning_at = now
        if self._content_at is None:
            if self.acc.text_parts:
                self._content_at = self._first_output(now)  # the fast path's, from the start
            else:
                self._token_text = None  # each event looked at until content starts

    def http_phases(self) -> dict[str, Any] | None:
        """When the request's HTTP steps happened, in seconds after ``start`` (``None``:
        not known), from our transport's stamps; ``None`` with another transport.

        ``dns``, ``connect`` and ``tls`` are how long the request's new connection took
        to open (all ``None`` on a reused one); ``request_sent`` is when the request was
        written, ``first_byte`` / ``headers`` when the response head began / was
        complete, ``first_body_byte`` when the body began.
        """
        arrival = self.arrival
        if arrival is None:
            return None
        start = self.start
        opened = arrival.opened
        return {
            "connection_reused": opened is None,
            "dns": None if opened is None else opened.dns,
            "connect": None if opened is None else opened.connect,
            "tls": None if opened is None else opened.tls,
            "request_sent": arrival.sent - start if arrival.sent else None,
            "first_byte": arrival.first_byte - start if arrival.first_byte else None,
            "headers": arrival.head - start if arrival.head else None,
            "first_body_byte": arrival.body - start if arrival.body else None,
        }

    def _stamp(self, now: float, events: int = 1) -> None:
        """Record *events* output-bearing events that arrived together at *now*."""
        itl = self.itl
        if self.first is None:
            self.first = now
        else:
            itl.append(now - self.last)
        if events > 1:
            # The later ones arrived in the same read: no time passed between them.
            itl.extend([0.0] * (events - 1))
        self.last = now

    def feed_body(self, chunk: bytes) -> None:
        """Buffer one read of a non-streaming body, within the size limit."""
        self._body_bytes += len(chunk)
        if self._body_bytes > self.max_bytes:
            self._body.clear()
            raise StreamProtocolError(
                f"response body larger than {self.max_bytes} bytes; refusing to buffer more"
            )
        self._body.append(chunk)

    def feed_whole_body(self, now: float, sink: list[Delta] | None = None) -> None:
        """Parse the buffered non-streaming body as one event, stamped *now*."""
        self.streamed = False
        data = b"".join(self._body).decode("utf-8", "replace")
        self._body.clear()
        output = False
        for delta in self.backend.parse_event(SSEEvent(data)):
            if self.acc.add(delta):
                output = True
            elif type(delta) is ErrorDelta:
                raise ServerReportedError(delta.message)
            if sink is not None:
                sink.append(delta)
        if output:
            self._stamp(now)
            # One event: whatever it holds arrived at once.
            if self.acc.text_parts:
                self._content_at = now
            if self.acc.reasoning_parts:
                self._reasoning_at = now

    def fail(self, exc: Exception) -> None:
        self.error = error_text(_translate(exc))

    def output(self) -> RequestFuncOutput:
        """The final ``RequestFuncOutput``, successful or not, with what was measured."""
        start = self.start
        first = self.first
        ttft = latency = tpot = 0.0
        ttft_content = ttft_reasoning = None
        if first is not None:
            ttft = first - start
            latency = self.last - start
            content = self._content_at
            if content is None and self.acc.text_parts:
                content = first  # the fast path's, from the first event on (see feed)
            if content is not None:
                ttft_content = content - start
            if self._reasoning_at is not None:
                ttft_reasoning = self._reasoning_at - start
        completion = self.backend.finalize(self.acc)
        output_tokens = completion.output_tokens
        source = completion.output_tokens_source
        if output_tokens is None:
            output_tokens = 0
            source = ""
        elif output_tokens > 1:
            tpot = (latency - ttft) / (output_tokens - 1)
        prompt_len = completion.prompt_len
        error = self.error
        if not error and first is None:
            error = error_text(EmptyResponseError(_NO_OUTPUT))
        # One constructor call: setting the fields one by one costs twice as much.
        return RequestFuncOutput(
            generated_text=completion.generated_text,
            success=not error,
            latency=latency,
            output_tokens=output_tokens,
            ttft=ttft,
            itl=self.itl,
            tpot=tpot,
            prompt_len=self.request.prompt_len if prompt_len is None else prompt_len,
            error=error,
            start_time=start,
            input_audio_duration=self.input_audio_duration,
            reasoning_text=completion.reasoning_text,
            output_tokens_source=source,
            streamed=self.streamed,
            status_code=self.status_code,
            prompt_tokens=completion.prompt_tokens,
            reasoning_tokens=completion.reasoning_tokens,
            ttft_reasoning=ttft_reasoning,
            ttft_content=ttft_content,
            http_phases=self.http_phases(),
        )


_TOKEN_TEXT: dict[type, bool] = {}


def token_text_of(backend: Backend) -> Callable[[str], str | None] | None:
    """*backend*'s ``token_text`` when it is a ``TokenTextBackend``, else ``None``.

    The protocol check is made once per backend class: ``isinstance`` against a runtime
    protocol costs more than the rest of a short request.
    """
    cls = type(backend)
    has = _TOKEN_TEXT.get(cls)
    if has is None:
        has = _TOKEN_TEXT[cls] = isinstance(backend, TokenTextBackend)
    return backend.token_text if has else None  # type: ignore[attr-defined]


async def check_status(response: httpx.Response) -> None:
    """Raise ``HTTPStatusError`` with the status and the start of the body for non-2xx."""
    if 200 <= response.status_code < 300:
        return
    excerpt = b""
    # Not ``aiter_raw()`` directly: leaving httpx's generators early makes trio warn.
    chunks = body_chunks(response)
    try:
        async for chunk in chunks:
            excerpt += chunk
            if len(excerpt) >= _ERROR_BODY_LIMIT:
                break
    except Exception:
        pass
    finally:
        await close_chunks(chunks)
    body = " ".join(excerpt[:200].decode("utf-8", "replace").split())
    reason = response.reason_phrase
    message = f"HTTP {response.status_code} {reason}".rstrip()
    if body:
        message += f": {body}"
    raise HTTPStatusError(message, status_code=response.status_code)


def is_event_stream(response: httpx.Response, backend: Backend) -> bool:
    """Decide how to read the body: as an event stream, or as one JSON document.

    A JSON body answers a streaming request from servers that ignore ``stream=true``;
    it is read whole. Any other content type is an error, not a guess.
    """
    return event_stream_by_type(response.headers.get("content-type", ""), backend)


def event_stream_by_type(ctype: str, backend: Backend) -> bool:
    """``is_event_stream`` of a response whose Content-Type is *ctype* ("": none)."""
    ctype = ctype.lower()
    if not ctype:
        return backend.framing == "sse"
    if "text/event-stream" in ctype:
        return True
    if "json" in ctype:
        return False
    raise StreamProtocolError(
        f"unexpected Content-Type {ctype!r}; expected text/event-stream or JSON"
    )


_R = TypeVar("_R")


def build_http_request(
    make: Callable[..., _R],
    backend: Backend,
    request: RequestFuncInput,
    api_key: str | None,
) -> tuple[_R, float]:
    """Build the httpx request for *request*; return it with the input audio duration.

    *make* has ``httpx.AsyncClient.build_request``'s signature.
    """
    spec = backend.build_payload(request)
    headers, lowered = merge_headers_lowered(spec.headers)
    if spec.auth:
        add_bearer(headers, api_key, lowered)
    # The total deadline is the caller's cancel scope, so that it reads the same
    # whichever transport is in use.
    extensions: dict[str, Any] = {}
    if spec.json is not None:
        try:
            content = dumps(spec.json)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the request body can't be encoded as JSON: {exc}") from None
        if "content-type" not in lowered:
            headers["Content-Type"] = "application/json"
        request_id = headers.pop("x-request-id", None)
        if request_id is not None:
            # Last: the client caches the rest of the head (the id is each request's).
            headers["x-request-id"] = request_id
        http_request = make(
            spec.method, spec.url, content=content, headers=headers, extensions=extensions
        )
    elif spec.files is not None:
        # httpx puts ``data`` fields before files; send the files first, then the fields
        # in their order (vLLM's form order), as filename-less parts.
        parts: list[tuple[str, tuple[str | None, bytes, str | None]]] = list(spec.files.items())
        if spec.data:
            parts += [(k, (None, v.encode(), None)) for k, v in spec.data.items()]
        http_request = make(
            spec.method, spec.url, files=parts, headers=headers, extensions=extensions
        )
    else:
        http_request = make(
            spec.method,
            spec.url,
            content=spec.content,
            data=spec.data,
            headers=headers,
            extensions=extensions,
        )
    return http_request, spec.input_audio_duration


# RFC 9110 field names are tokens; values must not break the line or carry NUL.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Names already checked: a request's names are the last one's.
_TOKENS: set[str] = set()


def merge_headers(headers: dict[str, str]) -> dict[str, str]:
    """*headers* with one entry per name, case-insensitively (a later entry wins and
    keeps its spelling), each name a token and each value on one line.

    Raises:
        ConfigError: a name that is not an RFC 9110 token, or a value with CR, LF or NUL.
    """
    return merge_headers_lowered(headers)[0]


def merge_headers_lowered(headers: dict[str, str]) -> tuple[dict[str, str], KeysView[str]]:
    """``merge_headers``, and the merged names lowercased."""
    merged: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for name, value in headers.items():
        if name not in _TOKENS:
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise ConfigError(f"invalid HTTP header name {name!r}")
            if len(_TOKENS) < 1024:
                _TOKENS.add(name)
        if not isinstance(value, str) or "\r" in value or "\n" in value or "\0" in value:
            raise ConfigError(f"invalid value for HTTP header {name!r}: {value!r:.80}")
        key = name.lower()
        old = spelled.get(key)
        if old is not None:
            del merged[old]
        spelled[key] = name
        merged[name] = value
    return merged, spelled.keys()


def add_bearer(
    headers: dict[str, str], api_key: str | None, lowered: Collection[str] | None = None
) -> dict[str, str]:
    """Add ``Authorization: Bearer <api_key>`` to *headers* (in place) as a default: an
    Authorization already there, in any case, wins. *lowered*: the names, lowercased."""
    if lowered is None:
        lowered = {name.lower() for name in headers}
    if api_key and "authorization" not in lowered:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


_REDIRECT_TO_GET = frozenset({301, 302, 303})


def redirect_request(request: httpx.Request, response: httpx.Response) -> httpx.Request:
    """The request that follows *response*'s redirect, by httpx's client rules: 301/302
    turn a POST into a GET (303 any method but HEAD), the body goes with a kept method,
    and credentials do not go to another origin."""
    url = request.url.join(response.headers["Location"])
    method = request.method
    if response.status_code in _REDIRECT_TO_GET and method != "HEAD":
        if response.status_code == 303 or method == "POST":
            method = "GET"
    headers = httpx.Headers(request.headers)
    headers["Host"] = url.netloc.decode("ascii")
    if (url.scheme, url.host, url.port) != (request.url.scheme, request.url.host, request.url.port):
        headers.pop("Authorization", None)
    if method != request.method:
        for name in ("Content-Length", "Transfer-Encoding", "Content-Type"):
            headers.pop(name, None)
        return httpx.Request(method, url, headers=headers, extensions=request.extensions)
    return httpx.Request(
        method, url, headers=headers, stream=request.stream, extensions=request.extensions
    )


def raw_content_type(headers: RawHeaders) -> str | None:
    """The Content-Type of raw response *headers* as ``headers.get("content-type", "")``
    of an httpx Response reads it; ``None`` when the fast path leaves the response to
    httpx: a content coding (httpx decodes it), several Content-Types, or one not ASCII."""
    ctype: str | None = ""
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-type":
            if ctype or not value.isascii():
                return None
            ctype = value.decode("ascii")
            if not ctype:
                return None  # an empty one: rare; httpx's own reading decides
        elif lname == b"content-encoding":
            return None
    return ctype


def arrival_clock(response: httpx.Response, clock: Callable[[], float]) -> Callable[[], float]:
    """The per-read stamp: the transport's socket-read time when it reports one read
    from *clock*, else *clock* itself."""
    return stamp_clock(response.extensions.get(ARRIVAL_EXTENSION), clock)


def stamp_clock(arrival: Arrival | None, clock: Callable[[], float]) -> Callable[[], float]:
    """``arrival_clock`` given the response's ``Arrival`` (``None``: none reported)."""
    if arrival is None or arrival.clock is not clock:
        return clock

    def from_socket() -> float:
        return float(arrival.time)

    return from_socket


def body_pusher(
    response: httpx.Response, clock: Callable[[], float] = time.perf_counter
) -> Callable[[Consume], Awaitable[None]] | None:
    """The body's ``push`` when the engine can take the body that way: our transport's
    body (not wrapped by httpx's client), able to push, stamped with *clock*, and not
    content-encoded (pushed bytes are raw). Else ``None``: the body is iterated."""
    body = response.stream
    if isinstance(body, TimedBody) and "content-encoding" not in response.headers:
        return timed_body_pusher(body, clock)
    return None


def timed_body_pusher(
    body: TimedBody, clock: Callable[[], float]
) -> Callable[[Consume], Awaitable[None]] | None:
    """*body*'s ``push`` when it can push and stamps with *clock* (raw bytes assumed)."""
    return body.push if body.can_push and body.arrival.clock is clock else None


def body_released(response: httpx.Response) -> bool:
    """Whether *response*'s body is ours and has ended and given its connection back:
    closing the response then does nothing and never suspends."""
    body = response.stream
    return isinstance(body, TimedBody) and body.released


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """An iterator over the raw body reads of *response*.

    When the transport's stream is a plain async iterator (ours is), it is iterated
    directly: that skips httpx's two async-generator layers per read, and stopping
    early leaves no half-run generator behind (trio warns about those). Otherwise, and
    when the body is content-encoded, httpx's own iterators are used.
    """
    if response.is_stream_consumed:
        # A response built with its content in hand (httpx.MockTransport, content=b"..."):
        # httpx has read it already.
        return _one_chunk(response.content)
    if "content-encoding" in response.headers:
        return response.aiter_bytes()
    # httpx's client wraps the transport's stream; a direct transport call does not.
    inner: Any = getattr(response.stream, "_stream", response.stream)
    # httpx's own ByteStream (an empty body) keeps bytes there: no iterator at all.
    method = getattr(type(inner), "__aiter__", None)
    if method is not None and not inspect.isasyncgenfunction(method):
        return aiter(inner)
    return response.aiter_raw()


async def _one_chunk(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def close_chunks(chunks: AsyncIterator[bytes]) -> None:
    """Finish an iterator from ``body_chunks`` that may have been left early.

    A plain iterator has nothing to finish. httpx's generators can't be closed from
    outside without leaving their inner generators half-run (trio warns), so the rest of
    the body is read for a short while instead: a cancelled read unwinds every layer.
    """
    body = chunks
    if not inspect.isasyncgen(chunks) or chunks.ag_frame is None:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(_DRAIN_SECONDS) as scope:
        drained = 0
        try:
            async for chunk in body:
                drained += len(chunk)
                if drained > _DRAIN_BYTES:
                    # An endless body: stop now, not after half a second of reading.
                    scope.cancel()
        except Exception:  # the request has already failed; the rest is noise
            pass
