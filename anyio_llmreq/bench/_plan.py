"""Workload plan stage: dataset -> request inputs -> arrival schedule, for one target.

Pure apart from reading the dataset (and audio) files: no network and no clock, so a
plan can be built and checked in a test. Everything an executor needs is in the plan.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._engine import Timeouts
from .._media import needs_media, prepare_media
from .._models import RequestFuncInput
from ..backends._base import Backend
from ._config import BenchConfig, UsageError, default_endpoint
from ._datasets import SESSION_DATASETS, SampleRequest, canonical_dataset_name, sample_requests
from ._redact import redact_request, redact_url
from ._schedule import RequestSchedule, get_request_schedule
from ._tokens import TokenCounter

if TYPE_CHECKING:
    from ._sessions import ScheduledSession

__all__ = [
    "ScheduledRequest",
    "Target",
    "WorkloadPlan",
    "attach_media",
    "build_inputs",
    "plan_workload",
]


@attrs.frozen(kw_only=True)
class Target:
    """The server and model a run measures, and how prompts are counted (``_setup``
    resolves it; a test can write one)."""

    base_url: str = attrs.field(repr=redact_url)
    model_name: str
    model_id: str
    counter: TokenCounter
    tokenizer_id: str
    verify: bool = True
    embedded: bool = False


@attrs.frozen
class ScheduledRequest:
    """A request and its send offset (seconds after the common start)."""

    index: int
    # Credential headers never show in a repr (see ``_redact``).
    request: RequestFuncInput = attrs.field(repr=lambda r: repr(redact_request(r)))
    delay: float


@attrs.frozen(kw_only=True)
class WorkloadPlan:
    """What to send, where and when: the executors' whole input.

    ``requests`` are in request order with their send offsets; ``schedule`` holds the
    same offsets and the rate in force for each; ``workers`` is ``--workers`` capped by
    the number of requests and ``--max-concurrency``.
    """

    target: Target
    backend: str
    endpoint: str
    requests: tuple[ScheduledRequest, ...]
    schedule: RequestSchedule
    request_rate: float
    ramp_up: tuple[str, float, float] | None
    max_concurrency: int | None
    workers: int = 1
    loop: str = "asyncio"
    timeout: float | None = None
    #: Requests leave ``temperature`` out, so the server decides (no ``--temperature``,
    #: as ``vllm bench serve`` since vLLM #32723); False sends the legacy ``0.0``.
    server_temperature: bool = False
    #: Multi-turn runs (``_sessions``): the conversations, each arriving at its ``delay``
    #: with its turns in order; ``requests`` then lists every turn (index order) and
    #: executors send the sessions, not the requests. Empty for other datasets.
    sessions: tuple[ScheduledSession, ...] = ()
    #: ``--max-active-conversations``: at most this many sessions under way.
    max_active_conversations: int | None = None
    #: Sessions send the recorded answers as history, not the server's.
    recorded_answers: bool = False

    @property
    def request_backend(self) -> Backend:
        """The backend object requests are sent with (``backend`` and its options)."""
        from ..backends._registry import get_backend

        backend: Any = get_backend(self.backend)
        if self.server_temperature and attrs.has(type(backend)):
            if "temperature" in attrs.fields_dict(type(backend)):
                backend = attrs.evolve(backend, temperature=None)
        result: Backend = backend
        return result

    @property
    def api_url(self) -> str:
        return self.target.base_url + self.endpoint

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(total=self.timeout)


def plan_workload(config: BenchConfig, target: Target) -> WorkloadPlan:
    """Sample the dataset, build each request and schedule it.

    Raises:
        ValueError: a dataset that can't be read or sampled.
        ConfigError: requests the backend can't build (checked on the first).
    """
    prefix = config.request_id_prefix
    if prefix is None:
        prefix = f"bench-{secrets.token_hex(4)}-"
    if canonical_dataset_name(config.dataset_name) in SESSION_DATASETS:
        from ._sessions import plan_sessions

        return plan_sessions(config, target, request_id_prefix=prefix)
    samples = sample_requests(
        config.dataset_name,
        target.counter,
        config.resolved_num_prompts(),
        path=config.dataset_path,
        seed=config.seed,
        request_id_prefix=prefix,
        options=_dataset_options(config),
    )
    inputs = plan_inputs(config, target, samples)
    request_rate = config.resolved_request_rate()
    ramp_up = ramp_up_of(config)
    if config.dataset_name == "trace":
        # A trace: each request at its recorded time; the rate is the trace's mean.
        from ._trace import trace_schedule

        schedule = trace_schedule(samples)
        request_rate = schedule.rates[0]
    else:
        schedule = arrival_schedule(config, len(inputs))
    requests = tuple(
        ScheduledRequest(i, rin, delay)
        for i, (rin, delay) in enumerate(zip(inputs, schedule.delays, strict=True))
    )
    return assemble_plan(config, target, requests, schedule, request_rate, ramp_up)


def assemble_plan(
    config: BenchConfig,
    target: Target,
    requests: tuple[ScheduledRequest, ...],
    schedule: RequestSchedule,
    request_rate: float,
    ramp_up: tuple[str, float, float] | None,
    *,
    units: int | None = None,
    caps: Sequence[int] = (),
    **extra: Any,
) -> WorkloadPlan:
    """The plan of *requests* sent by *schedule* under *config*. The workers are as many
    as ``--workers`` asks, but no more than the *units* they split (default: the
    requests), ``--max-concurrency`` or any of *caps*; *extra*: more plan fields."""
    n = len(requests) if units is None else units
    return WorkloadPlan(
        target=target,
        backend=config.backend,
        endpoint=plan_endpoint(config, target),
        requests=requests,
        schedule=schedule,
        request_rate=request_rate,
        ramp_up=ramp_up,
        max_concurrency=config.max_concurrency,
        workers=max(1, min(config.workers, n, config.max_concurrency or n, *caps)),
        loop=config.loop,
        timeout=config.timeout,
        server_temperature=config.temperature is None,
        **extra,
    )


def plan_inputs(
    config: BenchConfig, target: Target, samples: Sequence[SampleRequest]
) -> list[RequestFuncInput]:
    """The requests of *samples* for *target*, the first checked against the backend.

    Raises:
        ConfigError: the backend can't build them (checked on the first, before I/O).
    """
    inputs = build_inputs(
        config,
        samples,
        api_url=target.base_url + plan_endpoint(config, target),
        model_id=target.model_id,
        model_name=target.model_name,
        ignore_eos=_ignore_eos(config),
    )
    if inputs:
        _preflight(config.backend, inputs[0])
    return inputs


def plan_endpoint(config: BenchConfig, target: Target) -> str:
    """``--endpoint``, else the backend's default for the served model."""
    return config.endpoint or default_endpoint(config.backend, target.model_id)


