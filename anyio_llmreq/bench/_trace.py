"""Trace replay (``--dataset-name trace``): a timestamped request trace read into
samples that carry their own send offsets, and how far the actual sends lagged them.

Formats (``--trace-format``, told from the file when not given):

==========  ===========================================================================
mooncake    Mooncake's JSONL (FAST'25): ``timestamp`` in milliseconds, ``input_length``,
            ``output_length``, ``hash_ids`` (one id per block of ``--block-size`` tokens,
            512 by default, the last block partial)
bailian     Alibaba Bailian's JSONL (qwen-bailian-usagetraces-anon): ``timestamp`` in
            seconds, ``input_length``, ``output_length``, ``hash_ids`` (16-token blocks by
            default); ``chat_id``/``parent_chat_id``/``turn`` are not needed, as each row
            describes the whole request the service received, history included
azure       the Azure LLM inference trace CSV: ``TIMESTAMP`` (a date and time, or
            seconds), ``ContextTokens``, ``GeneratedTokens``
jsonl       generic JSONL: ``timestamp`` in seconds (or ``timestamp_ms``), a ``prompt``
            text or an ``input_length`` (with ``hash_ids`` if wanted), and
            ``output_length`` (or ``output_tokens``, ``max_tokens``)
==========  ===========================================================================

Offsets are taken from the earliest request; ``--trace-start``/``--trace-duration`` cut
a window in the trace's own seconds and re-base the offsets to its start, then
``--time-scale`` multiplies them. Prompts made from lengths are token ids drawn from the
tokenizer's non-special ids: block *i* of a request is the block of its hash id (a
deterministic function of the id and ``--seed``), so requests sharing a hash id share
that block's tokens and the server's prefix cache sees the trace's reuse.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._config import UsageError
from ._datasets import SampleRequest, _bad_file, _kind, _read_jsonl_objects, _read_text
from ._schedule import RequestSchedule, nice_step
from ._selfcheck import SEND_LAG_P99_LIMIT_MS, _summary
from ._tokens import TokenCounter, WordCounter

if TYPE_CHECKING:
    from ._config import BenchConfig
    from ._execute import RequestRecord
    from ._plan import WorkloadPlan

__all__ = [
    "DEFAULT_BLOCK_SIZES",
    "TRACE_FORMATS",
    "TraceRecord",
    "TraceReplay",
    "detect_format",
    "read_trace",
    "replay_stats",
    "sample_trace",
    "trace_load_text",
    "trace_schedule",
]

TRACE_FORMATS = ("mooncake", "azure", "bailian", "jsonl")
#: Tokens per ``hash_ids`` block: Mooncake's 512, Bailian's 16.
DEFAULT_BLOCK_SIZES = {"mooncake": 512, "bailian": 16, "jsonl": 512, "azure": 512}
#: A request sent later than this after its trace time counts as late: the self-check's
#: send-lag limit.
LATE_MS = SEND_LAG_P99_LIMIT_MS
#: Most intervals the replay's timeline is summed into.
_BUCKETS = 120
#: Requests an interval of the timeline holds on average, at least.
_PER_BUCKET = 10

_SHAPES = {
    "mooncake": 'Mooncake traces are JSONL: {"timestamp": ms, "input_length": n, '
    '"output_length": n, "hash_ids": [...]}',
    "bailian": 'Bailian traces are JSONL: {"timestamp": s, "input_length": n, '
    '"output_length": n, "hash_ids": [...], "chat_id": ...}',
    "azure": "Azure traces are CSV with the columns TIMESTAMP, ContextTokens, GeneratedTokens",
    "jsonl": 'Trace JSONL lines are {"timestamp": s (or "timestamp_ms"), "prompt": text (or '
    '"input_length": n), "output_length": n}',
}


@attrs.frozen
class TraceRecord:
    """One request of a trace: its line in the file (1-based), its time in the trace's
    own seconds, and what to send (a prompt text, or a length and its hash blocks)."""

    line: int
    time: float
    input_length: int | None
    output_length: int | None
    hash_ids: tuple[int, ...] = ()
    prompt: str | None = None


# -- reading ----------------------------------------------------------------------------


def detect_format(path: str) -> str:
    """The trace format of *path*, told from its first record.

    Raises:
        UsageError: the file is empty, or its first record fits no format or two
            (``timestamp`` with lengths but no ``hash_ids`` is Mooncake's in ms or the
            generic JSONL's in seconds).
    """
    first = _first_line(path)
    if not first:
        raise _bad_file(path, "the trace is empty")
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except json.JSONDecodeError as exc:
            raise _bad_file(path, f"line 1: not valid JSON: {exc.msg}") from None
        keys = set(obj) if isinstance(obj, dict) else set()
        if {"chat_id", "parent_chat_id"} <= keys:
            return "bailian"
        if keys & {"timestamp_ms", "prompt"}:
            return "jsonl"
        if {"timestamp", "hash_ids"} <= keys:
            return "mooncake"
        fields = ", ".join(sorted(keys)) or "none"
        raise UsageError(
            "can't tell the trace format",
            where=f"--dataset-path {path}",
            why=f"its first record's fields ({fields}) fit no format or more than one: a "
            "'timestamp' with lengths is Mooncake's (milliseconds) or the generic JSONL's "
            "(seconds)",
            hint="Pass --trace-format mooncake, bailian, azure or jsonl.",
        )
    if "TIMESTAMP" in first and "ContextTokens" in first:
        return "azure"
    raise UsageError(
        "can't tell the trace format",
        where=f"--dataset-path {path}",
        why="the first line is neither a JSON object nor the Azure CSV header "
        "(TIMESTAMP,ContextTokens,GeneratedTokens)",
        hint="Pass --trace-format mooncake, bailian, azure or jsonl.",
    )


def _first_line(path: str) -> str:
    """The first non-blank line of *path*, stripped ("" when there is none), without
    reading the rest (a trace can be large)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    return line.strip()
    except UnicodeDecodeError:
        _read_text(path)  # raises the dataset's one-line error for a binary file
    except OSError:
        _read_text(path)  # likewise for a file that can't be read
    return ""


def read_trace(path: str, trace_format: str) -> list[TraceRecord]:
    """Every request of the trace file *path* in *trace_format*, in file order.

    Raises:
        UsageError: the first record or field that is missing or of the wrong kind,
            naming the file, the line and the field.
    """
    if trace_format == "azure":
        return _read_azure(path)
    shape = _SHAPES[trace_format]
    records = []
    for lineno, obj in _read_jsonl_objects(path, shape):
        field = _Fields(path, lineno, obj, shape)
        if trace_format == "jsonl":
            records.append(_jsonl_record(field))
            continue
        # Mooncake stamps milliseconds, Bailian seconds (as published).
        scale = 1e-3 if trace_format == "mooncake" else 1.0
        records.append(
            TraceRecord(
                line=lineno,
                time=field.number("timestamp") * scale,
                input_length=field.integer("input_length", least=1),
                output_length=field.integer("output_length", least=0),
                hash_ids=field.hash_ids(),
            )
        )
    if not records:
        raise _bad_file(path, "the trace has no requests", shape)
    return records


def _jsonl_record(field: _Fields) -> TraceRecord:
    obj = field.obj
    if "timestamp_ms" in obj:
        time = field.number("timestamp_ms") * 1e-3
    else:
        time = field.number("timestamp")
    prompt = None
    input_length = None
    if "prompt" in obj:
        prompt = field.text("prompt")
    else:
        input_length = field.integer("input_length", least=1)
    output_key = next(
        (k for k in ("output_length", "output_tokens", "max_tokens") if k in obj), None
    )
    output = field.integer(output_key, least=0) if output_key is not None else None
    return TraceRecord(
        line=field.lineno,
        time=time,
        input_length=input_length,
        output_length=output,
        hash_ids=field.hash_ids() if prompt is None else (),
        prompt=prompt,
    )


@attrs.frozen
class _Fields:
    """Typed access to one record's fields; a ``UsageError`` naming the file, the line
    and the field for a missing or wrong one."""

    path: str
    lineno: int
    obj: dict[str, Any]
    shape: str

    def _error(self, key: str, why: str) -> UsageError:
        return _bad_file(self.path, f"line {self.lineno}: field {key!r} {why}", self.shape)

    def _get(self, key: str) -> Any:
        if key not in self.obj:
            raise self._error(key, "is missing")
        return self.obj[key]

    def number(self, key: str) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._error(key, f"is {_kind(value)}, expected a number")
        if not math.isfinite(value):
            raise self._error(key, f"is {value}, expected a finite number")
        return float(value)

    def integer(self, key: str, *, least: int) -> int:
        value = self._get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(key, f"is {_kind(value)}, expected an integer")
        if value < least:
            raise self._error(key, f"is {value}, expected at least {least}")
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._error(key, f"is {_kind(value)}, expected a string")
        return value

    def hash_ids(self) -> tuple[int, ...]:
        value = self.obj.get("hash_ids")
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self._error("hash_ids", f"is {_kind(value)}, expected a list of integers")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                why = f"holds {item!r}, expected non-negative integers"
                raise self._error("hash_ids", why)
        return tuple(value)


_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def _read_azure(path: str) -> list[TraceRecord]:
    shape = _SHAPES["azure"]
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    header = reader.fieldnames or []
    missing = [c for c in _AZURE_COLUMNS if c not in header]
    if missing:
        why = f"line 1: the header has no column {', '.join(map(repr, missing))}"
        raise _bad_file(path, why, shape)
    records = []
    for row in reader:
        lineno = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue

        def error(key: str, why: str, lineno: int = lineno) -> UsageError:
            return _bad_file(path, f"line {lineno}: field {key!r} {why}", shape)

        lengths = []
        for key in ("ContextTokens", "GeneratedTokens"):
            raw = (row.get(key) or "").strip()
            try:
                value = int(float(raw)) if raw else -1
            except ValueError:
                raise error(key, f"is {raw!r}, expected an integer") from None
            least = 1 if key == "ContextTokens" else 0
            if value < least:
                raise error(key, f"is {raw or 'empty'}, expected at least {least}")
            lengths.append(value)
        stamp = (row.get("TIMESTAMP") or "").strip()
        records.append(
            TraceRecord(
                line=lineno,
                time=_azure_time(stamp, error),
                input_length=lengths[0],
                output_length=lengths[1],
            )
        )
    if not records:
        raise _bad_file(path, "the trace has no requests", shape)
    return records


def _azure_time(stamp: str, error: Any) -> float:
    """Seconds of a ``TIMESTAMP`` cell: a date and time (``2023-11-16 18:15:46.6805900``,
    taken as UTC when it names no zone) or a number of seconds."""
    from datetime import datetime, timezone

    try:
        return float(stamp)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise error("TIMESTAMP", f"is {stamp!r}, expected a date and time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


# -- window and schedule ------------------------------------------------------------------


@attrs.frozen
class _Window:
    records: list[TraceRecord]
    offsets: list[float]


def _select(
    records: Sequence[TraceRecord],
    path: str,
    *,
    limit: int,
    start: float,
    duration: float | None,
    time_scale: float,
) -> _Window:
    """The requests from *start* to *start* + *duration* seconds after the earliest (all
    when *duration* is None), in time order, the first *limit* when it is over 0; their
    offsets from the window's start times *time_scale*."""
    ordered = sorted(records, key=lambda r: r.time)  # stable: file order among equals
    origin = ordered[0].time + start
    end = math.inf if duration is None else origin + duration
    chosen = [r for r in ordered if origin <= r.time < end]
    if limit > 0:
        chosen = chosen[:limit]
    if not chosen:
        span = ordered[-1].time - ordered[0].time
        until = "the end" if duration is None else f"{start + duration:g} s"
        raise UsageError(
            "empty trace window",
            where="--trace-start/--trace-duration",
            why=f"no request of {path} from {start:g} s to {until} (the trace spans {span:g} s)",
            hint="Pick a window inside the trace.",
        )
    return _Window(chosen, [(r.time - origin) * time_scale for r in chosen])


def trace_schedule(samples: Sequence[SampleRequest]) -> RequestSchedule:
    """The samples' own send offsets as the schedule; each request's rate is the
    trace's mean to 4 digits (it names the result file), ``inf`` when every request is
    due at once."""
    delays = tuple(float(s.arrival or 0.0) for s in samples)
    rate = float(f"{offered_rate(delays):.4g}")
    return RequestSchedule(delays, (rate,) * len(delays))


def offered_rate(delays: Sequence[float]) -> float:
    """Requests per second between the first and the last offset (``inf`` when they are
    the same)."""
    if len(delays) < 2:
        return math.inf
    span = delays[-1] - delays[0]
    return (len(delays) - 1) / span if span > 0 else math.inf


# -- prompts ------------------------------------------------------------------------------


@attrs.define
class _Prompts:
    """Prompts of given lengths from token ids: block *h* of ``hash_ids`` is the same
    *block_size* ids wherever it appears; what the blocks don't cover is the request's
    own (seeded by its line)."""

    counter: TokenCounter
    seed: int
    block_size: int
    _allowed: Any = attrs.field(init=False, default=None)
    _blocks: dict[int, Any] = attrs.field(init=False, factory=dict)
    _texts: dict[int, str] = attrs.field(init=False, factory=dict)
    _words: Any = attrs.field(init=False, default=None)

    def _layout(self, record: TraceRecord) -> list[tuple[int | None, int]]:
        """``(hash id, tokens taken from its block)`` in prompt order, then ``(None,
        n)`` for the tokens the blocks don't cover: ``input_length`` tokens in all, less
        the special tokens the tokenizer adds."""
        assert record.input_length is not None
        n = max(record.input_length - self.counter.num_special_tokens_to_add(), 1)
        layout: list[tuple[int | None, int]] = []
        for h in record.hash_ids:
            if n <= 0:
                break
            take = min(self.block_size, n)
            layout.append((h, take))
            n -= take
        if n > 0:
            layout.append((None, n))
        return layout

    def _part(self, record: TraceRecord, hash_id: int | None, take: int) -> Any:
        if hash_id is None:
            return self._draw((1, record.line), take)
        block = self._blocks.get(hash_id)
        if block is None:
            block = self._blocks[hash_id] = self._draw((0, hash_id), self.block_size)
        return block[:take]

    def ids(self, record: TraceRecord) -> list[int]:
        """The prompt's token ids."""
        import numpy as np

        parts = [self._part(record, h, take) for h, take in self._layout(record)]
        ids: list[int] = np.concatenate(parts).tolist()
        return ids

    def text(self, record: TraceRecord) -> str:
        """The prompt: its ids decoded. Whitespace words decode word by word, so there
        the text is its parts' texts joined, each whole block decoded once (the same
        text, several times faster on a large trace)."""
        if not isinstance(self.counter, WordCounter):
            return self.counter.decode(self.ids(record))
        pieces = []
        for h, take in self._layout(record):
            if h is not None and take == self.block_size:
                text = self._texts.get(h)
                if text is None:
                    text = self._texts[h] = self._decode(self._part(record, h, take))
                pieces.append(text)
            else:
                pieces.append(self._decode(self._part(record, h, take)))
        return " ".join(pieces)

    def _decode(self, ids: Any) -> str:
        import numpy as np

        if self._words is None:
            # Each id's word, as decode gives it: one lookup a token, not one call.
            vocab = range(self.counter.vocab_size)
            self._words = np.array(self.counter.decode(vocab).split(), dtype=object)
        return " ".join(self._words[ids].tolist())

    def _draw(self, key: tuple[int, int], n: int) -> Any:
        import numpy as np

        if self._allowed is None:
            from ._datasets import _allowed_ids

            self._allowed = _allowed_ids(self.counter).astype(np.int64)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, *key])
        return self._allowed[rng.integers(0, len(self._allowed), size=n)]

    def sample(self, record: TraceRecord, output_len: int) -> SampleRequest:
        if record.prompt is not None:
            prompt = record.prompt
            return SampleRequest(prompt, self.counter.count_with_special(prompt), output_len)
        assert record.input_length is not None
        return SampleRequest(self.text(record), record.input_length, output_len)


