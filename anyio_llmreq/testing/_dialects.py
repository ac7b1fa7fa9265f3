"""Response plans for each serving dialect, built from pre-encoded byte templates.

A plan is pure data: the server decides when and how to put it on the wire.
Mock tokens need no JSON escaping (see ``_tokens``), so token text is spliced
into templates as raw UTF-8 instead of one ``json.dumps`` per event.
"""

from __future__ import annotations

import base64
import json
import random
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._behaviour import MockBehaviour
from ._tokens import count_words, token_id, token_words

__all__ = [
    "MEDIA_TOKENS",
    "BodyReply",
    "Context",
    "Event",
    "StreamReply",
    "audio",
    "chat",
    "completions",
    "embeddings",
    "error_body",
    "pooling",
    "rerank",
    "tgi",
    "triton",
]

_EMPTY: tuple[str, ...] = ()
_TRUE_STRINGS = frozenset({"true", "True", "TRUE", "1"})


@attrs.define
class Event:
    """One SSE event: its ``data`` field value and the tokens it carries.

    ``wait`` events consume one generation step (TTFT for the first, ITL after);
    the others (role, usage trailer, separate finish) follow their predecessor at once.
    """

    data: bytes
    tokens: tuple[str, ...] = _EMPTY
    wait: bool = False


@attrs.define
class StreamReply:
    """An SSE response; ``data_space`` and ``done`` are the dialect's own habits."""

    events: list[Event]
    data_space: bool = True
    done: bool = True


