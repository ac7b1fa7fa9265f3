"""Data types shared by the engine, the backends and the compatibility layer.

``RequestFuncInput`` and ``RequestFuncOutput`` are dataclasses on purpose: scripts written
for vLLM's ``backend_request_func`` construct them positionally, compare them and call
``dataclasses.asdict`` on them. Their reference fields keep the reference's names, order
and defaults; fields of ours are only appended, with defaults.

Everything else is attrs. Nothing here does I/O or reads a clock. Events and deltas
are made once per stream event, on the hot path, so they are plain (non-frozen) attrs
classes: frozen ones cost three times as much to create. Treat them as read-only.

Making an attrs class compiles its methods (about half a millisecond each, at import),
so classes with the same fields share them: the text deltas subclass one attrs class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import attrs

__all__ = [
    "END",
    "Accumulator",
    "Completion",
    "Delta",
    "EndDelta",
    "ErrorDelta",
    "FinalTextDelta",
    "ReasoningDelta",
    "RequestFuncInput",
    "RequestFuncOutput",
    "RequestSpec",
    "ResultDelta",
    "SSEEvent",
    "TextDelta",
    "TokenDelta",
    "ToolCallDelta",
    "UsageDelta",
]


@dataclass
class RequestFuncInput:
    """One request, as vLLM's benchmark builds it.

    The first twelve fields are the reference's, in its order. Appended:
    ``extra_headers`` (vLLM's newer module has it too, at another position) and
    ``timeout``, a total deadline for this request in seconds.
    """

    prompt: Any
    api_url: str
    prompt_len: int
    output_len: int
    model: str
    model_name: str | None = None
    logprobs: int | None = None
    extra_body: dict[str, Any] | None = None
    multi_modal_content: dict[str, Any] | list[dict[str, Any]] | None = None
    ignore_eos: bool = False
    language: str | None = None
    request_id: str | None = None
    extra_headers: dict[str, str] | None = None
    #: Seconds the whole request may take (connect to last byte); ``None`` leaves the
    #: client's ``Timeouts.total``. A request past it fails with ``RequestTimeout``.
    timeout: float | None = None


@dataclass
class RequestFuncOutput:
    """What one request measured. Times are seconds of ``time.perf_counter``.

    The first nine fields are the reference's, in its order. Appended:
    ``start_time`` (perf_counter when the request was sent), ``input_audio_duration``,
    ``client_queue_time`` (time spent waiting for a concurrency slot),
    ``reasoning_text``, ``output_tokens_source`` (``"usage"`` when the server reported
    the count, ``"events"`` when counted from token events, ``""`` when unknown and the
    consumer must tokenize), ``streamed`` (False for a non-streaming response, whose
    ``ttft`` equals its ``latency``), ``status_code``, ``prompt_tokens`` (the
    server's count of prompt tokens; ``None`` when it reported none),
    ``reasoning_tokens`` (the server's ``completion_tokens_details.reasoning_tokens``),
    ``ttft_reasoning`` / ``ttft_content`` (seconds from ``start_time`` to the first
    reasoning and the first visible content event; ``None`` without one) and
    ``http_phases`` (when the request's HTTP steps happened, with our own transport;
    see ``Exchange.http_phases``).

    ``prompt_len`` is the caller's, as in the reference; pooling backends put the
    server's count there, as vLLM does.
    """

    generated_text: str = ""
    success: bool = False
    latency: float = 0.0
    output_tokens: int = 0
    ttft: float = 0.0
    itl: list[float] = field(default_factory=list)
    tpot: float = 0.0
    prompt_len: int = 0
    error: str = ""
    start_time: float = 0.0
    input_audio_duration: float = 0.0
    client_queue_time: float = 0.0
    reasoning_text: str = ""
    output_tokens_source: str = ""
    streamed: bool = True
    status_code: int | None = None
    prompt_tokens: int | None = None
    reasoning_tokens: int | None = None
    ttft_reasoning: float | None = None
    ttft_content: float | None = None
    http_phases: dict[str, Any] | None = None


@attrs.define
class SSEEvent:
    """One dispatched server-sent event, or a whole non-streaming body.

    Field semantics follow the WHATWG ``EventSource`` interpretation (as httpx-sse
    implements it): ``event`` defaults to ``"message"``, ``id`` is the last event id seen
    on the stream (it is not reset between events), ``data`` lines are joined with LF.
    """

    data: str = ""
    event: str = "message"
    id: str = ""
    retry: int | None = None


# One each per request, frozen: without slots, attrs' __init__ fills the instance dict
# directly instead of calling object.__setattr__ for each field (a quarter less).
@attrs.frozen(slots=False)
class RequestSpec:
    """The HTTP request a backend wants sent: everything but auth and timing.

    Exactly one of ``json``, ``files``+``data`` or ``content`` describes the body.
    """

    url: str
    json: Any = None
    headers: dict[str, str] = attrs.Factory(dict)
    method: str = "POST"
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str | None]] | None = None
    content: bytes | None = None
    # Sent as ``Authorization: Bearer <key>`` when the client has a key.
    auth: bool = True
    # Seconds of audio in the request, reported back in the output.
    input_audio_duration: float = 0.0


@attrs.define
class _Text:
    """The base of the deltas that are one ``text``. attrs makes (and compiles) their
    methods once, here; the subclasses only add ``__slots__ = ()``. Equality still needs
    the same class: ``TextDelta("a") != ReasoningDelta("a")``."""

    text: str


class TextDelta(_Text):
    """Generated text. Backends only emit it with non-empty text: it counts for TTFT."""

    __slots__ = ()


class ReasoningDelta(_Text):
    """Reasoning text (``reasoning_content`` / ``reasoning``); counts for TTFT."""

    __slots__ = ()


@attrs.define
class ToolCallDelta:
    """A fragment of a tool call; counts for TTFT."""

    index: int = 0
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.frozen
class ResultDelta:
    """The response as a whole is the output (an embedding, scores, a non-streamed reply).

    It counts for TTFT like text, so a backend whose answer carries no text (pooling,
    rerank) or an empty one still succeeds; ``value`` is the parsed response, if kept.
    """

    value: Any = None


@attrs.frozen
class TokenDelta:
    """Tokens the server generated in one event, text or not (TGI's special tokens).

    It carries no output, so it never stamps TTFT; backends without usage count tokens
    with it (``Accumulator.token_events``).
    """

    count: int = 1


@attrs.define
class UsageDelta:
    """Token counts reported by the server; the last report wins."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: ``completion_tokens_details.reasoning_tokens``: the part of the completion spent
    #: reasoning, when the server says.
    reasoning_tokens: int | None = None


class FinalTextDelta(_Text):
    """The full generated text, sent by servers such as TGI in their last event."""

    __slots__ = ()


@attrs.define
class ErrorDelta:
    """An error the server reported inside the stream; the request fails."""

    message: str


@attrs.frozen
class EndDelta:
    """The server's end-of-stream marker (``[DONE]``)."""


END = EndDelta()

Delta: TypeAlias = (
    TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | ResultDelta
    | TokenDelta
    | UsageDelta
    | FinalTextDelta
    | ErrorDelta
    | EndDelta
)

#: Delta types that carry generated output: they stamp TTFT and ITL.
OUTPUT_DELTAS = (TextDelta, ReasoningDelta, ToolCallDelta, ResultDelta)


@attrs.define
class Accumulator:
    """Everything one response's deltas added up to; the engine fills it."""

    text_parts: list[str] = attrs.Factory(list)
    reasoning_parts: list[str] = attrs.Factory(list)
    tool_calls: list[ToolCallDelta] = attrs.Factory(list)
    #: Tokens counted from ``TokenDelta``s, for servers that send no usage.
    token_events: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    final_text: str | None = None
    done: bool = False

    def add(self, delta: Delta) -> bool:
        """Fold in one delta; return True when it carries output."""
        cls = type(delta)
        if cls is TextDelta:
            self.text_parts.append(delta.text)  # type: ignore[union-attr]
            return True
        if cls is ReasoningDelta:
            self.reasoning_parts.append(delta.text)  # type: ignore[union-attr]
            return True
        if cls is ToolCallDelta:
            self.tool_calls.append(delta)  # type: ignore[arg-type]
            return True
        if cls is TokenDelta:
            self.token_events += delta.count  # type: ignore[union-attr]
            return False
        if cls is ResultDelta:
            return True
        if cls is UsageDelta:
            assert isinstance(delta, UsageDelta)
            if delta.prompt_tokens is not None:
                self.prompt_tokens = delta.prompt_tokens
            if delta.completion_tokens is not None:
                self.completion_tokens = delta.completion_tokens
            if delta.reasoning_tokens is not None:
                self.reasoning_tokens = delta.reasoning_tokens
        elif cls is FinalTextDelta:
            assert isinstance(delta, FinalTextDelta)
            self.final_text = delta.text
        elif cls is EndDelta:
            self.done = True
        return False


@attrs.frozen(slots=False)  # one per request: see RequestSpec
class Completion:
    """The final fields a backend derives from an ``Accumulator``."""

    generated_text: str
    output_tokens: int | None = None
    output_tokens_source: Literal["usage", "events", ""] = ""
    prompt_tokens: int | None = None
    reasoning_text: str = ""
    #: Replaces the caller's ``prompt_len`` in the output: pooling backends report the
    #: server's count there, as vLLM does; generation backends leave it ``None``.
    prompt_len: int | None = None
    #: The server's count of reasoning tokens within ``output_tokens``.
    reasoning_tokens: int | None = None
