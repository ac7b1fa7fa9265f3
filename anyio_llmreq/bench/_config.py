"""``BenchConfig``: every ``anyio-llmreq bench`` flag as one immutable value."""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs

from ._redact import Scrubber, redact_headers, redact_url
from ._schedule import RampUpStrategy

__all__ = [
    "EMBEDDED_DEFAULT_NUM_PROMPTS",
    "EMBEDDED_DEFAULT_REQUEST_RATE",
    "POOLING_BACKENDS",
    "BenchConfig",
    "default_endpoint",
]

LoopName = Literal["asyncio", "uvloop", "trio"]

#: Backends whose responses carry no generated tokens (vLLM's ``POOLING_BACKENDS``).
POOLING_BACKENDS = frozenset(
    {
        "openai-embeddings",
        "openai-embeddings-chat",
        "openai-embeddings-clip",
        "openai-embeddings-vlm2vec",
        "infinity-embeddings",
        "infinity-embeddings-clip",
        "vllm-pooling",
        "vllm-rerank",
    }
)

#: Defaults when the bench runs its own embedded mock server: a complete, realistic run
#: that takes about twenty seconds and leaves the client far from saturation.
EMBEDDED_DEFAULT_NUM_PROMPTS = 200
EMBEDDED_DEFAULT_REQUEST_RATE = 10.0
DEFAULT_NUM_PROMPTS = 1000


