"""Configuration stage: ``BenchConfig``, every ``anyio-llmreq bench`` flag as one
immutable value, each field carrying its flag (name, aliases, default, help) so the
parser and ``config_from_args`` are derived from it (``_cli``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs

from .._exceptions import ConfigError
from ._redact import Scrubber, redact_headers, redact_url
from ._schedule import RampUpStrategy

__all__ = [
    "EMBEDDED_DEFAULT_NUM_PROMPTS",
    "EMBEDDED_DEFAULT_REQUEST_RATE",
    "POOLING_BACKENDS",
    "FLAG_KEY",
    "BenchConfig",
    "Flag",
    "UsageError",
    "default_endpoint",
    "flag",
    "flags",
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

#: Datasets where ``--num-prompts -1`` means every sample of the file (vLLM's docs).
ALL_SAMPLES_DATASETS = frozenset({"spec_bench", "custom_mm", "trace"})

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
    if backend.startswith("infinity-"):
        return "/embeddings"  # Infinity serves without a /v1 prefix by default
    if backend in POOLING_BACKENDS:
        return "/v1/embeddings"
    return "/v1/completions"


class UsageError(ConfigError):
    """A mistake in how the bench was asked to run: a flag, a file, a missing extra, the
    server it points at. The CLI prints it as the one line ``<what> (<where>): <why>.
    <hint>`` and exits with *exit_code*: 2 when the run can't work as given, 1 when the
    server could not be reached (nothing could be measured).
    """

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        why: str | None = None,
        hint: str | None = None,
        exit_code: int = 2,
    ) -> None:
        self.what = what
        self.where = where
        self.why = why
        self.hint = hint
        self.exit_code = exit_code
        super().__init__(self.message())

    def message(self) -> str:
        text = self.what
        if self.where:
            text += f" ({self.where})"
        if self.why:
            text += f": {self.why}"
        if self.hint:
            text = text.rstrip(". ") + ". " + self.hint
        return " ".join(text.split())  # one line, whatever the parts held

    def __str__(self) -> str:
        return self.message()

    def __reduce__(self) -> Any:
        return (_rebuild_usage_error, (self.what, self.where, self.why, self.hint, self.exit_code))

    def scrubbed(self, scrub: Callable[[str], str]) -> UsageError:
        """A copy with *scrub* applied to every part (a server may echo a secret)."""

        def clean(text: str | None) -> str | None:
            return None if text is None else scrub(text)

        return UsageError(
            scrub(self.what),
            where=clean(self.where),
            why=clean(self.why),
            hint=clean(self.hint),
            exit_code=self.exit_code,
        )


def _only_with(requirement: str, given: list[tuple[str, bool]], hint: str | None = None) -> None:
    """Refuse the first flag of *given* that is set: it means something only with
    *requirement*."""
    for name, set_ in given:
        if set_:
            why = f"{name} applies to {requirement} only"
            raise UsageError("conflicting flags", where=name, why=why, hint=hint)


def _rebuild_usage_error(
    what: str, where: str | None, why: str | None, hint: str | None, exit_code: int
) -> UsageError:
    return UsageError(what, where=where, why=why, hint=hint, exit_code=exit_code)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@attrs.frozen(kw_only=True)
class Flag:
    """How a ``BenchConfig`` field appears on the command line (its field metadata).

    ``type`` and ``choices`` default to what the field's annotation says (``int``,
    ``float``, a ``Literal``); ``parse`` turns the argparse value into the field's (and
    then the argparse default is ``None``, so ``parse`` also maps "not given").
    """

    cli: str
    aliases: tuple[str, ...] = ()
    help: str | None = None
    group: str = ""
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    nargs: str | None = None
    metavar: str | None = None
    repeat: bool = False
    parse: Callable[[Any], Any] | None = None


FLAG_KEY = "anyio_llmreq.flag"


def flag(
    default: Any = attrs.NOTHING,
    *,
    group: str,
    cli: str | None = None,
    aliases: tuple[str, ...] = (),
    help: str | None = None,
    factory: Callable[[], Any] | None = None,
    field: dict[str, Any] | None = None,
    **options: Any,
) -> Any:
    """An ``attrs.field`` carrying its CLI flag. *cli* defaults to the field name with
    ``-`` for ``_`` (filled in by ``flags()``); *field* holds extra ``attrs.field``
    arguments (``repr``, ``converter``, ``validator``); *options* are ``Flag``'s."""
    spec = Flag(cli=cli or "", aliases=aliases, help=help, group=group, **options)
    if factory is not None:
        return attrs.field(factory=factory, metadata={FLAG_KEY: spec}, **(field or {}))
    return attrs.field(default=default, metadata={FLAG_KEY: spec}, **(field or {}))