def sample_trace(
    counter: TokenCounter,
    num_requests: int,
    path: str,
    *,
    trace_format: str | None = None,
    time_scale: float = 1.0,
    trace_start: float = 0.0,
    trace_duration: float | None = None,
    block_size: int | None = None,
    output_len: int | None = None,
    seed: int = 0,
    request_id_prefix: str = "",
    shuffle: bool = True,
    oversample: bool = True,
) -> list[SampleRequest]:
    """The requests of the trace *path* in time order, each with its send offset
    (``SampleRequest.arrival``): the window's first *num_requests* (all when 0 or less).

    *output_len* (``--output-len``) replaces every record's output length; an output
    length of 0 is sent as 1 (a server generates at least one token). Prompts given as
    text are sent as they are (no chat template) and counted with the tokenizer.
    *shuffle* and *oversample* mean nothing here: a trace keeps its order and is never
    repeated.

    Raises:
        UsageError: a bad file (its line and field), an unknown or ambiguous format, an
            empty window, a record without an output length and no *output_len*.
    """
    del shuffle, oversample  # see the docstring
    fmt = trace_format or detect_format(path)
    records = read_trace(path, fmt)
    window = _select(
        records,
        path,
        limit=num_requests,
        start=trace_start,
        duration=trace_duration,
        time_scale=time_scale,
    )
    size = block_size or DEFAULT_BLOCK_SIZES[fmt]
    prompts = _Prompts(counter, seed, size)
    samples = []
    for i, (record, offset) in enumerate(zip(window.records, window.offsets, strict=True)):
        out = output_len if output_len is not None else record.output_length
        if out is None:
            raise _bad_file(
                path,
                f"line {record.line}: no field 'output_length' (nor 'output_tokens', 'max_tokens')",
                "Give each line an output_length, or pass --output-len N.",
            )
        sample = prompts.sample(record, max(out, 1))
        samples.append(attrs.evolve(sample, request_id=f"{request_id_prefix}{i}", arrival=offset))
    return samples


