"""Where each request's time went: its HTTP phases and its reasoning, summed up.

The engine stamps, per request, when the connection opened (DNS, TCP, TLS), when the
request was written, when the response head began and was complete and when the body
began (``RequestFuncOutput.http_phases``), and when the first reasoning and the first
visible content arrived. Here they become the run's figures: TTFT split into the
client and network part (start to request written), the server's answer to the
request (to the response head) and its queue and prefill (head to first output).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .._models import RequestFuncOutput

__all__ = ["PHASE_KEYS", "PhaseSummary", "detailed_lists", "summarize_phases"]

#: ``http_phases`` entries that are instants (seconds after the request's start).
PHASE_KEYS = ("request_sent", "first_byte", "headers", "first_body_byte")
#: Entries that are how long the request's new connection took to open.
_OPEN_KEYS = ("dns", "connect", "tls")
_MS = 1000.0  # seconds to ms, for the split


def _stats(values: Sequence[float], percentiles: Sequence[float]) -> dict[str, float] | None:
    """Mean, median and *percentiles* of *values* (seconds) in ms, keyed as the result
    file keys them (``mean``, ``median``, ``p99``); ``None`` if empty."""
    if not values:
        return None
    from ._metrics import _stats as metric_stats
    from ._report import percentile_word

    mean, median, _, chosen = metric_stats(list(values), percentiles)
    return {"mean": mean, "median": median} | {f"p{percentile_word(p)}": v for p, v in chosen}


@attrs.frozen
class PhaseSummary:
    """The run's HTTP phases and reasoning timings (successful requests only).

    ``split_ms`` is TTFT's mean split: ``client_network`` (start to request written),
    ``server_head`` (written to the response head) and ``queue_prefill`` (head to the
    first output); they add up to the mean TTFT of the requests with phases.
    """

    requests: int
    new_connections: int
    phases_ms: dict[str, dict[str, float] | None]
    split_ms: dict[str, float] | None
    reasoning_requests: int = 0
    reasoning_tokens: int | None = None
    ttft_reasoning_ms: dict[str, float] | None = None
    ttft_content_ms: dict[str, float] | None = None

    def result_keys(self) -> dict[str, Any]:
        """The result file's keys (always written: they are summaries)."""
        keys: dict[str, Any] = {}
        if self.requests:
            keys["http_phases_ms"] = {
                "requests": self.requests,
                "new_connections": self.new_connections,
                **self.phases_ms,
            }
            keys["ttft_split_ms"] = self.split_ms
        if self.reasoning_requests:
            keys["reasoning"] = {
                "requests": self.reasoning_requests,
                "total_reasoning_tokens": self.reasoning_tokens,
                "ttft_reasoning_ms": self.ttft_reasoning_ms,
                "ttft_content_ms": self.ttft_content_ms,
            }
        return keys

    def report_lines(self) -> list[str]:
        """The terminal's sections: TTFT split (with our transport), reasoning (when
        any request reasoned)."""
        from ._report import _line  # the report imports this module

        lines: list[str] = []
        split = self.split_ms
        if self.requests and split is not None:
            lines.append("{s:{c}^{n}}".format(s="TTFT split (mean)", n=50, c="-"))
            lines.append(
                _line("New connections (requests):", f"{self.new_connections} ({self.requests})")
            )
            connect = self.phases_ms.get("open")
            if connect is not None:
                lines.append(_line("Connection setup, new ones (ms):", connect["mean"]))
            lines.append(_line("Start to request written (ms):", split["client_network"]))
            lines.append(_line("Written to response head (ms):", split["server_head"]))
            lines.append(_line("Head to first output (ms):", split["queue_prefill"]))
        if self.reasoning_requests:
            lines.append("{s:{c}^{n}}".format(s="Reasoning", n=50, c="-"))
            lines.append(_line("Requests with reasoning:", self.reasoning_requests))
            if self.reasoning_tokens is not None:
                lines.append(_line("Reasoning tokens (server):", self.reasoning_tokens))
            for name, stats in (
                ("first reasoning", self.ttft_reasoning_ms),
                ("first content", self.ttft_content_ms),
            ):
                if stats is not None:
                    lines.append(_line(f"Mean time to {name} (ms):", stats["mean"]))
                    lines.append(_line(f"Median time to {name} (ms):", stats["median"]))
        return lines


def summarize_phases(
    outputs: Sequence[RequestFuncOutput], percentiles: Sequence[float] = (99.0,)
) -> PhaseSummary:
    """The run's summary of *outputs*' HTTP phases and reasoning timings."""
    ok = [o for o in outputs if o.success]
    timed = [(o, o.http_phases) for o in ok if o.http_phases]
    phases: dict[str, dict[str, float] | None] = {}
    for key in PHASE_KEYS:
        values = [p[key] for _, p in timed if p.get(key) is not None]
        phases[key] = _stats(values, percentiles)
    opened = [p for _, p in timed if not p.get("connection_reused")]
    for key in _OPEN_KEYS:
        phases[key] = _stats([p[key] for p in opened if p.get(key) is not None], percentiles)
    phases["open"] = _stats([sum(p.get(k) or 0.0 for k in _OPEN_KEYS) for p in opened], percentiles)
    split = _split([(o.ttft, p) for o, p in timed])
    reasoned = [o for o in ok if o.ttft_reasoning is not None]
    counts = [o.reasoning_tokens for o in reasoned if o.reasoning_tokens is not None]
    return PhaseSummary(
        requests=len(timed),
        new_connections=len(opened),
        phases_ms=phases,
        split_ms=split,
        reasoning_requests=len(reasoned),
        reasoning_tokens=sum(counts) if counts else None,
        ttft_reasoning_ms=_stats(
            [o.ttft_reasoning for o in reasoned if o.ttft_reasoning is not None], percentiles
        ),
        ttft_content_ms=_stats(
            [o.ttft_content for o in reasoned if o.ttft_content is not None], percentiles
        ),
    )


def _split(timed: Sequence[tuple[float, dict[str, Any]]]) -> dict[str, float] | None:
    """TTFT's mean split over the requests whose phases are all known."""
    rows = [
        (ttft, p["request_sent"], p["headers"])
        for ttft, p in timed
        if p.get("request_sent") is not None and p.get("headers") is not None
    ]
    if not rows:
        return None
    n = len(rows)
    sent = sum(r[1] for r in rows) / n
    head = sum(r[2] for r in rows) / n
    ttft = sum(r[0] for r in rows) / n
    return {
        "client_network": sent * _MS,
        "server_head": (head - sent) * _MS,
        "queue_prefill": (ttft - head) * _MS,
        "ttft": ttft * _MS,
    }


def detailed_lists(outputs: Sequence[RequestFuncOutput]) -> dict[str, list[Any]]:
    """The per-request lists ``--save-detailed`` adds (seconds, as vLLM's ``ttfts``)."""
    return {
        "http_phases": [o.http_phases for o in outputs],
        "ttfts_reasoning": [o.ttft_reasoning for o in outputs],
        "ttfts_content": [o.ttft_content for o in outputs],
        "reasoning_tokens": [o.reasoning_tokens for o in outputs],
    }
