"""``run_benchmark``: the serving benchmark from a ``BenchConfig`` to a ``BenchmarkResult``.

The order is vLLM's: resolve the server and model, load the tokenizer, sample the
dataset, compute the arrival schedule, optionally probe and warm up, run, compute the
metrics, print the report and save the files. Nothing measured is lost on Ctrl-C or
SIGTERM: the run stops, and the report and files cover every finished request.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import secrets
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO, Any

import anyio
import attrs

from .._client import Client
from .._engine import Timeouts
from .._media import needs_media, prepare_media
from .._models import RequestFuncInput, RequestFuncOutput
from ..backends._registry import get_backend
from ._config import BenchConfig, default_endpoint
from ._datasets import SampleRequest, sample_requests
from ._drive import (
    PhaseStats,
    RequestRecord,
    ScheduledRequest,
    drive,
    one_line_error,
    send_counted,
)
from ._metrics import BenchmarkMetrics, calculate_metrics
from ._redact import Scrubber, redact_url
from ._report import (
    DETAILED_KEYS,
    benchmark_result_dict,
    format_report,
    result_filename,
    run_header,
    save_result,
)
from ._schedule import RequestSchedule, get_request_schedule, rps_change_events
from ._selfcheck import SelfCheck, evaluate_self_check
from ._tokens import TokenCounter, WordCounter, load_token_counter

__all__ = ["BenchmarkResult", "arun_benchmark", "run_benchmark"]

_MAX_ERRORS_SHOWN = 10

_SOURCE_LABELS = {
    "usage": "server usage",
    "server": "server",
    "events": "server token events",
    "tokenizer": "tokenizer",
    "words": "whitespace words",
    "none": "none (counted as 1)",
}


@attrs.frozen(kw_only=True)
class BenchmarkResult:
    """What a run measured.

    ``result`` is the result JSON as written (vLLM's keys plus ours; the per-request lists
    only with ``save_detailed``); ``records`` holds every finished request in request
    order; ``report`` the printed lines.
    """

    config: BenchConfig
    metrics: BenchmarkMetrics
    result: dict[str, Any]
    records: list[RequestRecord]
    self_check: SelfCheck
    report: list[str]
    duration: float
    interrupted: bool
    not_finished: int
    result_path: str | None
    base_url: str = attrs.field(repr=redact_url)
    model_id: str
    input_tokens_source: str

    @property
    def outputs(self) -> list[RequestFuncOutput]:
        return [r.output for r in self.records]


class _JsonlWriter:
    """``--output-jsonl``: one line per finished request, flushed as it finishes."""

    def __init__(self, path: str | None, scrub: Scrubber) -> None:
        self._file: IO[str] | None = None
        self._scrub = scrub
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            self._file = open(path, "w", encoding="utf-8")

    def write(self, record: RequestRecord) -> None:
        if self._file is not None:
            self._file.write(json.dumps(self._scrub.data(record.to_json())) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Progress:
    """The tqdm bar: requests done, failures and output tokens/s in the postfix."""

    def __init__(self, total: int, disable: bool) -> None:
        self._bar: Any = None
        if not disable:
            import importlib

            tqdm = importlib.import_module("tqdm").tqdm
            self._bar = tqdm(total=total, unit="req", dynamic_ncols=True)
        self._failed = 0
        self._tokens = 0
        self._t0 = time.perf_counter()
        self._last = 0.0

    def update(self, record: RequestRecord) -> None:
        out = record.output
        if not out.success:
            self._failed += 1
        else:
            self._tokens += out.output_tokens or (len(out.itl) + 1)
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        if now - self._last >= 0.5:
            self._last = now
            rate = self._tokens / max(now - self._t0, 1e-9)
            self._bar.set_postfix(failed=self._failed, tok_s=f"{rate:.0f}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            rate = self._tokens / max(time.perf_counter() - self._t0, 1e-9)
            self._bar.set_postfix(failed=self._failed, tok_s=f"{rate:.0f}", refresh=False)
            self._bar.close()


def _say(config: BenchConfig, stream: IO[str], scrub: Scrubber) -> Callable[[str], None]:
    def say(text: str) -> None:
        if not config.quiet:
            print(scrub.text(text), file=stream, flush=True)

    return say


def _models_headers(config: BenchConfig) -> dict[str, str]:
    """The headers of ``GET /v1/models``: the requests' bearer key (``OPENAI_API_KEY``,
    as the client sends it), then ``--header``, whose Authorization wins in any case."""
    from .._engine import add_bearer
    from ..backends._base import api_key_from_env

    return add_bearer(dict(config.headers), api_key_from_env())


async def _resolve_model(config: BenchConfig, base_url: str, verify: bool) -> tuple[str, str]:
    """``(model_name, model_id)``: the flags, or the server's first model (vLLM).

    Raises:
        RuntimeError: the server didn't answer with a model list (the reason, one line).
    """
    if config.model is not None:
        return config.served_model_name or config.model, config.model
    import httpx

    url = f"{base_url}/v1/models"
    try:
        async with httpx.AsyncClient(verify=verify, timeout=30.0) as http:
            response = await http.get(url, headers=_models_headers(config))
            if response.is_error:
                raise RuntimeError(f"HTTP {response.status_code} {response.reason_phrase}")
            entry = response.json()["data"][0]
            model_id = entry.get("root") or entry["id"]
            name = entry["id"]
    except Exception as exc:
        reason = str(exc) if isinstance(exc, RuntimeError) else one_line_error(exc)
        raise RuntimeError(
            f"could not ask {redact_url(url)} for the model ({reason}); pass --model"
        ) from None
    return config.served_model_name or name, model_id


def _token_counter(
    config: BenchConfig, model_id: str, say: Callable[[str], None]
) -> tuple[TokenCounter, str]:
    """The counter for prompts and outputs, and its id for the result JSON."""
    if config.tokenizer_mode == "words":
        return WordCounter(), "whitespace-words"
    if config.tokenizer is not None:
        return (
            load_token_counter(config.tokenizer, config.tokenizer_mode, config.trust_remote_code),
            config.tokenizer,
        )
    if config.embedded:
        return WordCounter(), "whitespace-words"
    try:
        counter = load_token_counter(model_id, config.tokenizer_mode, config.trust_remote_code)
    except Exception as exc:
        say(
            f"WARNING: could not load the tokenizer {model_id!r} ({type(exc).__name__}); "
            "prompt lengths are whitespace words and outputs without server usage are "
            "counted as words. Pass --tokenizer to fix."
        )
        return WordCounter(), "whitespace-words"
    return counter, model_id


def _dataset_options(config: BenchConfig) -> dict[str, Any]:
    name = config.dataset_name
    if name == "random":
        return {
            "input_len": config.random_input_len,
            "output_len": config.random_output_len,
            "range_ratio": config.random_range_ratio,
            "prefix_len": config.random_prefix_len,
        }
    if name == "prefix-repetition":
        return {
            "prefix_len": config.prefix_repetition_prefix_len,
            "suffix_len": config.prefix_repetition_suffix_len,
            "num_prefixes": config.prefix_repetition_num_prefixes,
            "output_len": config.prefix_repetition_output_len,
        }
    if name == "sharegpt":
        return {"output_len": config.sharegpt_output_len}
    if name == "sonnet":
        return {
            "input_len": config.sonnet_input_len,
            "output_len": config.sonnet_output_len,
            "prefix_len": config.sonnet_prefix_len,
            "chat_template": config.backend != "openai-chat",
        }
    if name == "custom":
        return {"output_len": config.custom_output_len}
    return {}


def _extra_body(config: BenchConfig) -> dict[str, Any] | None:
    body: dict[str, Any] = {}
    if not config.is_pooling:
        body.update(config.sampling_params())
    if config.backend == "llama.cpp":
        body["cache_prompt"] = False
    if config.extra_body:
        body.update(config.extra_body)
    return body or None


def _ignore_eos(config: BenchConfig, openai_compatible: set[str]) -> bool:
    # vLLM #28227: random prompts on OpenAI-compatible servers always ignore EOS.
    if config.dataset_name == "random" and config.backend in openai_compatible:
        return True
    return config.ignore_eos


def _build_inputs(
    config: BenchConfig,
    samples: list[SampleRequest],
    *,
    api_url: str,
    model_id: str,
    model_name: str,
    ignore_eos: bool,
) -> list[RequestFuncInput]:
    extra = _extra_body(config)
    headers = dict(config.headers) or None
    shape = _SHAPERS.get(config.backend)
    return [
        RequestFuncInput(
            prompt=shape(s.prompt) if shape is not None else s.prompt,
            api_url=api_url,
            prompt_len=s.prompt_len,
            output_len=s.expected_output_len,
            model=model_id,
            model_name=model_name,
            logprobs=config.logprobs,
            extra_body=dict(extra) if extra else None,
            ignore_eos=ignore_eos,
            request_id=s.request_id or None,
            extra_headers=headers,
            timeout=config.timeout,
            multi_modal_content=_synthetic_audio(config.seed + i)
            if config.backend == "openai-audio"
            else None,
        )
        for i, s in enumerate(samples)
    ]


def _rerank_prompt(prompt: Any) -> Any:
    """A text prompt as vllm-rerank's ``[query, document, ...]``: its first words as the
    query, its two halves as the documents."""
    if not isinstance(prompt, str):
        return prompt
    words = prompt.split()
    half = max(len(words) // 2, 1)
    return [" ".join(words[:8]), " ".join(words[:half]), " ".join(words[half:]) or prompt]


_SHAPERS: dict[str, Callable[[Any], Any]] = {"vllm-rerank": _rerank_prompt}


def _synthetic_audio(seed: int, seconds: float = 1.0, rate: int = 16_000) -> dict[str, Any]:
    """Quiet noise to transcribe: text datasets carry no audio."""
    import numpy as np

    samples = np.random.default_rng(seed).normal(0.0, 0.01, int(seconds * rate))
    return {"audio": (samples.astype(np.float32), rate)}


def _preflight(backend: str, first: RequestFuncInput) -> None:
    """Build the first request before anything runs, so a configuration that can't work
    stops the bench with its reason (``ConfigError``) instead of failing every request.
    Raw audio is read and encoded first, as ``Client.send`` does (backends do no I/O)."""
    if needs_media(first):
        first = prepare_media(first)
    get_backend(backend).build_payload(first)


async def _wait_for_endpoint(
    client: Client,
    backend: str,
    test: RequestFuncInput,
    limit_s: float,
    say: Callable[[str], None],
) -> RequestFuncOutput:
    """vLLM's ready check: retry the test request until it succeeds or time runs out."""
    deadline = anyio.current_time() + limit_s
    out = RequestFuncOutput(error="not tried")
    while True:
        out = await send_counted(client, backend, test)
        if out.success:
            return out
        remaining = deadline - anyio.current_time()
        last_line = (out.error.strip().splitlines() or [""])[-1]
        say(f"Endpoint not ready yet: {last_line}")
        if remaining <= 0:
            return out
        await anyio.sleep(min(5.0, remaining))