def trace_load_text(config: BenchConfig, plan: WorkloadPlan) -> str:
    """The intro's load clause for a replay: where the times come from and the rate
    they offer."""
    fmt: str | None = config.trace_format
    if fmt is None:
        fmt = detect_format(config.dataset_path) if config.dataset_path else "?"
    delays = plan.schedule.delays
    span = delays[-1] if delays else 0.0
    rate = offered_rate(delays)
    rate_text = "all at once" if math.isinf(rate) else f"{rate:.4g} req/s on average"
    return (
        f"request times from the trace ({fmt}) x{config.time_scale:g}: {rate_text} "
        f"over {span:.3g} s (--request-rate does not apply)"
    )


# -- how the replay went ------------------------------------------------------------------


def _bucket_width(span: float, requests: int) -> float:
    """A round interval (1, 2 or 5 times a power of ten) that cuts *span* seconds into at
    most ``_BUCKETS`` intervals of about ``_PER_BUCKET`` *requests* or more each (fewer
    make a rate of noise)."""
    return nice_step(max(span / _BUCKETS, span * _PER_BUCKET / max(requests, 1), 1e-3))


@attrs.frozen(kw_only=True)
class TraceReplay:
    """How closely a replay kept the trace's times (milliseconds unless named).

    *send lag* is how long after its (scaled) trace time the client released each
    finished request; with ``--max-concurrency``, *start lag* adds the wait for a slot,
    so it is how late the request actually went out. The timeline sums, per interval of
    ``bucket_s`` seconds, the requests the trace offered (by trace time), the ones the
    client released and started (by when it did), and the send lag of the requests due in
    it (``None`` where none finished).
    """

    requests: int
    planned: int
    time_scale: float
    span_s: float
    offered_rate: float
    send_lag_p50_ms: float
    send_lag_p99_ms: float
    send_lag_max_ms: float
    late: int
    start_lag_p50_ms: float | None = None
    start_lag_p99_ms: float | None = None
    start_lag_max_ms: float | None = None
    late_start: int | None = None
    bucket_s: float = 1.0
    timeline: dict[str, list[Any]] = attrs.Factory(dict)

    def to_json(self) -> dict[str, Any]:
        """The result's ``trace_replay`` object."""
        data: dict[str, Any] = {
            "requests": self.requests,
            "planned": self.planned,
            "time_scale": self.time_scale,
            "span_s": self.span_s,
            "offered_rate": None if math.isinf(self.offered_rate) else self.offered_rate,
            "send_lag_p50_ms": self.send_lag_p50_ms,
            "send_lag_p99_ms": self.send_lag_p99_ms,
            "send_lag_max_ms": self.send_lag_max_ms,
            "late_ms": LATE_MS,
            "late": self.late,
        }
        if self.late_start is not None:
            data.update(
                start_lag_p50_ms=self.start_lag_p50_ms,
                start_lag_p99_ms=self.start_lag_p99_ms,
                start_lag_max_ms=self.start_lag_max_ms,
                late_start=self.late_start,
            )
        data["timeline"] = {"bucket_s": self.bucket_s, **self.timeline}
        return data

    def report_lines(self) -> list[str]:
        """The report's "Trace replay" section."""

        def line(label: str, value: str) -> str:
            return f"{label:<40} {value}"

        def share(n: int) -> str:
            return f"{n} ({n / self.requests:.1%})" if self.requests else "0"

        rate = "inf" if math.isinf(self.offered_rate) else f"{self.offered_rate:.2f}"
        lines = ["{s:{c}^{n}}".format(s="Trace replay", n=50, c="-")]
        lines.append(line("Trace requests finished/planned:", f"{self.requests}/{self.planned}"))
        lines.append(
            line("Time scale, trace span (s):", f"x{self.time_scale:g}, {self.span_s:.2f}")
        )
        lines.append(line("Offered rate, mean (req/s):", rate))
        lines.append(
            line(
                "Send lag vs trace P50/P99/max (ms):",
                f"{self.send_lag_p50_ms:.2f} / {self.send_lag_p99_ms:.2f} / "
                f"{self.send_lag_max_ms:.2f}",
            )
        )
        lines.append(line(f"Sent over {LATE_MS:g} ms late:", share(self.late)))
        if self.late_start is not None:
            lines.append(
                line(
                    "Lag incl. queue P50/P99/max (ms):",
                    f"{self.start_lag_p50_ms:.2f} / {self.start_lag_p99_ms:.2f} / "
                    f"{self.start_lag_max_ms:.2f}",
                )
            )
            lines.append(line(f"Started over {LATE_MS:g} ms late:", share(self.late_start)))
        return lines