def arrival_schedule(config: BenchConfig, n: int) -> RequestSchedule:
    """vLLM's schedule of *n* arrivals at the configured rate, burstiness and ramp-up."""
    return get_request_schedule(
        n,
        config.resolved_request_rate(),
        config.burstiness,
        config.ramp_up_strategy,
        config.ramp_up_start_rps,
        config.ramp_up_end_rps,
        seed=config.seed,
    )


def ramp_up_of(config: BenchConfig) -> tuple[str, float, float] | None:
    """``--ramp-up-strategy`` with its start and end rates, or ``None``."""
    if config.ramp_up_strategy is None:
        return None
    assert config.ramp_up_start_rps is not None and config.ramp_up_end_rps is not None
    return (config.ramp_up_strategy, config.ramp_up_start_rps, config.ramp_up_end_rps)


def attach_media(plan: WorkloadPlan) -> WorkloadPlan:
    """*plan* with raw audio read and encoded once, before the run, not per request on
    its clock (blocking: run it in a thread); *plan* itself when there is none."""
    if not any(needs_media(r.request) for r in plan.requests):
        return plan
    requests = tuple(attrs.evolve(r, request=prepare_media(r.request)) for r in plan.requests)
    return attrs.evolve(plan, requests=requests)


def _dataset_options(config: BenchConfig) -> dict[str, Any]:
    """The sampler's keyword arguments for ``--dataset-name`` (``_datasets._SAMPLERS``):
    its own flags, with ``--input-len``/``--output-len`` mapped onto them as vLLM maps
    them, and the ordering flags every sampler takes."""
    name = canonical_dataset_name(config.dataset_name)
    out = config.output_len
    input_len = config.input_len if config.input_len is not None else config.random_input_len
    random_out = out if out is not None else config.random_output_len
    options: dict[str, Any] = {
        "shuffle": not config.disable_shuffle,
        "oversample": not config.no_oversample,
    }
    chat_template = not config.skip_chat_template
    if name == "random":
        options.update(
            input_len=input_len,
            output_len=random_out,
            range_ratio=config.random_range_ratio,
            prefix_len=config.random_prefix_len,
            batch_size=config.random_batch_size,
        )
    elif name == "prefix_repetition":
        options.update(
            prefix_len=config.prefix_repetition_prefix_len,
            suffix_len=config.prefix_repetition_suffix_len,
            num_prefixes=config.prefix_repetition_num_prefixes,
            output_len=out if out is not None else config.prefix_repetition_output_len,
        )
    elif name == "sharegpt":
        options.update(output_len=out if out is not None else config.sharegpt_output_len)
    elif name == "sonnet":
        options.update(
            input_len=config.sonnet_input_len,
            output_len=config.sonnet_output_len,
            prefix_len=config.sonnet_prefix_len,
            # vLLM: chat servers get the plain prompt, the others its chat form.
            chat_template=config.backend != "openai-chat",
        )
    elif name == "custom":
        options.update(
            output_len=out if out is not None else config.custom_output_len,
            chat_template=chat_template,
        )
    elif name == "hf":
        options.update(
            hf_name=config.hf_name,
            hf_split=config.hf_split,
            hf_subset=config.hf_subset,
            output_len=out if out is not None else config.hf_output_len,
            streaming=not config.no_stream,
            chat_template=chat_template,
            multimodal_chat=config.enable_multimodal_chat,
            backend=config.backend,
            trust_remote_code=config.trust_remote_code,
            blazedit_min_distance=config.blazedit_min_distance,
            blazedit_max_distance=config.blazedit_max_distance,
            asr_min_audio_len_sec=config.asr_min_audio_len_sec,
            asr_max_audio_len_sec=config.asr_max_audio_len_sec,
        )
    elif name == "random-mm":
        options.update(_random_mm_options(config, input_len, random_out))
    elif name == "custom_mm":
        options.update(
            output_len=out if out is not None else config.custom_output_len,
            multimodal_chat=config.enable_multimodal_chat,
        )
    elif name == "random-rerank":
        options.update(
            input_len=input_len,
            range_ratio=config.random_range_ratio,
            batch_size=config.random_batch_size,
            reranker=not config.no_reranker,
        )
    elif name == "spec_bench":
        options.update(
            output_len=out if out is not None else config.spec_bench_output_len,
            category=config.spec_bench_category,
            multimodal_chat=config.enable_multimodal_chat,
        )
    elif name == "txt-slices":
        options.update(input_len=input_len, output_len=random_out)
    elif name == "trace":
        options.update(
            trace_format=config.trace_format,
            time_scale=config.time_scale,
            trace_start=config.trace_start,
            trace_duration=config.trace_duration,
            block_size=config.block_size,
            output_len=out,
        )
    return options