@attrs.define
class BodyReply:
    """A whole-body response, sent after ``steps`` simulated generation steps."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    tokens: tuple[str, ...] = _EMPTY
    steps: int = 0
    headers: list[tuple[str, str]] = attrs.Factory(list)


Reply = StreamReply | BodyReply


@attrs.frozen
class Context:
    """What a dialect needs: the parsed request (JSON object or form fields) and setup."""

    body: Mapping[str, Any]
    behaviour: MockBehaviour
    model: str
    seq: int
    created: int


# --- shared pieces -----------------------------------------------------------------


def _jstr(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _text(words: list[str]) -> bytes:
    return b'"' + "".join(words).encode() + b'"'


def _usage(prompt: int, completion: int, reasoning: int = 0) -> bytes:
    usage = b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d' % (
        prompt,
        completion,
        prompt + completion,
    )
    if reasoning:
        # OpenAI's (and vLLM's) count of the completion's reasoning tokens.
        usage += b',"completion_tokens_details":{"reasoning_tokens":%d}' % reasoning
    return usage + b"}"


def _groups(words: list[str], size: int) -> list[list[str]]:
    if size == 1:
        return [[w] for w in words]
    return [words[i : i + size] for i in range(0, len(words), size)]


def _int_field(body: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value in _TRUE_STRINGS
    return bool(value)


def _length(requested: int | None, b: MockBehaviour) -> tuple[int, bytes]:
    """Tokens to generate and the finish reason (``length`` when the request's limit hit)."""
    n = b.output_len if requested is None else max(requested, 0)
    if b.max_output_len is not None and n > b.max_output_len:
        return b.max_output_len, b'"stop"'
    return n, (b'"length"' if requested is not None else b'"stop"')


def _prompt_tokens(value: Any) -> int:
    return max(count_words(value), 1)


def _stream_options(ctx: Context) -> Mapping[str, Any]:
    opts = ctx.body.get("stream_options")
    return opts if isinstance(opts, dict) else {}


def _want_usage(ctx: Context, requested: Any) -> bool:
    b = ctx.behaviour
    return _truthy(requested) if b.usage is None else b.usage


def _want_continuous(ctx: Context, requested: Any) -> bool:
    b = ctx.behaviour
    return _truthy(requested) if b.continuous_usage is None else b.continuous_usage


def _steps(n: int, per_event: int) -> int:
    return -(-n // per_event)


def error_body(status: int, message: str, html: bool = False) -> tuple[bytes, str]:
    """An OpenAI-style JSON error (or a proxy-style HTML page) and its content type."""
    if html:
        page = (
            f"<html><head><title>{status} Error</title></head>"
            f"<body><h1>{status} Error</h1><p>{message}</p></body></html>"
        )
        return page.encode(), "text/html; charset=utf-8"
    kind = _ERROR_TYPES.get(status, "InternalServerError" if status >= 500 else "APIError")
    body = {"error": {"message": message, "type": kind, "code": status}}
    return json.dumps(body).encode(), "application/json"


_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}


# --- OpenAI completions (and DeepSpeed-MII, its non-streaming form) ------------------


def completions(ctx: Context) -> Reply:
    """``/v1/completions``: SSE when ``stream`` is true, else one JSON body (MII too)."""
    b = ctx.behaviour
    n, finish = _length(_int_field(ctx.body, "max_tokens", "max_completion_tokens"), b)
    prompt = _prompt_tokens(ctx.body.get("prompt"))
    words = token_words(n, b.unicode)
    if not _truthy(ctx.body.get("stream")):
        return _completion_body(ctx, words, finish, prompt)
    opts = _stream_options(ctx)
    continuous = _want_continuous(ctx, opts.get("continuous_usage_stats"))
    head = b'{"id":"cmpl-%d","object":"text_completion","created":%d,"model":%b,' % (
        ctx.seq,
        ctx.created,
        _jstr(ctx.model),
    )
    choice = head + b'"choices":[{"index":0,"text":'
    events: list[Event] = []
    groups = _groups(words, b.tokens_per_event)
    separate = b.finish_chunk or not groups
    sent = 0
    for i, group in enumerate(groups):
        sent += len(group)
        fin = finish if i == len(groups) - 1 and not separate else b"null"
        tail = b',"usage":' + _usage(prompt, sent) + b"}" if continuous else b"}"
        data = choice + _text(group) + b',"logprobs":null,"finish_reason":' + fin + b"}]" + tail
        events.append(Event(data, tuple(group), True))
    if separate:
        tail = b',"usage":' + _usage(prompt, n) + b"}" if continuous else b"}"
        data = choice + b'"","logprobs":null,"finish_reason":' + finish + b"}]" + tail
        events.append(Event(data, _EMPTY, not groups))
    if _want_usage(ctx, opts.get("include_usage")):
        events.append(Event(head + b'"choices":[],"usage":' + _usage(prompt, n) + b"}"))
    return StreamReply(events)


def _completion_body(ctx: Context, words: list[str], finish: bytes, prompt: int) -> BodyReply:
    b = ctx.behaviour
    steps = _steps(len(words), b.tokens_per_event)
    if b.mii_legacy:
        return BodyReply(b'{"text":[' + _text(words) + b"]}", tokens=tuple(words), steps=steps)
    body = (
        b'{"id":"cmpl-%d","object":"text_completion","created":%d,"model":%b,'
        b'"choices":[{"index":0,"text":%b,"logprobs":null,"finish_reason":%b}],"usage":%b}'
        % (
            ctx.seq,
            ctx.created,
            _jstr(ctx.model),
            _text(words),
            finish,
            _usage(prompt, len(words)),
        )
    )
    return BodyReply(body, tokens=tuple(words), steps=steps)


# --- OpenAI chat ---------------------------------------------------------------------


def chat(ctx: Context) -> Reply:
    """``/v1/chat/completions``: role chunk, reasoning deltas, content deltas, trailers."""
    b = ctx.behaviour
    n, finish = _length(_int_field(ctx.body, "max_completion_tokens", "max_tokens"), b)
    prompt = _prompt_tokens(ctx.body.get("messages"))
    words = token_words(n, b.unicode)
    thoughts = token_words(b.reasoning_tokens, b.unicode)
    if not _truthy(ctx.body.get("stream")):
        return _chat_body(ctx, words, thoughts, finish, prompt)
    opts = _stream_options(ctx)
    continuous = _want_continuous(ctx, opts.get("continuous_usage_stats"))
    head = b'{"id":"chatcmpl-%d","object":"chat.completion.chunk","created":%d,"model":%b,' % (
        ctx.seq,
        ctx.created,
        _jstr(ctx.model),
    )
    choice = head + b'"choices":[{"index":0,"delta":'
    total = len(words) + len(thoughts)

    def event(delta: bytes, fin: bytes, done: int, tokens: tuple[str, ...], wait: bool) -> Event:
        tail = b',"usage":' + _usage(prompt, done) + b"}" if continuous else b"}"
        data = choice + delta + b',"logprobs":null,"finish_reason":' + fin + b"}]" + tail
        return Event(data, tokens, wait)

    # The role chunk arrives with the first token (after prefill), as in vLLM.
    events = [event(b'{"role":"assistant","content":""}', b"null", 0, _EMPTY, True)]
    groups = [(b'{"reasoning_content":', g) for g in _groups(thoughts, b.tokens_per_event)]
    groups += [(b'{"content":', g) for g in _groups(words, b.tokens_per_event)]
    separate = b.finish_chunk or not groups
    done = 0
    for i, (key, group) in enumerate(groups):
        done += len(group)
        fin = finish if i == len(groups) - 1 and not separate else b"null"
        events.append(event(key + _text(group) + b"}", fin, done, tuple(group), i > 0))
    if separate:
        events.append(event(b"{}", finish, total, _EMPTY, False))
    if _want_usage(ctx, opts.get("include_usage")):
        usage = _usage(prompt, total, len(thoughts))
        events.append(Event(head + b'"choices":[],"usage":' + usage + b"}"))
    return StreamReply(events)


def _chat_body(
    ctx: Context, words: list[str], thoughts: list[str], finish: bytes, prompt: int
) -> BodyReply:
    b = ctx.behaviour
    reasoning = b',"reasoning_content":' + _text(thoughts) if thoughts else b""
    body = (
        b'{"id":"chatcmpl-%d","object":"chat.completion","created":%d,"model":%b,'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":%b%b},'
        b'"logprobs":null,"finish_reason":%b}],"usage":%b}'
        % (
            ctx.seq,
            ctx.created,
            _jstr(ctx.model),
            _text(words),
            reasoning,
            finish,
            _usage(prompt, len(words) + len(thoughts), len(thoughts)),
        )
    )
    steps = _steps(len(words), b.tokens_per_event) + _steps(len(thoughts), b.tokens_per_event)
    return BodyReply(body, tokens=tuple(words), steps=steps)


# --- TGI -------------------------------------------------------------------------------


def tgi(ctx: Context, stream: bool) -> Reply:
    """``/generate_stream`` (no ``[DONE]``, ``data:`` without a space) and ``/generate``."""
    b = ctx.behaviour
    params = ctx.body.get("parameters")
    requested = _int_field(params, "max_new_tokens") if isinstance(params, dict) else None
    n, finish = _length(requested, b)
    words = token_words(n, b.unicode)
    full = _text(words)
    if not stream:
        return BodyReply(
            b'{"generated_text":' + full + b"}",
            tokens=tuple(words),
            steps=_steps(n, b.tokens_per_event),
        )
    groups = _groups(words, b.tokens_per_event)
    events: list[Event] = []
    for i, group in enumerate(groups):
        if i == len(groups) - 1 and not b.tgi_eos:
            tail = b',"generated_text":%b,"details":{"finish_reason":%b,"generated_tokens":%d,' % (
                full,
                finish,
                n,
            )
            tail += b'"seed":null}}'
        else:
            tail = b',"generated_text":null,"details":null}'
        data = (
            b'{"index":%d,"token":{"id":%d,"text":%b,"logprob":-0.125,"special":false}'
            % (i, token_id(group[0]), _text(group))
        ) + tail
        events.append(Event(data, tuple(group), True))
    if b.tgi_eos:
        data = (
            b'{"index":%d,"token":{"id":2,"text":"</s>","logprob":-0.125,"special":true},'
            b'"generated_text":%b,"details":{"finish_reason":"eos_token","generated_tokens":%d,'
            b'"seed":null}}' % (len(groups), full, n + 1)
        )
        events.append(Event(data, _EMPTY, True))
    return StreamReply(events, data_space=False, done=False)


# --- Triton TensorRT-LLM -----------------------------------------------------------------


def triton(ctx: Context, stream: bool) -> Reply:
    """``/v2/models/<model>/generate_stream`` (one event per token, no ``[DONE]``)."""
    b = ctx.behaviour
    n, _ = _length(_int_field(ctx.body, "max_tokens"), b)
    words = token_words(n, b.unicode)
    head = b'{"model_name":%b,"model_version":"1",' % _jstr(ctx.model)
    if not stream:
        body = head + b'"text_output":' + _text(words) + b"}"
        return BodyReply(body, tokens=tuple(words), steps=_steps(n, b.tokens_per_event))
    head += b'"sequence_end":false,"sequence_id":0,"text_output":'
    events = [
        Event(head + _text(group) + b"}", tuple(group), True)
        for group in _groups(words, b.tokens_per_event)
    ]
    return StreamReply(events, done=False)


# --- OpenAI audio ------------------------------------------------------------------------


def audio(ctx: Context) -> Reply:
    """``/v1/audio/transcriptions|translations`` from multipart form fields."""
    b = ctx.behaviour
    form = ctx.body
    n, finish = _length(_int_field(form, "max_completion_tokens", "max_tokens"), b)
    prompt = _prompt_tokens(form.get("prompt", ""))
    words = token_words(n, b.unicode)
    if not _truthy(form.get("stream", "")):
        body = b'{"text":' + _text(words) + b"}"
        return BodyReply(body, tokens=tuple(words), steps=_steps(n, b.tokens_per_event))
    continuous = _want_continuous(ctx, form.get("stream_continuous_usage_stats", ""))
    head = b'{"id":"trsc-%d","object":"transcription.chunk","created":%d,"model":%b,' % (
        ctx.seq,
        ctx.created,
        _jstr(ctx.model),
    )
    choice = head + b'"choices":[{"delta":{"content":'
    groups = _groups(words, b.tokens_per_event)
    separate = b.finish_chunk or not groups
    events: list[Event] = []
    done = 0
    for i, group in enumerate(groups):
        done += len(group)
        fin = finish if i == len(groups) - 1 and not separate else b"null"
        tail = b',"usage":' + _usage(prompt, done) + b"}" if continuous else b"}"
        data = choice + _text(group) + b'},"finish_reason":' + fin + b',"stop_reason":null}]'
        events.append(Event(data + tail, tuple(group), True))
    if separate:
        data = choice + b'""},"finish_reason":' + finish + b',"stop_reason":null}]}'
        events.append(Event(data, _EMPTY, not groups))
    if _want_usage(ctx, form.get("stream_include_usage", "")):
        events.append(Event(head + b'"choices":[],"usage":' + _usage(prompt, n) + b"}"))
    return StreamReply(events)


# --- pooling-style endpoints ------------------------------------------------------------


def _vector(seed_text: str, dim: int) -> list[float]:
    rng = random.Random(zlib.crc32(seed_text.encode()))
    return [round(rng.uniform(-1.0, 1.0), 6) for _ in range(dim)]


def _embedding_inputs(body: Mapping[str, Any]) -> list[Any]:
    """Items to embed: a string, a batch of strings or of token-id lists, or messages."""
    if "input" not in body:
        return [body.get("messages", "")]
    value = body["input"]
    if isinstance(value, list) and value and all(isinstance(v, (str, list)) for v in value):
        return list(value)
    return [value]


#: Prompt tokens the mock charges for one image, video or audio item (a small vision
#: encoder's patch count), so a media request's ``prompt_tokens`` shows the media arrived.
MEDIA_TOKENS = 16
_MEDIA_PART_TYPES = frozenset({"image_url", "video_url", "audio_url", "input_audio"})
_INFINITY_MODALITIES = ("text", "image", "audio")


def _media_count(value: Any) -> int:
    """Media content parts (``{"type": "image_url", ...}``) anywhere in a JSON value."""
    if isinstance(value, dict):
        own = 1 if value.get("type") in _MEDIA_PART_TYPES else 0
        return own + sum(_media_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_media_count(v) for v in value)
    return 0


def _embedding_tokens(item: Any, modality: Any) -> int:
    """One input's prompt tokens: Infinity's ``modality`` other than text makes each input
    one media item; text counts words, plus ``MEDIA_TOKENS`` per media part of a message."""
    if modality in ("image", "audio"):
        return MEDIA_TOKENS
    return max(count_words(item) + MEDIA_TOKENS * _media_count(item), 1)


def _pooling_usage(prompt: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "total_tokens": prompt, "completion_tokens": 0}


def embeddings(ctx: Context) -> BodyReply:
    """``/v1/embeddings`` (and Infinity's ``/embeddings``): one deterministic vector per
    input (float, base64 or bytes); ``input`` (text, token ids, Infinity's media URLs with
    ``modality``) or chat-style ``messages``."""
    dim = ctx.behaviour.embedding_dim
    inputs = _embedding_inputs(ctx.body)
    modality = ctx.body.get("modality")
    if modality is not None and modality not in _INFINITY_MODALITIES:
        # Infinity validates the field; vLLM's embeddings API has none.
        error, ctype = error_body(422, f"modality must be text, image or audio, not {modality!r}")
        return BodyReply(error, status=422, content_type=ctype)
    prompt = sum(_embedding_tokens(item, modality) for item in inputs)
    vectors = [_vector(json.dumps(item), dim) for item in inputs]
    usage = _pooling_usage(prompt)
    fmt = ctx.body.get("encoding_format", "float")
    if fmt == "bytes":
        # vLLM's binary form: raw float32 data, metadata (with usage) in a header.
        raw = b"".join(struct.pack(f"<{dim}f", *v) for v in vectors)
        meta = json.dumps({"id": f"embd-{ctx.seq}", "model": ctx.model, "usage": usage})
        return BodyReply(raw, content_type="application/octet-stream", headers=[("metadata", meta)])
    encode: Callable[[list[float]], Any] = (
        (lambda v: base64.b64encode(struct.pack(f"<{dim}f", *v)).decode())
        if fmt == "base64"
        else (lambda v: v)
    )
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)
    ]
    body = {
        "id": f"embd-{ctx.seq}",
        "object": "list",
        "created": ctx.created,
        "model": ctx.model,
        "data": data,
        "usage": usage,
    }
    return BodyReply(json.dumps(body).encode())