def _key_values(items: list[str] | None, flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            # A header's value may be a credential: name the header, never echo it.
            shown = repr(item) if flag != "--header" else _header_name_hint(item)
            raise UsageError(
                f"invalid value {shown}",
                where=flag,
                why="expected KEY=VALUE",
                hint=f"Use e.g. {flag} name=value.",
            )
        key, value = item.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def _header_name_hint(item: str) -> str:
    """``'Authorization: ...'`` for a ``Name: value`` header given with a colon; else
    only that the value is hidden."""
    name, colon, _ = item.partition(":")
    if colon and name.strip() and not any(c.isspace() for c in name.strip()):
        return f"{name.strip() + ': ...'!r}"
    return "(value not shown)"


def _parse_headers(items: list[str] | None) -> dict[str, str]:
    return _key_values(items, "--header")


def _parse_metadata(items: list[str] | None) -> dict[str, str]:
    return _key_values(items, "--metadata")


def _parse_extra_body(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    hint = """Pass a JSON object, e.g. --extra-body '{"top_k": 5}'."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise UsageError("invalid JSON", where="--extra-body", why=str(exc), hint=hint) from None
    if not isinstance(body, dict):
        why = f"expected a JSON object, got {type(body).__name__}"
        raise UsageError("invalid value", where="--extra-body", why=why, hint=hint)
    return body


def _parse_goodput(pairs: list[str] | None) -> dict[str, float] | None:
    import argparse

    from ._metrics import parse_goodput

    try:
        return parse_goodput(pairs) if pairs else None
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise UsageError("invalid value", where="--goodput", why=str(exc)) from None


def _parse_server_metrics(urls: list[str] | None) -> tuple[str, ...] | None:
    """``--server-metrics`` alone is ``()`` (the server's own endpoint); absent, None."""
    return None if urls is None else tuple(urls)


def _backend_choices() -> list[str]:
    from ..backends._registry import backend_names

    return backend_names()


def _dataset_choices() -> list[str]:
    from ._datasets import DATASET_NAMES

    return list(DATASET_NAMES)


_SERVER = "server"
_TOKENIZER = "tokenizer"
_DATASET = "dataset"
_LOAD = "load"
_CONTENT = "request content"
_OUTPUT = "metrics and output"
_CLIENT = "client"
_MOCK = "embedded mock server"


@attrs.frozen(kw_only=True)
class BenchConfig:
    """One benchmark run. Each field is one CLI flag: its name (field name with ``-``),
    aliases, group and help are the field's ``flag`` metadata, which the parser is built
    from; the fields are in ``--help`` order.

    ``None`` means "the default for this situation": ``num_prompts`` is 200 with the
    embedded server and 1000 otherwise, ``request_rate`` 10 req/s embedded and ``inf``
    otherwise; ``endpoint`` follows the backend; ``model`` is asked from the server;
    ``request_id_prefix`` is ``bench-<8 hex>-``.
    """

    # Target.
    backend: str = flag(
        "openai",
        group=_SERVER,
        choices=_backend_choices,
        metavar="NAME",
        help="Request format / server dialect, one of: %(choices)s (default: openai).",
    )
    base_url: str | None = flag(
        None,
        group=_SERVER,
        help="Server base URL, e.g. http://localhost:8000. Without it (and without "
        "--host/--port) the bench starts its embedded mock server.",
        field={"repr": lambda u: repr(u if u is None else redact_url(u))},
    )
    host: str | None = flag(None, group=_SERVER, help="Server host (default 127.0.0.1).")
    port: int | None = flag(None, group=_SERVER, help="Server port (default 8000).")
    endpoint: str | None = flag(
        None,
        group=_SERVER,
        help="API path; by default the backend's (/v1/completions, /v1/chat/completions, "
        "/generate_stream, /v2/models/<model>/generate_stream, ...).",
    )
    model: str | None = flag(
        None,
        group=_SERVER,
        help="Model name; by default the first model of GET {base_url}/v1/models.",
    )
    served_model_name: str | None = flag(
        None, group=_SERVER, help="The model name sent in requests if it differs from --model."
    )
    # Credentials never show in a repr (see ``_redact``).
    headers: dict[str, str] = flag(
        group=_SERVER,
        cli="--header",
        factory=dict,
        repeat=True,
        nargs="+",
        metavar="KEY=VALUE",
        parse=_parse_headers,
        help="Extra HTTP headers for every request: one or more KEY=VALUE after the flag "
        "(repeatable).",
        field={"repr": lambda h: repr(redact_headers(h))},
    )
    insecure: bool = flag(False, group=_SERVER, help="Skip TLS verification.")
    #: Total seconds per request; every ``RequestFuncInput.timeout`` gets it.
    timeout: float | None = flag(
        None, group=_SERVER, help="Per-request total deadline in seconds (default: none)."
    )
    ready_check_timeout_sec: float = flag(
        0.0,
        group=_SERVER,
        help="Retry a test request until it succeeds, up to this many "
        "seconds, before the run (default 0: no check).",
    )

    # Tokenizer.
    tokenizer: str | None = flag(
        None,
        group=_TOKENIZER,
        help="Tokenizer name or path (default: the model; none with the "
        "embedded server, which counts whitespace words).",
    )
    tokenizer_mode: str = flag(
        "auto",
        group=_TOKENIZER,
        choices=("auto", "hf", "slow", "mistral", "custom", "words"),
        help="'auto' and 'hf' load the fast tokenizer; 'words' counts whitespace words, "
        "like the mock server.",
    )
    trust_remote_code: bool = flag(
        False, group=_TOKENIZER, help="Let the tokenizer run code from its repository."
    )
    skip_tokenizer_init: bool = flag(
        False,
        group=_TOKENIZER,
        help="Load no tokenizer: prompt lengths are whitespace words and output lengths "
        "the server's usage counts.",
    )

    # Dataset.
    dataset_name: str = flag(
        "random", group=_DATASET, choices=_dataset_choices, help="Prompt source (default random)."
    )
    dataset_path: str | None = flag(
        None,
        group=_DATASET,
        metavar="PATH",
        help="Dataset file (ShareGPT JSON, sonnet text, custom JSONL with one "
        '{"prompt": ...} per line, BurstGPT CSV, Spec-Bench JSONL, a text file for '
        "txt-slices, a multi-turn generation config or conversations file, a trace), or "
        "the hub id or local directory of an hf dataset.",
    )
    no_stream: bool = flag(
        False, group=_DATASET, help="hf: load the whole dataset instead of streaming it."
    )
    no_oversample: bool = flag(
        False,
        group=_DATASET,
        help="Don't repeat samples when the dataset has fewer than --num-prompts.",
    )
    skip_chat_template: bool = flag(
        False,
        group=_DATASET,
        aliases=("--custom-skip-chat-template",),
        help="Don't apply the tokenizer's chat template to prompts of datasets that use it "
        "(custom, hf, spec_bench).",
    )
    disable_shuffle: bool = flag(
        False, group=_DATASET, help="Keep the dataset's order instead of shuffling it."
    )
    enable_multimodal_chat: bool = flag(
        False,
        group=_DATASET,
        help="Render multimodal prompts as chat messages (datasets that support it).",
    )
    input_len: int | None = flag(
        None, group=_DATASET, help="General input length: sets --random-input-len."
    )
    output_len: int | None = flag(
        None,
        group=_DATASET,
        help="General output length: sets the random, sharegpt, custom, hf, spec_bench and "
        "prefix_repetition output lengths.",
    )
    num_prompts: int | None = flag(
        None,
        group=_DATASET,
        help="Number of prompts (default 1000; 200 with the embedded server); -1 for every "
        "sample of a spec_bench or custom_mm file.",
    )
    random_input_len: int = flag(
        1024, group=_DATASET, help="Random (and txt-slices): prompt tokens (1024)."
    )
    random_output_len: int = flag(
        128, group=_DATASET, help="Random (and txt-slices): output tokens (128)."
    )
    random_range_ratio: float = flag(
        0.0, group=_DATASET, help="Random: lengths vary by +-this fraction, in [0, 1) (0)."
    )
    random_prefix_len: int = flag(
        0, group=_DATASET, help="Random: tokens of a prefix shared by every prompt (0)."
    )
    random_batch_size: int = flag(
        1,
        group=_DATASET,
        help="Random, random-rerank: prompts per request, for embeddings and rerank (1).",
    )
    no_reranker: bool = flag(
        False,
        group=_DATASET,
        help="random-rerank: the model does not rerank natively (score pairs instead).",
    )
    random_mm_base_items_per_request: int | None = flag(
        None, group=_DATASET, help="random-mm: multimodal items per request (default 1)."
    )
    random_mm_num_mm_items_range_ratio: float | None = flag(
        None,
        group=_DATASET,
        help="random-mm: items per request vary in [floor(n(1-r)), ceil(n(1+r))] (default 0).",
    )
    random_mm_limit_mm_per_prompt: str | None = flag(
        None,
        group=_DATASET,
        metavar="JSON",
        help="""random-mm: most items per modality, e.g. '{"image": 3, "video": 0}'.""",
    )
    random_mm_bucket_config: str | None = flag(
        None,
        group=_DATASET,
        metavar="DICT",
        help="random-mm: {(height, width, frames): probability, ...}, "
        "e.g. '{(256, 256, 1): 0.5, (720, 1280, 1): 0.5}'.",
    )
    sharegpt_output_len: int | None = flag(
        None, group=_DATASET, help="ShareGPT: output tokens (default: each reply's length)."
    )
    sonnet_input_len: int = flag(550, group=_DATASET, help="Sonnet: prompt tokens (550).")
    sonnet_output_len: int = flag(150, group=_DATASET, help="Sonnet: output tokens (150).")
    sonnet_prefix_len: int = flag(200, group=_DATASET, help="Sonnet: shared prefix tokens (200).")
    custom_output_len: int = flag(
        256,
        group=_DATASET,
        help="Custom, custom_mm: output tokens of every request; -1 takes each line's "
        "output_tokens (256).",
    )
    spec_bench_output_len: int = flag(256, group=_DATASET, help="spec_bench: output tokens (256).")
    spec_bench_category: str | None = flag(
        None, group=_DATASET, help="spec_bench: only this category (default: all)."
    )
    blazedit_min_distance: float = flag(
        0.0, group=_DATASET, help="hf Blazedit: least edit distance, 0 to 1 (0)."
    )
    blazedit_max_distance: float = flag(
        1.0, group=_DATASET, help="hf Blazedit: most edit distance, 0 to 1 (1)."
    )
    hf_subset: str | None = flag(None, group=_DATASET, help="hf: dataset subset (config).")
    hf_split: str | None = flag(
        None, group=_DATASET, help="hf: dataset split (default: the dataset's own)."
    )
    hf_name: str | None = flag(
        None,
        group=_DATASET,
        help="hf: the hub dataset whose format a local --dataset-path has, e.g. "
        "lmarena-ai/VisionArena-Chat.",
    )
    hf_output_len: int | None = flag(
        None, group=_DATASET, help="hf: output tokens (default: the dataset's)."
    )
    asr_min_audio_len_sec: float = flag(
        0.0, group=_DATASET, help="hf ASR sets: shortest audio kept, seconds (0)."
    )
    asr_max_audio_len_sec: float = flag(
        float("inf"), group=_DATASET, help="hf ASR sets: longest audio kept, seconds (inf)."
    )
    prefix_repetition_prefix_len: int = flag(
        256, group=_DATASET, help="Prefix repetition: tokens per shared prefix (256)."
    )
    prefix_repetition_suffix_len: int = flag(
        256, group=_DATASET, help="Prefix repetition: tokens after the prefix (256)."
    )
    prefix_repetition_num_prefixes: int = flag(
        10, group=_DATASET, help="Prefix repetition: number of distinct prefixes (10)."
    )
    prefix_repetition_output_len: int = flag(
        128, group=_DATASET, help="Prefix repetition: output tokens (128)."
    )
    multi_turn_use_recorded_answers: bool = flag(
        False,
        group=_DATASET,
        help="multi-turn: each turn's history holds the file's (or generated) answers, not "
        "the server's.",
    )
    trace_format: Literal["mooncake", "azure", "bailian", "jsonl"] | None = flag(
        None,
        group=_DATASET,
        help="trace: the file's format (default: told from its first record): mooncake "
        "JSONL (timestamp in ms, input_length, output_length, hash_ids), bailian JSONL "
        "(timestamp in s), azure (the Azure LLM inference trace CSV), jsonl (timestamp in "
        "s or timestamp_ms, prompt or input_length, output_length).",
    )
    time_scale: float = flag(
        1.0,
        group=_DATASET,
        help="trace: multiply the trace's time offsets (0.5 replays twice as fast) (1).",
    )
    trace_start: float = flag(
        0.0,
        group=_DATASET,
        metavar="S",
        help="trace: start S seconds after the trace's first request, in trace time (0).",
    )
    trace_duration: float | None = flag(
        None,
        group=_DATASET,
        metavar="S",
        help="trace: replay S seconds of trace time from --trace-start (default: all).",
    )
    block_size: int | None = flag(
        None,
        group=_DATASET,
        help="trace: tokens per hash_ids block (default 512 for mooncake, 16 for bailian).",
    )

    # Load.
    request_rate: float | None = flag(
        None,
        group=_LOAD,
        help="Requests per second (default inf: all at once; 10 with the embedded server).",
        field={"converter": _opt_float},
    )
    burstiness: float = flag(
        1.0, group=_LOAD, help="Gamma shape of the arrival gaps; 1 is a Poisson process."
    )
    max_concurrency: int | None = flag(
        None, group=_LOAD, help="At most this many requests in flight (default: no limit)."
    )
    ramp_up_strategy: RampUpStrategy | None = flag(
        None, group=_LOAD, help="Raise the rate from --ramp-up-start-rps to --ramp-up-end-rps."
    )
    ramp_up_start_rps: int | None = flag(None, group=_LOAD, help="Ramp-up: first rate (req/s).")
    ramp_up_end_rps: int | None = flag(None, group=_LOAD, help="Ramp-up: last rate (req/s).")
    think_time: str | None = flag(
        None,
        group=_LOAD,
        metavar="SECONDS|DIST",
        help="multi-turn: pause between an answer and the conversation's next turn: SECONDS, "
        "uniform:LOW:HIGH or exponential:MEAN (default 0).",
    )
    max_active_conversations: int | None = flag(
        None,
        group=_LOAD,
        help="multi-turn: at most this many conversations under way; later ones wait for "
        "a place (default: no limit).",
    )
    seed: int = flag(0, group=_LOAD, help="Seed for the dataset sample and the schedule (0).")
    num_warmups: int = flag(
        0, group=_LOAD, help="Unmeasured requests before the run, to open connections (0)."
    )

    # Request content.
    ignore_eos: bool = flag(
        False, group=_CONTENT, help="Ask the server to generate every output token."
    )
    logprobs: int | None = flag(None, group=_CONTENT, help="Log probabilities per token.")
    temperature: float | None = flag(
        None, group=_CONTENT, help="Sampling temperature (openai-compatible backends)."
    )
    top_p: float | None = flag(None, group=_CONTENT, help="Sampling top-p.")
    top_k: int | None = flag(None, group=_CONTENT, help="Sampling top-k.")
    min_p: float | None = flag(None, group=_CONTENT, help="Sampling min-p.")
    frequency_penalty: float | None = flag(None, group=_CONTENT, help="Frequency penalty.")
    presence_penalty: float | None = flag(None, group=_CONTENT, help="Presence penalty.")
    repetition_penalty: float | None = flag(None, group=_CONTENT, help="Repetition penalty.")
    use_beam_search: bool = flag(
        False, group=_CONTENT, help="Accepted for vLLM compatibility; sends nothing."
    )
    lora_modules: tuple[str, ...] | None = flag(
        None,
        group=_CONTENT,
        nargs="+",
        metavar="NAME",
        parse=lambda v: tuple(v) if v else None,
        help="LoRA adapter names the server serves; each request names one as its model.",
    )
    lora_assignment: Literal["random", "round-robin"] = flag(
        "random",
        group=_CONTENT,
        help="How requests pick from --lora-modules: random (seeded) or round-robin.",
    )
    extra_body: dict[str, Any] | None = flag(
        None,
        group=_CONTENT,
        parse=_parse_extra_body,
        help="JSON object merged into every body.",
    )
    request_id_prefix: str | None = flag(
        None, group=_CONTENT, help="Request id prefix (default bench-<8 hex>-)."
    )
    profile: bool = flag(
        False,
        group=_CONTENT,
        help="POST {base_url}/start_profile before the run and /stop_profile after it "
        "(the server must have profiling enabled).",
    )

    # Metrics and output.
    percentile_metrics: str | None = flag(
        None, group=_OUTPUT, help="Comma-separated: ttft,tpot,itl,e2el (default ttft,tpot,itl)."
    )
    metric_percentiles: str = flag(
        "99", group=_OUTPUT, help="Comma-separated percentiles, e.g. 25,50,99.9 (default 99)."
    )
    goodput: dict[str, float] | None = flag(
        None,
        group=_OUTPUT,
        nargs="+",
        metavar="KEY:VALUE",
        parse=_parse_goodput,
        help="SLOs in ms for goodput, e.g. ttft:500 tpot:50.",
    )
    disable_tqdm: bool = flag(False, group=_OUTPUT, help="No progress bar.")
    save_result: bool = flag(False, group=_OUTPUT, help="Write the result JSON file.")
    save_detailed: bool = flag(
        False, group=_OUTPUT, help="Add the per-request lists to the result JSON."
    )
    append_result: bool = flag(
        False, group=_OUTPUT, help="Append to the result file instead of replacing it."
    )
    result_dir: str | None = flag(
        None, group=_OUTPUT, metavar="DIR", help="Where to save the result (default: here)."
    )
    result_filename: str | None = flag(
        None, group=_OUTPUT, metavar="NAME", help="Result file name (default: vLLM's)."
    )
    metadata: dict[str, str] = flag(
        group=_OUTPUT,
        factory=dict,
        nargs="*",
        metavar="KEY=VALUE",
        parse=_parse_metadata,
        help="Extra keys for the result JSON.",
    )
    label: str | None = flag(
        None, group=_OUTPUT, help="Label for the result and its file name (default: the backend)."
    )
    report: str | None = flag(
        None,
        group=_OUTPUT,
        metavar="PATH",
        help="Write the HTML report of the run to PATH at the end (the report extra).",
    )
    output_jsonl: str | None = flag(
        None,
        group=_OUTPUT,
        metavar="PATH",
        help="Write one JSON line per finished request, as it finishes.",
    )
    server_metrics: tuple[str, ...] | None = flag(
        None,
        group=_OUTPUT,
        nargs="*",
        metavar="URL",
        parse=_parse_server_metrics,
        help="Scrape the server's Prometheus metrics before, during and after the run into "
        "the report and the result (server_metrics, vLLM's spec_decode_* keys): from the "
        "URLs given, or alone from {base_url}/metrics when it answers (the metrics extra).",
        field={
            "converter": attrs.converters.optional(tuple),
            "repr": lambda urls: repr(urls if urls is None else tuple(map(redact_url, urls))),
        },
    )
    server_metrics_interval: float = flag(
        1000.0,
        group=_OUTPUT,
        metavar="MS",
        help="Milliseconds between --server-metrics scrapes (default 1000).",
    )
    #: No flag: for programs that run the bench and print their own summary.
    quiet: bool = False

    # Client.
    loop: LoopName = flag(
        "asyncio",
        group=_CLIENT,
        help="Client event loop (default asyncio); trio and uvloop come with the bench extra.",
    )
    workers: int = flag(
        1,
        group=_CLIENT,
        help="Client processes sharing the schedule (default 1).",
        field={"validator": attrs.validators.ge(1)},
    )
    executor: Literal["local", "ray"] = flag(
        "local",
        group=_CLIENT,
        help="Where the --workers run: local (this process, or processes here) or ray "
        "(Ray actors on a Ray cluster; the ray extra) (default local).",
    )
    ray_address: str | None = flag(
        None,
        group=_CLIENT,
        metavar="ADDRESS",
        help="--executor ray: the cluster, auto or ray://HOST:PORT (default: the one "
        "RAY_ADDRESS or ray start names here, else a new local one).",
    )
    workers_per_node: int | None = flag(
        None,
        group=_CLIENT,
        metavar="N",
        help="--executor ray: N actors on each node, on distinct nodes (default: spread).",
    )

    # Embedded mock server.
    mock_ttft: float = flag(
        0.05, group=_MOCK, help="Seconds before the first token (default 0.05)."
    )
    mock_itl: float = flag(0.01, group=_MOCK, help="Seconds between tokens (default 0.01).")
    mock_reasoning_tokens: int = flag(
        0,
        group=_MOCK,
        metavar="N",
        help="Chat answers reason for N tokens before the content (default 0).",
    )

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
        if self.dataset_name == "trace":
            return -1  # the whole trace (or window)
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
        """``--metric-percentiles`` as numbers.

        Raises:
            UsageError: an entry that is not a number in [0, 100].
        """
        values = []
        for part in self.metric_percentiles.split(","):
            if not part.strip():
                continue
            try:
                value = float(part)
            except ValueError:
                value = math.nan
            if not 0.0 <= value <= 100.0:
                raise UsageError(
                    f"invalid percentile {part.strip()!r}",
                    where="--metric-percentiles",
                    why="each entry must be a number from 0 to 100",
                    hint="Use e.g. --metric-percentiles 50,90,99.",
                )
            values.append(value)
        return values

    def sampling_params(self) -> dict[str, Any]:
        """The non-None sampling flags (sent in every request's body)."""
        params = {
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "temperature": self.temperature,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "repetition_penalty": self.repetition_penalty,
        }
        return {k: v for k, v in params.items() if v is not None}

    def validate(self, openai_compatible: frozenset[str] | set[str]) -> None:
        """Check what argparse can't: values and combinations of flags, before anything
        runs (files, extras and the server are ``_setup.check_environment``'s).

        Raises:
            UsageError: the first mistake, naming its flag.
        """
        self._check_numbers()
        self._check_dataset()
        self._check_trace()
        if self.ramp_up_strategy is not None:
            self._check_ramp_up()
        if self.sampling_params() and self.backend not in openai_compatible:
            raise UsageError(
                "sampling flags not supported",
                where=f"--backend {self.backend}",
                why="Sampling parameters are only supported by openai-compatible backends",
                hint="Drop the sampling flags (--temperature, --top-p, --top-k, --min-p, "
                "the penalties), or use --extra-body.",
            )
        for metric in self.percentile_metric_names():
            if metric not in ("ttft", "tpot", "itl", "e2el"):
                raise UsageError(
                    f"unknown percentile metric {metric!r}",
                    where="--percentile-metrics",
                    why="choose from ttft, tpot, itl, e2el",
                )
        self.percentiles()
        self._check_executor()
        if self.base_url is not None:
            _check_url(self.base_url)
        if self.server_metrics is not None:
            from ._server_metrics import check_flags

            check_flags(self.server_metrics, self.server_metrics_interval)

    def _check_executor(self) -> None:
        """The Ray flags need ``--executor ray``."""
        if self.executor != "ray":
            _only_with(
                "--executor ray",
                [
                    ("--ray-address", self.ray_address is not None),
                    ("--workers-per-node", self.workers_per_node is not None),
                ],
            )
        per_node = self.workers_per_node
        if per_node is not None and per_node < 1:
            why = f"--workers-per-node must be at least 1, got {per_node}"
            raise UsageError("invalid value", where="--workers-per-node", why=why)

    def _check_numbers(self) -> None:
        rate = self.request_rate
        if rate is not None and not rate > 0:
            raise UsageError(
                "invalid request rate",
                where="--request-rate",
                why=f"must be a positive number of requests per second, got {rate:g}",
                hint="Use e.g. --request-rate 10, or inf to send every request at once.",
            )
        if not self.burstiness > 0:
            raise UsageError(
                "invalid burstiness",
                where="--burstiness",
                why=f"--burstiness must be positive, got {self.burstiness:g}",
                hint="1 is a Poisson process; lower is burstier.",
            )
        n = self.resolved_num_prompts()
        if n < 1 and not (n == -1 and self.dataset_name in ALL_SAMPLES_DATASETS):
            raise UsageError(
                "invalid value",
                where="--num-prompts",
                why=f"--num-prompts must be at least 1, got {n}",
                hint="-1 (every sample of the file) works with --dataset-name "
                + " and ".join(sorted(ALL_SAMPLES_DATASETS))
                + ".",
            )
        minimums: list[tuple[str, float | None, float]] = [
            ("--max-concurrency", self.max_concurrency, 1),
            ("--max-active-conversations", self.max_active_conversations, 1),
            ("--port", self.port, 1),
            ("--timeout", self.timeout, 1e-9),
            ("--ready-check-timeout-sec", self.ready_check_timeout_sec, 0),
            ("--num-warmups", self.num_warmups, 0),
            ("--random-input-len", self.random_input_len, 0),
            ("--random-output-len", self.random_output_len, 1),
            ("--random-prefix-len", self.random_prefix_len, 0),
            ("--sharegpt-output-len", self.sharegpt_output_len, 1),
            ("--sonnet-output-len", self.sonnet_output_len, 1),
            ("--custom-output-len", self.custom_output_len, -1),
            ("--prefix-repetition-output-len", self.prefix_repetition_output_len, 1),
            ("--input-len", self.input_len, 0),
            ("--output-len", self.output_len, 1),
            ("--random-batch-size", self.random_batch_size, 1),
            ("--spec-bench-output-len", self.spec_bench_output_len, 1),
            ("--hf-output-len", self.hf_output_len, 1),
            ("--random-mm-base-items-per-request", self.random_mm_base_items_per_request, 0),
            ("--asr-min-audio-len-sec", self.asr_min_audio_len_sec, 0),
            ("--logprobs", self.logprobs, 0),
            ("--mock-ttft", self.mock_ttft, 0),
            ("--mock-itl", self.mock_itl, 0),
            ("--mock-reasoning-tokens", self.mock_reasoning_tokens, 0),
        ]
        for name, value, low in minimums:
            if value is not None and not value >= low:
                least = "positive" if low == 1e-9 else f"at least {low:g}"
                raise UsageError(
                    "invalid value",
                    where=name,
                    why=f"{name} must be {least}, got {value:g}",
                )
        if self.port is not None and self.port > 65535:
            raise UsageError("invalid value", where="--port", why=f"no port {self.port}")
        if not 0.0 <= self.random_range_ratio < 1.0:
            raise UsageError(
                "invalid value",
                where="--random-range-ratio",
                why=f"must be in [0, 1), got {self.random_range_ratio:g}",
            )

    def _check_dataset(self) -> None:
        from ._datasets import FILE_DATASETS, canonical_dataset_name

        name = canonical_dataset_name(self.dataset_name)
        if self.dataset_path is not None and name not in FILE_DATASETS:
            raise UsageError(
                "conflicting flags",
                where="--dataset-path",
                why=f"--dataset-name {self.dataset_name} generates its prompts and reads no file",
                hint="Pick the --dataset-name of the file (sharegpt, custom, sonnet, hf, "
                "...), or drop --dataset-path.",
            )
        if name == "random-mm" and self.backend != "openai-chat":
            raise UsageError(
                "unsupported combination",
                where=f"--backend {self.backend}",
                why="random-mm sends images, which only the openai-chat backend carries",
                hint="Use --backend openai-chat --endpoint /v1/chat/completions.",
            )
        self._check_sessions(name)
        for where, value in (
            ("--blazedit-min-distance", self.blazedit_min_distance),
            ("--blazedit-max-distance", self.blazedit_max_distance),
        ):
            if not 0.0 <= value <= 1.0:
                why = f"must be from 0 to 1, got {value:g}"
                raise UsageError("invalid value", where=where, why=why)
        if self.blazedit_min_distance > self.blazedit_max_distance:
            why = "--blazedit-min-distance is over --blazedit-max-distance"
            raise UsageError("invalid value", where="--blazedit-min-distance", why=why)
        if self.asr_min_audio_len_sec > self.asr_max_audio_len_sec:
            why = "--asr-min-audio-len-sec is over --asr-max-audio-len-sec"
            raise UsageError("invalid value", where="--asr-min-audio-len-sec", why=why)
        ratio = self.random_mm_num_mm_items_range_ratio
        if ratio is not None and not 0.0 <= ratio <= 1.0:
            why = f"must be from 0 to 1, got {ratio:g}"
            raise UsageError("invalid value", where="--random-mm-num-mm-items-range-ratio", why=why)

    def _check_trace(self) -> None:
        """A trace brings its own times: the arrival flags conflict with it, and the
        trace flags mean nothing without one."""
        if self.dataset_name != "trace":
            _only_with(
                "--dataset-name trace",
                [
                    ("--trace-format", self.trace_format is not None),
                    ("--time-scale", self.time_scale != 1.0),
                    ("--trace-start", self.trace_start != 0.0),
                    ("--trace-duration", self.trace_duration is not None),
                    ("--block-size", self.block_size is not None),
                ],
            )
            return
        arrival = [
            ("--request-rate", self.request_rate is not None),
            ("--burstiness", self.burstiness != 1.0),
            ("--ramp-up-strategy", self.ramp_up_strategy is not None),
        ]
        for name, set_ in arrival:
            if set_:
                raise UsageError(
                    "conflicting flags",
                    where=name,
                    why=f"--dataset-name trace sends each request at its recorded time, so "
                    f"{name} does not apply",
                    hint="Drop it; --time-scale replays the trace faster or slower.",
                )
        checks: list[tuple[str, float | None, str]] = [
            ("--time-scale", self.time_scale, "positive"),
            ("--trace-duration", self.trace_duration, "positive"),
            ("--block-size", self.block_size, "positive"),
            ("--trace-start", self.trace_start, "non-negative"),
        ]
        for name, value, kind in checks:
            ok = value is None or (value >= 0 if kind == "non-negative" else value > 0)
            if not ok or (value is not None and not math.isfinite(value)):
                why = f"{name} must be a finite {kind} number, got {value:g}"
                raise UsageError("invalid value", where=name, why=why)

    def _check_sessions(self, name: str) -> None:
        """multi-turn needs a chat backend; its flags mean nothing without it."""
        from ._sessions import DATASET, parse_think_time

        if name == DATASET and self.backend != "openai-chat":
            raise UsageError(
                "unsupported combination",
                where=f"--backend {self.backend}",
                why="--dataset-name multi-turn sends each turn with its history as chat "
                "messages, which only the openai-chat backend carries",
                hint="Use --backend openai-chat.",
            )
        if name != DATASET:
            _only_with(
                "--dataset-name multi-turn",
                [
                    ("--think-time", self.think_time is not None),
                    ("--max-active-conversations", self.max_active_conversations is not None),
                    ("--multi-turn-use-recorded-answers", self.multi_turn_use_recorded_answers),
                ],
                hint="Use --dataset-name multi-turn --dataset-path FILE, or drop it.",
            )
        parse_think_time(self.think_time)

    def _check_ramp_up(self) -> None:
        where = "--ramp-up-strategy"
        if self.request_rate is not None and self.request_rate != math.inf:
            raise UsageError(
                "conflicting flags",
                where="--request-rate",
                why="When using ramp-up, do not specify --request-rate. "
                "The request rate will be controlled by ramp-up parameters",
            )
        if self.ramp_up_start_rps is None or self.ramp_up_end_rps is None:
            raise UsageError(
                "missing flags",
                where=where,
                why="When using --ramp-up-strategy, both --ramp-up-start-rps and "
                "--ramp-up-end-rps must be specified",
            )
        if self.ramp_up_start_rps < 0 or self.ramp_up_end_rps < 0:
            why = "Ramp-up start and end RPS must be non-negative"
            raise UsageError("invalid value", where="--ramp-up-start-rps", why=why)
        if self.ramp_up_start_rps > self.ramp_up_end_rps:
            why = "Ramp-up start RPS must be less than end RPS"
            raise UsageError("invalid value", where="--ramp-up-start-rps", why=why)
        if self.ramp_up_strategy == "exponential" and self.ramp_up_start_rps == 0:
            why = "For exponential ramp-up, the start RPS cannot be 0"
            raise UsageError("invalid value", where="--ramp-up-start-rps", why=why)


def _check_url(url: str) -> None:
    """An http(s) URL with a host, or a ``UsageError`` that shows the likely fix."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise UsageError(
            f"invalid URL {redact_url(url)!r}", where="--base-url", why=str(exc)
        ) from None
    if parts.scheme not in ("http", "https"):
        guess = "http://" + url.split("://", 1)[-1]
        raise UsageError(
            f"invalid URL {redact_url(url)!r}",
            where="--base-url",
            why="it needs a scheme, http:// or https://"
            if "://" not in url
            else f"unsupported scheme {parts.scheme!r}",
            hint=f"Try --base-url {redact_url(guess)}.",
        )
    if not host:
        raise UsageError(
            f"invalid URL {redact_url(url)!r}",
            where="--base-url",
            why="it has no host",
            hint="Use e.g. --base-url http://127.0.0.1:8000.",
        )


def flags() -> list[tuple[attrs.Attribute[Any], Flag]]:
    """``(field, flag)`` for every ``BenchConfig`` field with a CLI flag, in field order;
    each flag's ``cli`` and ``type`` filled in from the field's name and annotation."""
    import types
    import typing

    hints = typing.get_type_hints(BenchConfig)
    found = []
    for field in attrs.fields(BenchConfig):
        spec: Flag | None = field.metadata.get(FLAG_KEY)
        if spec is None:
            continue
        cli = spec.cli or "--" + field.name.replace("_", "-")
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
            hint = args[0]  # X | None -> X
        choices = spec.choices
        kind = spec.type
        if typing.get_origin(hint) is Literal and choices is None:
            choices = typing.get_args(hint)
        elif kind is None and hint in (int, float):
            kind = hint
        found.append((field, attrs.evolve(spec, cli=cli, type=kind, choices=choices)))
    return found