def replay_stats(
    plan: WorkloadPlan,
    records: Sequence[RequestRecord],
    *,
    time_scale: float = 1.0,
    send: tuple[float, float, float] | None = None,
) -> TraceReplay:
    """How far the finished *records* of *plan* (a replay at *time_scale*) lagged the
    trace. *send*: the records' send lag P50/P99/max (ms), when the self-check has it."""
    delays = plan.schedule.delays
    span = delays[-1] if delays else 0.0
    lags = [r.send_lag for r in records]
    if send is None:
        send = _summary(lags)
    late_s = LATE_MS / 1000.0
    queued = plan.max_concurrency is not None
    start_lags = [max(r.send_lag + r.output.client_queue_time, 0.0) for r in records]
    start = _summary(start_lags) if queued else (None, None, None)
    last = max(span, max((r.dispatched for r in records), default=0.0))
    bucket = _bucket_width(last, len(plan.requests))
    return TraceReplay(
        requests=len(records),
        planned=len(plan.requests),
        time_scale=time_scale,
        span_s=span,
        offered_rate=offered_rate(delays),
        send_lag_p50_ms=send[0],
        send_lag_p99_ms=send[1],
        send_lag_max_ms=send[2],
        late=sum(lag > late_s for lag in lags),
        start_lag_p50_ms=start[0],
        start_lag_p99_ms=start[1],
        start_lag_max_ms=start[2],
        late_start=sum(lag > late_s for lag in start_lags) if queued else None,
        bucket_s=bucket,
        timeline=_timeline(delays, records, bucket, queued),
    )


