"""What the mock server does: timing, output shape and injected faults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = ["SERVING_ITL", "SERVING_TTFT", "MockBehaviour"]

# The timing of a small model on a real server: the default of ``anyio-llmreq mock-server``
# and of the bench's embedded server. ``MockBehaviour()`` itself answers at once.
SERVING_TTFT = 0.05
SERVING_ITL = 0.01

_nonneg = attrs.validators.ge(0)
_nonneg_f = attrs.validators.ge(0.0)
_opt_nonneg_int = attrs.validators.optional(
    [attrs.validators.instance_of(int), attrs.validators.ge(0)]
)
_opt_pos_int = attrs.validators.optional(
    [attrs.validators.instance_of(int), attrs.validators.ge(1)]
)
_opt_bool = attrs.validators.optional(attrs.validators.instance_of(bool))


def _to_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _to_offsets(value: Iterable[int]) -> tuple[int, ...]:
    # Sorted and deduplicated so the writer can cut an event in one pass.
    return tuple(sorted({int(v) for v in value}))


def _to_pair(value: Iterable[int] | None) -> tuple[int, int] | None:
    # A tuple whatever came (JSON gives a list); the validator checks it is a pair.
    return None if value is None else tuple(value)  # type: ignore[return-value]


def _check_spec_decode(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (
        len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 0 <= value[1] <= value[0]
        or value[0] < 1
    ):
        raise ValueError(
            f"{attribute.name} must be (k, a) with 1 <= k and 0 <= a <= k, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class MockBehaviour:
    """How the mock server answers; every field can be overridden per request.

    Counts named ``*_after`` are numbers of SSE events already written when the
    fault fires (0 fires right after the response headers). When several are set,
    the one with the smallest count wins.
    """

    # Timing (seconds): delay before the first output event, then between events.
    ttft: float = attrs.field(default=0.0, converter=_to_float, validator=_nonneg_f)
    itl: float = attrs.field(default=0.0, converter=_to_float, validator=_nonneg_f)

    # Load (a server with a known knee): at most ``capacity`` requests generate at once,
    # the others wait in a first-come queue before their first token, so TTFT jumps
    # once the concurrency exceeds it; and each request's TTFT grows by
    # ``ttft_per_active`` seconds per other request generating when it starts.
    capacity: int | None = attrs.field(default=None, validator=_opt_pos_int)
    ttft_per_active: float = attrs.field(default=0.0, converter=_to_float, validator=_nonneg_f)

    # Output shape.
    output_len: int = attrs.field(default=16, validator=_nonneg)
    max_output_len: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    tokens_per_event: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    unicode: bool = False
    usage: bool | None = attrs.field(default=None, validator=_opt_bool)
    continuous_usage: bool | None = attrs.field(default=None, validator=_opt_bool)
    reasoning_tokens: int = attrs.field(default=0, validator=_nonneg)
    finish_chunk: bool = False
    tgi_eos: bool = False
    mii_legacy: bool = False
    embedding_dim: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    #: ``(k, a)``: speculative decoding as ``GET /metrics`` counts it, each step drafting
    #: ``k`` tokens and accepting the first ``a`` (vLLM's ``vllm:spec_decode_*``).
    spec_decode: tuple[int, int] | None = attrs.field(
        default=None, converter=_to_pair, validator=_check_spec_decode
    )

    # SSE framing.
    line_ending: str = attrs.field(
        default="\n", validator=attrs.validators.in_(("\n", "\r\n", "\r"))
    )
    data_space: bool | None = attrs.field(default=None, validator=_opt_bool)
    send_done: bool = True
    ping_every: int | None = attrs.field(default=None, validator=_opt_pos_int)
    event_ids: bool = False
    content_type: str | None = None

    # Faults.
    status: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            [attrs.validators.instance_of(int), attrs.validators.ge(100), attrs.validators.le(599)]
        ),
    )
    error_body: str = attrs.field(default="json", validator=attrs.validators.in_(("json", "html")))
    error_message: str = "mock error"
    stall_after: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    stall_duration: float | None = attrs.field(
        default=None, converter=attrs.converters.optional(_to_float)
    )
    reset_after: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    error_after: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    error_event_after: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    malformed_after: int | None = attrs.field(default=None, validator=_opt_nonneg_int)
    split_at: tuple[int, ...] = attrs.field(default=(), converter=_to_offsets)
    split_every: int | None = attrs.field(default=None, validator=_opt_pos_int)
    split_delay: float = attrs.field(default=0.002, converter=_to_float, validator=_nonneg_f)
    hang: bool = False
    headers_then_hang: bool = False
    trickle: bool = False
    fault_rate: float = attrs.field(
        default=0.0,
        converter=_to_float,
        validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)],
    )
    seed: int | None = None
    fault_stall: float = attrs.field(default=0.5, converter=_to_float, validator=_nonneg_f)

    def with_overrides(self, overrides: Mapping[str, Any]) -> MockBehaviour:
        """Return a copy with ``overrides`` applied; unknown keys raise ``ValueError``."""
        unknown = set(overrides) - _FIELD_NAMES
        if unknown:
            raise ValueError(f"unknown mock behaviour field(s): {', '.join(sorted(unknown))}")
        try:
            return attrs.evolve(self, **overrides)
        except TypeError as exc:
            # attrs validators raise TypeError; callers only need one error type.
            raise ValueError(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        data = attrs.asdict(self)
        data["split_at"] = list(self.split_at)
        return data


_FIELD_NAMES = frozenset(f.name for f in attrs.fields(MockBehaviour))