async def _warmup(
    client: Client, backend: str, test: RequestFuncInput, n: int, limit: int | None
) -> None:
    limiter = anyio.CapacityLimiter(limit or n)

    async def one() -> None:
        async with limiter:
            await send_counted(client, backend, test)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)


def _input_source_text(
    config: BenchConfig, metrics: BenchmarkMetrics, kind: str, tokenizer_id: str
) -> str:
    """Where "Total input tokens" came from: the client's counter (vLLM's rule), or for
    pooling backends the server's usage, which vLLM puts in ``prompt_len``."""
    counted = (
        "whitespace words (the mock server's rule)"
        if kind == "words"
        else f"tokenizer {tokenizer_id}"
    )
    if config.is_pooling and metrics.input_server_reported:
        reported = metrics.input_server_reported
        if reported >= metrics.completed:
            return "server usage (pooling, as vLLM)"
        return f"server usage ({reported}/{metrics.completed}), else {counted}"
    return counted


def _source_text(sources: dict[str, int], completed: int) -> str:
    if not sources:
        return "n/a"
    return ", ".join(
        f"{_SOURCE_LABELS.get(k, k)} ({v}/{completed})"
        for k, v in sorted(sources.items(), key=lambda kv: -kv[1])
    )


async def arun_benchmark(
    config: BenchConfig,
    *,
    stop_after: int | None = None,
    stdout: IO[str] | None = None,
    handle_signals: bool = True,
) -> BenchmarkResult:
    """Run the benchmark described by *config* in the running event loop.

    *stop_after* stops the run (as Ctrl-C would) once that many requests finished.
    With *handle_signals*, SIGINT and SIGTERM stop the run the same way.

    Raises:
        ValueError: an invalid combination of options.
        ConfigError: an unknown backend, or requests the backend can't build.
        RuntimeError: the ready check failed.
    """
    from .._compat import OPENAI_COMPATIBLE_BACKENDS

    stream = stdout or sys.stdout
    scrub = config.scrubber()
    say = _say(config, stream, scrub)
    openai_compatible = set(OPENAI_COMPATIBLE_BACKENDS)
    config.validate(openai_compatible)
    backend = config.backend
    get_backend(backend)  # ConfigError early for an unknown name
    verify = not config.insecure

    failure: Exception | None = None
    async with contextlib.AsyncExitStack() as stack:
        if config.embedded:
            from ..testing import MockBehaviour, open_mock_server

            server = await stack.enter_async_context(
                open_mock_server(
                    MockBehaviour(ttft=config.mock_ttft, itl=config.mock_itl),
                    model=config.model or "mock-model",
                    record=False,
                )
            )
            base_url = server.base_url
        else:
            resolved = config.resolved_base_url()
            assert resolved is not None
            base_url = resolved
        try:
            return await _run(
                config,
                base_url,
                say,
                stream,
                scrub,
                stop_after=stop_after,
                handle_signals=handle_signals,
                verify=verify,
                openai_compatible=openai_compatible,
            )
        except (ValueError, RuntimeError) as exc:
            # Re-raised below, outside the embedded server's task group, which would
            # wrap it in an exception group: the caller sees the error itself.
            failure = exc
    assert failure is not None
    clean = _scrubbed(failure, scrub)
    if clean is failure:
        raise failure
    raise clean from None  # the original's message holds a secret: not even as context


