"""The backend protocol and the pure helpers backends share.

A backend is one LLM server API flavour. It is an attrs class that builds requests and
interprets response events; it never touches the network or a clock, so every backend
is testable on literal bytes. The engine does all I/O and stamps all timings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import attrs

from .._exceptions import ConfigError, StreamProtocolError
from .._json import loads
from .._models import (
    END,
    Accumulator,
    Completion,
    Delta,
    ErrorDelta,
    RequestFuncInput,
    RequestSpec,
    SSEEvent,
)

__all__ = [
    "Backend",
    "Framing",
    "Stateless",
    "TokenTextBackend",
    "WithTemperature",
    "base_headers",
    "decode_json",
    "error_message",
    "event_object",
    "usage_completion",
    "validate_url",
]

#: ``"sse"``: the body is an event stream; ``"json"``: the whole body is one JSON value,
#: handed to ``parse_event`` as a single event.
Framing = Literal["sse", "json"]


class Backend(Protocol):
    """One LLM server API flavour. Pure: no I/O, no clock, no mutable shared state.

    Instances are immutable configuration shared by concurrent requests; per-request
    state lives in the engine's ``Accumulator``.
    """

    #: Registry key this class is known by first (``"openai-chat"``, ``"tgi"``...).
    name: ClassVar[str]
    #: How the response body is framed.
    framing: ClassVar[Framing]

    def build_payload(self, request: RequestFuncInput, /) -> RequestSpec:
        """Return the HTTP request for *request*.

        Raises:
            ConfigError: *request* can't be expressed for this server (a URL with the
                wrong suffix, multimodal content of the wrong shape). Raised before
                any I/O.
        """
        ...

    def parse_event(self, event: SSEEvent, /) -> Sequence[Delta]:
        """Turn one decoded event into zero or more deltas.

        Returns an empty sequence for keep-alives and events with empty data. An error
        object or ``event: error`` becomes an ``ErrorDelta``.

        Raises:
            StreamProtocolError: the event is not what this server's protocol sends.
        """
        ...

    def finalize(self, acc: Accumulator, /) -> Completion:
        """Fold everything one response added up to into the final output fields."""
        ...

    # Optional: the ``token_text`` fast path of ``TokenTextBackend``.


@runtime_checkable
class TokenTextBackend(Backend, Protocol):
    """A backend with a fast path for plain token events, which the engine looks up once
    per request.

    ``token_text`` is given the data of a plain event (one ``data:`` line, type
    ``message``) and returns the generated text when the event is nothing but a token
    (non-empty text, no usage, no error), else ``None``. The engine calls it first and
    skips building the event and its deltas; ``parse_event`` must give the same result
    for such events.
    """

    def token_text(self, data: str, /) -> str | None: ...


@attrs.frozen
class Stateless:
    """The base of the built-in backends, which have no fields: subclasses are immutable
    ``attrs`` classes (``attrs.has``, ``attrs.evolve`` and ``attrs.asdict`` work), equal
    to instances of their own class only, repr'd as ``Name()``, with no ``__dict__``.

    Subclasses declare ``__slots__ = ()`` and are not decorated: attrs generates (and
    compiles) the methods once, here, not once per backend class at import.
    """


@attrs.frozen
class WithTemperature(Stateless):
    """The base of the built-in backends whose one field is ``temperature``: like
    ``Stateless``, subclasses declare ``__slots__ = ()`` and are not decorated."""

    temperature: float | None = 0.0


def validate_url(url: str, api_name: str, suffixes: Iterable[str]) -> None:
    """Raise ``ConfigError`` unless *url* ends with one of *suffixes*."""
    allowed = tuple(suffixes)
    if not url.endswith(allowed):
        names = " or ".join(repr(s) for s in allowed)
        raise ConfigError(f"{api_name} URL must end with {names}; got {url!r}.")


def base_headers(request: RequestFuncInput, content_type: str | None = None) -> dict[str, str]:
    """Headers every backend sends: content type, the caller's extra headers, request id.

    The request id is applied last, so it wins over an ``x-request-id`` in
    ``extra_headers`` (as in vLLM). Auth is added by the engine, never here.
    """
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if request.extra_headers:
        headers.update(request.extra_headers)
    if request.request_id:
        headers["x-request-id"] = request.request_id
    return headers


def decode_json(event: SSEEvent) -> Any:
    """Parse an event's data as JSON.

    Returns ``None`` for events to skip: empty data (a keep-alive after an ``id:``
    field) and ``[DONE]`` is returned as the string ``"[DONE]"``. An ``event: error``
    whose data is not JSON comes back as ``{"error": data}``.

    Raises:
        StreamProtocolError: the data is not JSON.
    """
    data = event.data
    if not data:
        if event.event == "error":
            return {"error": "server sent an error event"}
        return None
    if data == "[DONE]":
        return data
    try:
        obj = loads(data)
    except ValueError:
        if event.event == "error":
            return {"error": data}
        raise StreamProtocolError(f"invalid JSON in stream event: {_excerpt(data)}") from None
    if event.event == "error" and not (isinstance(obj, dict) and "error" in obj):
        return {"error": obj}
    return obj


def event_object(event: SSEEvent, what: str = "stream event") -> dict[str, Any] | tuple[Delta, ...]:
    """The JSON object *event* carries, or the deltas of an event that carries none.

    Empty data gives ``()``, ``[DONE]`` gives ``(END,)``; the common ``data: {...}`` event
    is parsed straight away. Error objects are returned like any other object.

    Raises:
        StreamProtocolError: the data is not JSON, or not a JSON object (*what* names the
            event in the message).
    """
    data = event.data
    obj: Any
    if data[:1] == "{" and event.event == "message":
        try:
            obj = loads(data)
        except ValueError:
            obj = decode_json(event)  # raises the clear "invalid JSON" error
    else:
        obj = decode_json(event)
    if type(obj) is dict:
        return obj
    if obj is None:
        return ()
    if obj == "[DONE]":
        return (END,)
    raise StreamProtocolError(f"{what} is not a JSON object: {obj!r:.120}")


def error_message(error: Any) -> ErrorDelta:
    """Make a one-line ``ErrorDelta`` from a server's error object or string."""
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("error")
        code = error.get("code") or error.get("type")
        text = str(message) if message else str(error)
        if code is not None and str(code) not in text:
            text = f"{text} (code {code})"
    else:
        text = str(error)
    return ErrorDelta("server error in stream: " + " ".join(text.split()))


def usage_completion(acc: Accumulator, text: str, reasoning: str = "") -> Completion:
    """The usual completion: counts from the server's usage when it sent any."""
    tokens = acc.completion_tokens
    return Completion(
        generated_text=text,
        output_tokens=tokens,
        output_tokens_source="usage" if tokens is not None else "",
        prompt_tokens=acc.prompt_tokens,
        reasoning_text=reasoning,
        reasoning_tokens=acc.reasoning_tokens,
    )


def _excerpt(text: str, limit: int = 120) -> str:
    one_line = " ".join(text.split())
    return repr(one_line if len(one_line) <= limit else one_line[:limit] + "...")


def api_key_from_env() -> str | None:
    """``OPENAI_API_KEY`` when set and non-empty (vLLM's newer rule)."""
    return os.environ.get("OPENAI_API_KEY") or None
