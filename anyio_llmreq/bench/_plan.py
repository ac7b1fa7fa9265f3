"""Workload plan stage: dataset -> request inputs -> arrival schedule, for one target.

Pure apart from reading the dataset (and audio) files: no network and no clock, so a
plan can be built and checked in a test. Everything an executor needs is in the plan.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .._engine import Timeouts
from .._media import needs_media, prepare_media
from .._models import RequestFuncInput
from ._config import BenchConfig, UsageError, default_endpoint
from ._datasets import SampleRequest, sample_requests
from ._redact import redact_request, redact_url
from ._schedule import RequestSchedule, get_request_schedule
from ._tokens import TokenCounter

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
    samples = sample_requests(
        config.dataset_name,
        target.counter,
        config.resolved_num_prompts(),
        path=config.dataset_path,
        seed=config.seed,
        request_id_prefix=prefix,
        options=_dataset_options(config),
    )
    endpoint = config.endpoint or default_endpoint(config.backend, target.model_id)
    inputs = build_inputs(
        config,
        samples,
        api_url=target.base_url + endpoint,
        model_id=target.model_id,
        model_name=target.model_name,
        ignore_eos=_ignore_eos(config),
    )
    if inputs:
        _preflight(config.backend, inputs[0])
    request_rate = config.resolved_request_rate()
    ramp_up = None
    if config.ramp_up_strategy is not None:
        assert config.ramp_up_start_rps is not None and config.ramp_up_end_rps is not None
        ramp_up = (config.ramp_up_strategy, config.ramp_up_start_rps, config.ramp_up_end_rps)
    schedule = get_request_schedule(
        len(inputs),
        request_rate,
        config.burstiness,
        config.ramp_up_strategy,
        config.ramp_up_start_rps,
        config.ramp_up_end_rps,
        seed=config.seed,
    )
    n = len(inputs)
    return WorkloadPlan(
        target=target,
        backend=config.backend,
        endpoint=endpoint,
        requests=tuple(
            ScheduledRequest(i, rin, delay)
            for i, (rin, delay) in enumerate(zip(inputs, schedule.delays, strict=True))
        ),
        schedule=schedule,
        request_rate=request_rate,
        ramp_up=ramp_up,
        max_concurrency=config.max_concurrency,
        workers=max(1, min(config.workers, n, config.max_concurrency or n)),
        loop=config.loop,
        timeout=config.timeout,
    )


def attach_media(plan: WorkloadPlan) -> WorkloadPlan:
    """*plan* with raw audio read and encoded once, before the run, not per request on
    its clock (blocking: run it in a thread); *plan* itself when there is none."""
    if not any(needs_media(r.request) for r in plan.requests):
        return plan
    requests = tuple(attrs.evolve(r, request=prepare_media(r.request)) for r in plan.requests)
    return attrs.evolve(plan, requests=requests)


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


def _ignore_eos(config: BenchConfig) -> bool:
    from .._compat import OPENAI_COMPATIBLE_BACKENDS

    # vLLM #28227: random prompts on OpenAI-compatible servers always ignore EOS.
    if config.dataset_name == "random" and config.backend in OPENAI_COMPATIBLE_BACKENDS:
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
    """One ``RequestFuncInput`` per sample, with the flags that apply to every request."""
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