def _random_mm_options(config: BenchConfig, input_len: int, output_len: int) -> dict[str, Any]:
    from . import _mm_datasets as mm

    def given(value: Any, default: Any) -> Any:
        return default if value is None else value

    limits = config.random_mm_limit_mm_per_prompt
    buckets = config.random_mm_bucket_config
    return {
        "input_len": input_len,
        "output_len": output_len,
        "range_ratio": config.random_range_ratio,
        "prefix_len": config.random_prefix_len,
        "base_items_per_request": given(
            config.random_mm_base_items_per_request, mm.DEFAULT_BASE_ITEMS_PER_REQUEST
        ),
        "num_mm_items_range_ratio": given(
            config.random_mm_num_mm_items_range_ratio, mm.DEFAULT_NUM_MM_ITEMS_RANGE_RATIO
        ),
        "limit_mm_per_prompt": mm.parse_limit_mm_per_prompt(limits)
        if limits is not None
        else dict(mm.DEFAULT_LIMIT_MM_PER_PROMPT),
        "bucket_config": mm.parse_bucket_config(buckets)
        if buckets is not None
        else dict(mm.DEFAULT_MM_ITEM_BUCKET_CONFIG),
    }


def _extra_body(config: BenchConfig) -> dict[str, Any] | None:
    body: dict[str, Any] = {}
    if not config.is_pooling:
        body.update(config.sampling_params())
    if config.backend == "llama.cpp":
        body["cache_prompt"] = False
    if config.extra_body:
        body.update(config.extra_body)
    return body or None


