"""The mock server's ``GET /metrics``: a Prometheus text page in vLLM's metric names.

The gauges come from the server's live state, the counters and histograms from the
requests it served, so a benchmark's scrapes of the mock can be checked against what the
client measured. With ``MockBehaviour.spec_decode = (k, a)`` every decode step drafts
``k`` tokens and accepts the first ``a`` (vLLM's counters, with an acceptance rate of
exactly ``a / k`` and an acceptance length of ``1 + a``).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any

import attrs

from ._behaviour import MockBehaviour
from ._dialects import _int_field, _length
from ._http import HTTPRequest
from ._tokens import count_words

__all__ = [
    "CONTENT_TYPE",
    "E2E_BUCKETS",
    "TTFT_BUCKETS",
    "MockMetrics",
    "spec_decode_counts",
]

#: What vLLM's ``/metrics`` answers with (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: vLLM's ``vllm:time_to_first_token_seconds`` buckets (``TIME_TO_FIRST_TOKEN_BUCKETS``).
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
#: vLLM's ``vllm:e2e_request_latency_seconds`` buckets (``REQUEST_LATENCY_BUCKETS``).
E2E_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip

_PROMPT_KEYS = ("prompt", "messages", "inputs", "text_input", "input", "query")
_FINISH_REASONS = ("stop", "length")


def spec_decode_counts(generated: int, spec_decode: tuple[int, int]) -> tuple[int, int, int]:
    """``(drafts, draft tokens, accepted tokens)`` for one request of *generated* tokens:
    the first token comes from the prefill, each later step drafts ``k`` tokens, accepts
    ``a`` and adds the bonus token, so it yields ``a + 1`` tokens."""
    k, accepted = spec_decode
    drafts = -(-(generated - 1) // (accepted + 1)) if generated > 1 else 0
    return drafts, drafts * k, drafts * accepted


@attrs.define
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = attrs.field(init=False)
    total: float = 0.0
    count: int = 0

    def __attrs_post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        # Prometheus buckets are "less than or equal": the first bound >= value.
        i = bisect.bisect_left(self.bounds, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str) -> Iterator[str]:
        cumulative = 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            cumulative += n
            yield f'{name}_bucket{{{labels},le="{bound!r}"}} {cumulative}.0'
        yield f'{name}_bucket{{{labels},le="+Inf"}} {self.count}.0'
        yield f"{name}_count{{{labels}}} {self.count}.0"
        yield f"{name}_sum{{{labels}}} {self.total!r}"


@attrs.define
class _Live:
    """One request being served."""

    received_at: float
    behaviour: MockBehaviour | None = None
    finish_reason: str = "stop"
    tokens: int = 0
    first_token: bool = False


@attrs.define
class MockMetrics:
    """What ``GET /metrics`` shows, kept by the server's request hooks."""

    model: str = "mock-model"
    prompt_tokens: int = 0
    generation_tokens: int = 0
    success: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(_FINISH_REASONS, 0))
    ttft: _Histogram = attrs.Factory(lambda: _Histogram(TTFT_BUCKETS))
    e2e: _Histogram = attrs.Factory(lambda: _Histogram(E2E_BUCKETS))
    #: Speculative decoding: drafts, draft tokens, accepted tokens, accepted by position.
    spec_enabled: bool = False
    num_drafts: int = 0
    num_draft_tokens: int = 0
    num_accepted_tokens: int = 0
    accepted_per_pos: list[int] = attrs.Factory(list)
    _live: dict[int, _Live] = attrs.Factory(dict)

    async def served(self, req: HTTPRequest, serving: Coroutine[Any, Any, bool]) -> bool:
        """Await *serving* (the answer to *req*) as one request in the server."""
        self._live[id(req)] = _Live(req.received_at)
        try:
            return await serving
        finally:
            self._live.pop(id(req), None)

    def started(self, req: HTTPRequest, body: Mapping[str, Any], behaviour: MockBehaviour) -> None:
        """*req* was accepted for generation: its prompt tokens count."""
        live = self._live.get(id(req))
        if live is None:
            return
        live.behaviour = behaviour
        live.finish_reason = _finish_reason(body, behaviour)
        self.prompt_tokens += _prompt_tokens(body)

    def sent(self, req: HTTPRequest, tokens: int, at: float | None = None) -> None:
        """*tokens* generated tokens went out for *req* at *at* (``perf_counter``; now
        when not given); the first ones set its TTFT."""
        if not tokens:
            return
        live = self._live.get(id(req))
        if live is None:
            return
        if not live.first_token:
            live.first_token = True
            self.ttft.observe((time.perf_counter() if at is None else at) - live.received_at)
        live.tokens += tokens
        self.generation_tokens += tokens

    def finished(self, req: HTTPRequest) -> None:
        """*req* generated everything: counted as a success (before its last bytes go
        out, so a scrape after the client finished sees it)."""
        live = self._live.get(id(req))
        if live is None:
            return
        self.e2e.observe(time.perf_counter() - live.received_at)
        self.success[live.finish_reason] = self.success.get(live.finish_reason, 0) + 1
        spec = live.behaviour.spec_decode if live.behaviour is not None else None
        if spec is not None:
            self._count_drafts(live.tokens, spec)

    def _count_drafts(self, generated: int, spec: tuple[int, int]) -> None:
        drafts, draft_tokens, accepted = spec_decode_counts(generated, spec)
        self.spec_enabled = True
        self.num_drafts += drafts
        self.num_draft_tokens += draft_tokens
        self.num_accepted_tokens += accepted
        k, a = spec
        if len(self.accepted_per_pos) < k:
            self.accepted_per_pos += [0] * (k - len(self.accepted_per_pos))
        for pos in range(a):
            self.accepted_per_pos[pos] += drafts

    def render(self, behaviour: MockBehaviour, waiting: int = 0) -> bytes:
        """The page, in the order and names vLLM uses. *waiting* requests queue for a
        generation slot (``MockBehaviour.capacity``); the spec-decode counters appear once
        *behaviour* (the server's) enables them, as vLLM shows them only then."""
        labels = f'engine="0",model_name="{_escape(self.model)}"'
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family(
            "vllm:num_requests_running", "gauge", "Number of requests in model execution batches."
        )
        running = max(len(self._live) - waiting, 0)
        lines.append(f"vllm:num_requests_running{{{labels}}} {float(running)!r}")
        family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.")
        lines.append(f"vllm:num_requests_waiting{{{labels}}} {float(waiting)!r}")
        counters = (
            ("vllm:prompt_tokens_total", "Number of prefill tokens processed.", self.prompt_tokens),
            (
                "vllm:generation_tokens_total",
                "Number of generation tokens processed.",
                self.generation_tokens,
            ),
        )
        for name, help_text, value in counters:
            family(name, "counter", help_text)
            lines.append(f"{name}{{{labels}}} {value}.0")
        family("vllm:request_success_total", "counter", "Count of successfully processed requests.")
        for reason, count in sorted(self.success.items()):
            lines.append(
                f'vllm:request_success_total{{{labels},finished_reason="{reason}"}} {count}.0'
            )
        family(
            "vllm:time_to_first_token_seconds",
            "histogram",
            "Histogram of time to first token in seconds.",
        )
        lines += self.ttft.lines("vllm:time_to_first_token_seconds", labels)
        family(
            "vllm:e2e_request_latency_seconds",
            "histogram",
            "Histogram of e2e request latency in seconds.",
        )
        lines += self.e2e.lines("vllm:e2e_request_latency_seconds", labels)
        if self.spec_enabled or behaviour.spec_decode is not None:
            lines += self._spec_lines(labels, behaviour)
        return ("\n".join(lines) + "\n").encode()

    def _spec_lines(self, labels: str, behaviour: MockBehaviour) -> list[str]:
        k = behaviour.spec_decode[0] if behaviour.spec_decode is not None else 0
        positions = max(k, len(self.accepted_per_pos))
        per_pos = self.accepted_per_pos + [0] * (positions - len(self.accepted_per_pos))
        lines = []
        for name, help_text, value in (
            (
                "vllm:spec_decode_num_drafts_total",
                "Number of spec decoding drafts.",
                self.num_drafts,
            ),
            (
                "vllm:spec_decode_num_draft_tokens_total",
                "Number of draft tokens.",
                self.num_draft_tokens,
            ),
            (
                "vllm:spec_decode_num_accepted_tokens_total",
                "Number of accepted tokens.",
                self.num_accepted_tokens,
            ),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            lines.append(f"{name}{{{labels}}} {value}.0")
        name = "vllm:spec_decode_num_accepted_tokens_per_pos_total"
        lines += [f"# HELP {name} Accepted tokens per draft position.", f"# TYPE {name} counter"]
        lines += [f'{name}{{{labels},position="{pos}"}} {n}.0' for pos, n in enumerate(per_pos)]
        return lines


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    for key in _PROMPT_KEYS:
        if key in body:
            return max(count_words(body[key]), 1)
    return 1


def _finish_reason(body: Mapping[str, Any], behaviour: MockBehaviour) -> str:
    requested = _int_field(body, "max_tokens", "max_completion_tokens", "max_new_tokens")
    return _length(requested, behaviour)[1].decode().strip('"')


def _escape(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