def rerank(ctx: Context) -> BodyReply:
    """``/rerank``: deterministic scores, best first, ``top_n`` honoured."""
    query = ctx.body.get("query", "")
    documents = ctx.body.get("documents", [])
    if not isinstance(documents, list):
        documents = [documents]
    scored = []
    for i, doc in enumerate(documents):
        text = doc.get("text", "") if isinstance(doc, dict) else doc
        score = zlib.crc32(json.dumps([query, text]).encode()) / 2**32
        scored.append((score, i, text))
    scored.sort(key=lambda r: -r[0])
    results = [
        {"index": i, "document": {"text": text}, "relevance_score": score}
        for score, i, text in scored
    ]
    top_n = _int_field(ctx.body, "top_n")
    if top_n:
        results = results[:top_n]
    prompt = _prompt_tokens([query, documents])
    body = {
        "id": f"rerank-{ctx.seq}",
        "model": ctx.model,
        "results": results,
        "usage": _pooling_usage(prompt),
    }
    return BodyReply(json.dumps(body).encode())


def pooling(ctx: Context) -> BodyReply:
    """``/pooling``: one deterministic vector for the whole input."""
    prompt = _prompt_tokens(dict(ctx.body))
    vector = _vector(
        json.dumps(ctx.body.get("input", ""), sort_keys=True), ctx.behaviour.embedding_dim
    )
    body = {
        "id": f"pool-{ctx.seq}",
        "object": "list",
        "created": ctx.created,
        "model": ctx.model,
        "data": [{"index": 0, "object": "pooling", "data": vector}],
        "usage": _pooling_usage(prompt),
    }
    return BodyReply(json.dumps(body).encode())