def _scrubbed(exc: Exception, scrub: Scrubber) -> Exception:
    """*exc*, or one of its type with the secrets replaced in its message (a server's
    error, echoed in a ready-check or worker failure, may quote the credentials)."""
    text = str(exc)
    clean = scrub.text(text)
    if clean == text:
        return exc
    try:
        return type(exc)(clean)
    except Exception:
        return RuntimeError(clean)


async def _run(
    config: BenchConfig,
    base_url: str,
    say: Callable[[str], None],
    stream: IO[str],
    scrub: Scrubber,
    *,
    stop_after: int | None,
    handle_signals: bool,
    verify: bool,
    openai_compatible: set[str],
) -> BenchmarkResult:
    backend = config.backend
    model_name, model_id = await _resolve_model(config, base_url, verify)
    counter, tokenizer_id = _token_counter(config, model_id, say)
    num_prompts = config.resolved_num_prompts()
    request_rate = config.resolved_request_rate()
    prefix = config.request_id_prefix
    if prefix is None:
        prefix = f"bench-{secrets.token_hex(4)}-"
    samples = sample_requests(
        config.dataset_name,
        counter,
        num_prompts,
        path=config.dataset_path,
        seed=config.seed,
        request_id_prefix=prefix,
        options=_dataset_options(config),
    )
    endpoint = config.endpoint or default_endpoint(backend, model_id)
    api_url = base_url + endpoint
    inputs = _build_inputs(
        config,
        samples,
        api_url=api_url,
        model_id=model_id,
        model_name=model_name,
        ignore_eos=_ignore_eos(config, openai_compatible),
    )
    if any(map(needs_media, inputs)):
        # Audio is read and encoded once, before the run, not per request on its clock.
        inputs = await anyio.to_thread.run_sync(lambda: list(map(prepare_media, inputs)))
    if inputs:
        _preflight(backend, inputs[0])
    ramp_up = None
    if config.ramp_up_strategy is not None:
        assert config.ramp_up_start_rps is not None and config.ramp_up_end_rps is not None
        ramp_up = (config.ramp_up_strategy, config.ramp_up_start_rps, config.ramp_up_end_rps)
    schedule: RequestSchedule = get_request_schedule(
        len(inputs),
        request_rate,
        config.burstiness,
        config.ramp_up_strategy,
        config.ramp_up_start_rps,
        config.ramp_up_end_rps,
        seed=config.seed,
    )
    scheduled = [
        ScheduledRequest(i, rin, delay)
        for i, (rin, delay) in enumerate(zip(inputs, schedule.delays, strict=True))
    ]
    timeouts = Timeouts(total=config.timeout)
    workers = max(1, min(config.workers, len(scheduled), config.max_concurrency or len(scheduled)))

    where = "embedded mock server" if config.embedded else redact_url(base_url)
    say(f"Benchmarking {backend} at {where}{endpoint}, model {model_name}")
    rate_text = "inf" if request_rate == math.inf else f"{request_rate:g}"
    if ramp_up is not None:
        rate_text = f"{ramp_up[0]} ramp-up {ramp_up[1]}->{ramp_up[2]}"
    say(
        f"{len(inputs)} prompts ({config.dataset_name}), request rate "
        f"{rate_text} req/s, burstiness "
        f"{config.burstiness:g}, max concurrency {config.max_concurrency}, loop {config.loop}, "
        f"workers {workers}"
    )
    if config.embedded:
        say(
            f"Embedded mock server: TTFT {config.mock_ttft * 1000:g} ms, ITL "
            f"{config.mock_itl * 1000:g} ms; tokens are whitespace words, no tokenizer "
            "download (pass --base-url to benchmark a real server)"
        )

    jsonl = _JsonlWriter(config.output_jsonl, scrub)
    progress: _Progress | None = None
    try:
        async with Client(timeouts=timeouts, verify=verify) as client:
            if config.ready_check_timeout_sec > 0:
                say("Waiting for the endpoint to become ready...")
                test = await _wait_for_endpoint(
                    client, backend, inputs[0], config.ready_check_timeout_sec, say
                )
                if not test.success:
                    raise RuntimeError(
                        "Initial test run failed - Please make sure benchmark arguments "
                        f"are correctly specified. Error: {test.error}"
                    )
            if config.num_warmups > 0:
                say(f"Warming up with {config.num_warmups} requests...")
                await _warmup(
                    client, backend, inputs[0], config.num_warmups, config.max_concurrency
                )
            progress = _Progress(len(inputs), config.disable_tqdm or config.quiet)

            def on_record(rec: RequestRecord) -> None:
                if scrub:
                    _scrub_output(rec.output, scrub)
                jsonl.write(rec)
                assert progress is not None
                progress.update(rec)

            gc.collect()
            gc.freeze()
            wall_start = datetime.now()
            cpu0 = time.process_time()
            if workers == 1:
                start = time.perf_counter()
                records, stats = await drive(
                    client,
                    backend,
                    scheduled,
                    start=start,
                    max_concurrency=config.max_concurrency,
                    on_record=on_record,
                    signals=None if handle_signals else (),
                    stop_after=stop_after,
                )
                all_stats = [stats]
                duration = stats.end - start
                parent_cpu = time.process_time() - cpu0
                cpu_list = [parent_cpu]
            else:
                from ._workers import WorkerSpec, run_workers, split_concurrency, split_requests

                shares = split_concurrency(config.max_concurrency, workers)
                parts = split_requests(scheduled, workers)
                specs = [
                    WorkerSpec(
                        worker=k,
                        loop=config.loop,
                        backend=backend,
                        requests=parts[k],
                        max_concurrency=shares[k],
                        timeouts=timeouts,
                        verify=verify,
                    )
                    for k in range(workers)
                ]
                records, all_stats, start = await run_workers(
                    specs, on_record=on_record, handle_signals=handle_signals
                )
                duration = max(s.end for s in all_stats) - start if all_stats else 0.0
                parent_cpu = time.process_time() - cpu0
                cpu_list = [s.cpu_s for s in all_stats]
                if config.embedded:
                    cpu_list.append(parent_cpu)
            gc.unfreeze()
    finally:
        if progress is not None:
            progress.close()
        jsonl.close()

    return _finish(
        config,
        say,
        scrub,
        records,
        all_stats,
        scheduled,
        schedule,
        duration=duration,
        cpu_list=cpu_list,
        wall_start=wall_start,
        counter=counter,
        model_id=model_id,
        tokenizer_id=tokenizer_id,
        request_rate=request_rate,
        ramp_up=ramp_up,
        base_url=base_url,
        num_prompts=num_prompts,
    )