def default_endpoint(backend: str, model: str | None = None) -> str:
    """The ``--endpoint`` a backend uses when none is given."""
    if backend == "openai-chat":
        return "/v1/chat/completions"
    if backend == "tgi":
        return "/generate_stream"
    if backend == "tensorrt-llm":
        return f"/v2/models/{model or 'ensemble'}/generate_stream"
    if backend == "openai-audio":
        return "/v1/audio/transcriptions"
    if backend == "vllm-rerank":
        return "/rerank"
    if backend == "vllm-pooling":
        return "/pooling"
    if backend in POOLING_BACKENDS:
        return "/v1/embeddings"
    return "/v1/completions"


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@attrs.frozen(kw_only=True)
class BenchConfig:
    """One benchmark run; field names are the CLI flags with ``_`` for ``-``.

    ``None`` means "the default for this situation": ``num_prompts`` is 200 with the
    embedded server and 1000 otherwise, ``request_rate`` 10 req/s embedded (10 req/s) and ``inf``
    otherwise; ``endpoint`` follows the backend; ``model`` is asked from the server;
    ``request_id_prefix`` is ``bench-<8 hex>-``.
    """

    # Target.
    backend: str = "openai"
    base_url: str | None = attrs.field(
        default=None, repr=lambda u: repr(u if u is None else redact_url(u))
    )
    host: str | None = None
    port: int | None = None
    endpoint: str | None = None
    model: str | None = None
    served_model_name: str | None = None
    insecure: bool = False
    # Credentials never show in a repr (see ``_redact``).
    headers: dict[str, str] = attrs.field(factory=dict, repr=lambda h: repr(redact_headers(h)))
    #: Total seconds per request; every ``RequestFuncInput.timeout`` gets it.
    timeout: float | None = None

    # Tokenizer.
    tokenizer: str | None = None
    tokenizer_mode: str = "auto"
    trust_remote_code: bool = False

    # Dataset.
    dataset_name: str = "random"
    dataset_path: str | None = None
    num_prompts: int | None = None
    random_input_len: int = 1024
    random_output_len: int = 128
    random_range_ratio: float = 0.0
    random_prefix_len: int = 0
    sharegpt_output_len: int | None = None
    sonnet_input_len: int = 550
    sonnet_output_len: int = 150
    sonnet_prefix_len: int = 200
    custom_output_len: int = 256
    custom_skip_chat_template: bool = False
    prefix_repetition_prefix_len: int = 256
    prefix_repetition_suffix_len: int = 256
    prefix_repetition_num_prefixes: int = 10
    prefix_repetition_output_len: int = 128

    # Load.
    request_rate: float | None = attrs.field(default=None, converter=_opt_float)
    burstiness: float = 1.0
    max_concurrency: int | None = None
    ramp_up_strategy: RampUpStrategy | None = None
    ramp_up_start_rps: int | None = None
    ramp_up_end_rps: int | None = None
    seed: int = 0
    num_warmups: int = 0
    ready_check_timeout_sec: float = 0.0

    # Request content.
    ignore_eos: bool = False
    logprobs: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    extra_body: dict[str, Any] | None = None
    request_id_prefix: str | None = None

    # Metrics and output.
    percentile_metrics: str | None = None
    metric_percentiles: str = "99"
    goodput: dict[str, float] | None = None
    disable_tqdm: bool = False
    save_result: bool = False
    save_detailed: bool = False
    append_result: bool = False
    result_dir: str | None = None
    result_filename: str | None = None
    metadata: dict[str, str] = attrs.Factory(dict)
    label: str | None = None
    output_jsonl: str | None = None
    quiet: bool = False

    # Client.
    loop: LoopName = "asyncio"
    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))

    # Embedded mock server.
    mock_ttft: float = 0.05
    mock_itl: float = 0.01

    @property
    def embedded(self) -> bool:
        """True when no server was named: the bench starts its own mock server."""
        return self.base_url is None and self.host is None and self.port is None

    @property
    def is_pooling(self) -> bool:
        return self.backend in POOLING_BACKENDS

    def resolved_num_prompts(self) -> int:
        if self.num_prompts is not None:
            return self.num_prompts
        return EMBEDDED_DEFAULT_NUM_PROMPTS if self.embedded else DEFAULT_NUM_PROMPTS

    def resolved_request_rate(self) -> float:
        if self.request_rate is not None:
            return self.request_rate
        if self.embedded and self.ramp_up_strategy is None:
            return EMBEDDED_DEFAULT_REQUEST_RATE
        return math.inf

    def resolved_base_url(self) -> str | None:
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        if self.embedded:
            return None
        return f"http://{self.host or '127.0.0.1'}:{self.port or 8000}"

    def scrubber(self) -> Scrubber:
        """Replaces this run's secrets (credential headers, the URL's password,
        ``OPENAI_API_KEY``) in text the bench shows or writes."""
        from ..backends._base import api_key_from_env

        return Scrubber.of(self.headers, urls=[self.base_url], values=[api_key_from_env()])

    def percentile_metric_names(self) -> list[str]:
        text = self.percentile_metrics
        if text is None:
            text = "e2el" if self.is_pooling else "ttft,tpot,itl"
        return [m.strip() for m in text.split(",") if m.strip()]

    def percentiles(self) -> list[float]:
        return [float(p) for p in self.metric_percentiles.split(",") if p.strip()]

    def sampling_params(self) -> dict[str, Any]:
        """The non-None sampling flags (sent in every request's body)."""
        params = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
        }
        return {k: v for k, v in params.items() if v is not None}

    def validate(self, openai_compatible: frozenset[str] | set[str]) -> None:
        """Check the combinations argparse can't; raise ``ValueError`` with the reason."""
        if self.ramp_up_strategy is not None:
            if self.request_rate is not None and self.request_rate != math.inf:
                raise ValueError(
                    "When using ramp-up, do not specify --request-rate. "
                    "The request rate will be controlled by ramp-up parameters."
                )
            if self.ramp_up_start_rps is None or self.ramp_up_end_rps is None:
                raise ValueError(
                    "When using --ramp-up-strategy, both --ramp-up-start-rps and "
                    "--ramp-up-end-rps must be specified"
                )
            if self.ramp_up_start_rps < 0 or self.ramp_up_end_rps < 0:
                raise ValueError("Ramp-up start and end RPS must be non-negative")
            if self.ramp_up_start_rps > self.ramp_up_end_rps:
                raise ValueError("Ramp-up start RPS must be less than end RPS")
            if self.ramp_up_strategy == "exponential" and self.ramp_up_start_rps == 0:
                raise ValueError("For exponential ramp-up, the start RPS cannot be 0.")
        if self.burstiness <= 0:
            raise ValueError("--burstiness must be positive")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError("--max-concurrency must be at least 1")
        if self.resolved_num_prompts() < 1:
            raise ValueError("--num-prompts must be at least 1")
        if self.sampling_params() and self.backend not in openai_compatible:
            raise ValueError(
                "Sampling parameters are only supported by openai-compatible backends."
            )
        for metric in self.percentile_metric_names():
            if metric not in ("ttft", "tpot", "itl", "e2el"):
                raise ValueError(f"unknown percentile metric {metric!r}")