def _timeline(
    delays: Sequence[float], records: Sequence[RequestRecord], bucket: float, queued: bool
) -> dict[str, list[Any]]:
    """Per interval: requests/s offered, released and (with a concurrency cap) started,
    and the send lag P50/P99/max (ms) of the requests due in it."""
    last = max([*delays, *(r.dispatched for r in records), 0.0])
    count = int(last // bucket) + 1

    def rate(times: Sequence[float]) -> list[float]:
        counts = [0] * count
        for t in times:
            counts[min(int(max(t, 0.0) // bucket), count - 1)] += 1
        return [c / bucket for c in counts]

    lags: list[list[float]] = [[] for _ in range(count)]
    for r in records:
        lags[min(int(max(r.scheduled, 0.0) // bucket), count - 1)].append(r.send_lag)
    stats = [_summary(x) if x else None for x in lags]
    timeline: dict[str, list[Any]] = {
        "t": [round(i * bucket, 9) for i in range(count)],
        "offered_rps": rate(delays),
        "dispatched_rps": rate([r.dispatched for r in records]),
    }
    if queued:
        timeline["started_rps"] = rate([r.dispatched + r.output.client_queue_time for r in records])
    for k, name in enumerate(("lag_p50_ms", "lag_p99_ms", "lag_max_ms")):
        timeline[name] = [None if s is None else s[k] for s in stats]
    return timeline