def _scrub_output(out: RequestFuncOutput, scrub: Scrubber) -> None:
    """Replace secrets a server echoed in the error of *out*, once, so the report, the
    files and the records all hold the clean text. The generated text is left as it
    came, since output tokens may be counted from it; the files get it scrubbed."""
    out.error = scrub.text(out.error)


def _finish(
    config: BenchConfig,
    say: Callable[[str], None],
    scrub: Scrubber,
    records: list[RequestRecord],
    all_stats: list[PhaseStats],
    scheduled: list[ScheduledRequest],
    schedule: RequestSchedule,
    *,
    duration: float,
    cpu_list: list[float],
    wall_start: datetime,
    counter: TokenCounter,
    model_id: str,
    tokenizer_id: str,
    request_rate: float,
    ramp_up: tuple[str, float, float] | None,
    base_url: str,
    num_prompts: int,
) -> BenchmarkResult:
    records = sorted(records, key=lambda r: r.index)
    outputs = [r.output for r in records]
    interrupted = any(s.interrupted for s in all_stats) or len(records) < len(scheduled)
    not_finished = len(scheduled) - len(records)
    selected = config.percentile_metric_names()
    goodput = dict(config.goodput) if config.goodput else None

    errors = [o.error for o in outputs if not o.success and o.error]
    if errors:
        say(f"{len(errors)} request(s) failed. First errors:")
        for err in errors[:_MAX_ERRORS_SHOWN]:
            say(f"  {err}")
    if interrupted:
        say(
            f"Interrupted: {len(records)} of {len(scheduled)} requests finished; "
            f"the report covers those ({not_finished} in flight or never sent are left out)."
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics, actual_output_lens = calculate_metrics(
            outputs,
            duration,
            count_tokens=counter.count,
            count_source=counter.kind,
            selected_percentiles=config.percentiles(),
            goodput_config=goodput,
        )
    for w in caught:
        say(f"WARNING: {w.message}")

    events = None
    if ramp_up is not None:
        dispatch = {r.index: r.dispatched for r in records}
        times = [
            wall_start + timedelta(seconds=dispatch.get(i, s.delay))
            for i, s in enumerate(scheduled)
        ]
        events = rps_change_events(schedule.rates, ramp_up[1], times)

    check = evaluate_self_check(
        send_lags=[r.send_lag for r in records],
        loop_lags=[x for s in all_stats for x in s.loop_lags],
        queue_times=[r.output.client_queue_time for r in records],
        cpu_s=cpu_list,
        wall_s=duration,
        includes_server=config.embedded,
    )

    lines = format_report(
        metrics,
        duration=duration,
        selected_metrics=selected,
        max_concurrency=config.max_concurrency,
        request_rate=request_rate,
        goodput=bool(goodput),
        pooling=config.is_pooling,
    )
    completed = metrics.completed
    extra_lines = [
        f"{'Output token counts from:':<40} "
        f"{_source_text(metrics.output_tokens_sources, completed)}",
        f"{'Input token counts from:':<40} "
        + _input_source_text(config, metrics, counter.kind, tokenizer_id),
    ]
    lines[-1:-1] = extra_lines + check.report_lines()
    for line in lines:
        say(line)

    date = wall_start.strftime("%Y%m%d-%H%M%S")
    result = run_header(
        date=date,
        backend=config.backend,
        label=config.label,
        model_id=model_id,
        tokenizer_id=tokenizer_id,
        num_prompts=num_prompts,
        metadata=config.metadata,
        request_rate=request_rate,
        burstiness=config.burstiness,
        max_concurrency=config.max_concurrency,
        ramp_up=ramp_up,
    )
    result.update(
        benchmark_result_dict(
            metrics,
            outputs,
            actual_output_lens,
            duration=duration,
            selected_metrics=selected,
            goodput=bool(goodput),
            pooling=config.is_pooling,
            rps_change_events=events,
        )
    )
    result.update(
        # Beside vLLM's total_input_tokens (the client's counts): the server's
        # usage.prompt_tokens, None when no successful request reported one.
        total_input_tokens_server=metrics.total_input_server,
        input_tokens_server_reported=metrics.input_server_reported,
        input_lens_server=[o.prompt_tokens for o in outputs],
        scheduled_times=[r.scheduled for r in records],
        client_queue_times=[r.output.client_queue_time for r in records],
        request_ids=[r.request_id for r in records],
        output_tokens_source=metrics.output_tokens_sources,
        input_tokens_source=counter.kind,
        **check.to_json(),
        loop=config.loop,
        workers=len(all_stats) or 1,
        embedded_server=config.embedded,
        base_url=redact_url(base_url),
        interrupted=interrupted,
        not_finished=not_finished,
    )
    if not config.save_detailed:
        for key in DETAILED_KEYS:
            result.pop(key, None)
    result = scrub.data(result)

    path = None
    if config.save_result or config.append_result:
        name = config.result_filename or result_filename(
            backend=config.backend,
            label=config.label,
            request_rate=request_rate,
            max_concurrency=config.max_concurrency,
            model_id=model_id,
            date=date,
            ramp_up=ramp_up,
        )
        path = os.path.join(config.result_dir, name) if config.result_dir else name
        save_result(path, result, append=config.append_result)
        say(f"Saved the result to {path}")

    return BenchmarkResult(
        config=config,
        metrics=metrics,
        result=result,
        records=records,
        self_check=check,
        report=lines,
        duration=duration,
        interrupted=interrupted,
        not_finished=not_finished,
        result_path=path,
        base_url=base_url,
        model_id=model_id,
        input_tokens_source=counter.kind,
    )


def run_benchmark(
    config: BenchConfig, *, stop_after: int | None = None, stdout: IO[str] | None = None
) -> BenchmarkResult:
    """Run the benchmark described by *config* in a new event loop (``config.loop``).

    See ``arun_benchmark`` for the arguments and errors.
    """
    backend = "asyncio" if config.loop == "uvloop" else config.loop
    options: dict[str, Any] = {"use_uvloop": True} if config.loop == "uvloop" else {}

    async def main() -> BenchmarkResult:
        return await arun_benchmark(config, stop_after=stop_after, stdout=stdout)

    return anyio.run(main, backend=backend, backend_options=options)