def _ignore_eos(config: BenchConfig) -> bool:
    from .._compat import OPENAI_COMPATIBLE_BACKENDS

    # vLLM #28227: random prompts on OpenAI-compatible servers always ignore EOS.
    name = canonical_dataset_name(config.dataset_name)
    if name in ("random", "random-mm") and config.backend in OPENAI_COMPATIBLE_BACKENDS:
        return True
    return config.ignore_eos


def build_inputs(
    config: BenchConfig,
    samples: Sequence[SampleRequest],
    *,
    api_url: str,
    model_id: str,
    model_name: str,
    ignore_eos: bool,
) -> list[RequestFuncInput]:
    """One ``RequestFuncInput`` per sample, with the flags that apply to every request.

    With ``--lora-modules`` each request names one adapter as both its model and model
    name (vLLM's rule), chosen at random with the seed or round-robin."""
    extra = _extra_body(config)
    headers = dict(config.headers) or None
    shape = _SHAPERS.get(config.backend)
    adapters = _lora_choices(config, len(samples))
    inputs = []
    for i, s in enumerate(samples):
        media = s.multi_modal_data
        if media is None and config.backend == "openai-audio":
            media = _synthetic_audio(config.seed + i)
        model, name = (adapters[i], adapters[i]) if adapters else (model_id, model_name)
        inputs.append(
            RequestFuncInput(
                prompt=shape(s.prompt) if shape is not None else s.prompt,
                api_url=api_url,
                prompt_len=s.prompt_len,
                output_len=s.expected_output_len,
                model=model,
                model_name=name,
                logprobs=config.logprobs,
                extra_body=dict(extra) if extra else None,
                ignore_eos=ignore_eos,
                request_id=s.request_id or None,
                extra_headers=headers,
                timeout=config.timeout,
                multi_modal_content=media,
            )
        )
    return inputs


def _lora_choices(config: BenchConfig, n: int) -> list[str]:
    modules = config.lora_modules
    if not modules:
        return []
    if config.lora_assignment == "round-robin":
        return [modules[i % len(modules)] for i in range(n)]
    import random

    rnd = random.Random(config.seed)
    return [rnd.choice(modules) for _ in range(n)]


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
    from .._exceptions import ConfigError
    from ..backends._registry import get_backend

    if needs_media(first):
        first = prepare_media(first)
    try:
        get_backend(backend).build_payload(first)
    except ConfigError as exc:
        if isinstance(exc, UsageError):
            raise
        url_problem = "URL" in str(exc)
        raise UsageError(
            f"--backend {backend} can't send these requests",
            where=f"--endpoint {redact_url(first.api_url)}" if url_problem else "--backend",
            why=str(exc),
            hint="Drop --endpoint to use the backend's default, or pick the --backend "
            "that matches the server's API."
            if url_problem
            else None,
        ) from None
