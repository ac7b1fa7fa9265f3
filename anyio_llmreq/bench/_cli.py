"""``anyio-llmreq bench``: flags compatible with vLLM's ``benchmark_serving.py`` and
``vllm bench serve``, plus ours (``--loop``, ``--workers``, ``--output-jsonl``, ...)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._config import BenchConfig
from ._datasets import DATASET_NAMES
from ._metrics import parse_goodput

__all__ = ["add_parser", "config_from_args", "run_from_args"]


def _backend_choices() -> list[str]:
    from ..backends._registry import backend_names

    return backend_names()


def _header_name_hint(item: str) -> str:
    """``'Authorization: ...'`` for a ``Name: value`` header given with a colon; else
    only that the value is hidden."""
    name, colon, _ = item.partition(":")
    if colon and name.strip() and not any(c.isspace() for c in name.strip()):
        return f"{name.strip() + ': ...'!r}"
    return "(value not shown)"


def _key_values(items: list[str] | None, flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            # A header's value may be a credential: name the header, never echo it.
            shown = repr(item) if flag != "--header" else _header_name_hint(item)
            raise ValueError(f"Invalid {flag} format {shown}. Please use KEY=VALUE format.")
        key, value = item.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every bench flag to *parser*."""
    target = parser.add_argument_group("server")
    target.add_argument(
        "--backend",
        default="openai",
        choices=_backend_choices(),
        help="Request format / server dialect (default: openai).",
    )
    target.add_argument(
        "--base-url",
        default=None,
        help="Server base URL, e.g. http://localhost:8000. Without it (and without "
        "--host/--port) the bench starts its embedded mock server.",
    )
    target.add_argument("--host", default=None, help="Server host (default 127.0.0.1).")
    target.add_argument("--port", type=int, default=None, help="Server port (default 8000).")
    target.add_argument(
        "--endpoint",
        default=None,
        help="API path; by default the backend's (/v1/completions, /v1/chat/completions, "
        "/generate_stream, /v2/models/<model>/generate_stream, ...).",
    )
    target.add_argument(
        "--model",
        default=None,
        help="Model name; by default the first model of GET {base_url}/v1/models.",
    )
    target.add_argument(
        "--served-model-name",
        default=None,
        help="The model name sent in requests if it differs from --model.",
    )
    target.add_argument(
        "--header",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="Extra HTTP header for every request (repeatable).",
    )
    target.add_argument("--insecure", action="store_true", help="Skip TLS verification.")
    target.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="Per-request total deadline in seconds (default: none).",
    )
    target.add_argument(
        "--ready-check-timeout-sec",
        type=float,
        default=0,
        help="Retry a test request until it succeeds, up to this many "
        "seconds, before the run (default 0: no check).",
    )

    tok = parser.add_argument_group("tokenizer")
    tok.add_argument(
        "--tokenizer",
        default=None,
        help="Tokenizer name or path (default: the model; none with the "
        "embedded server, which counts whitespace words).",
    )
    tok.add_argument(
        "--tokenizer-mode",
        default="auto",
        choices=["auto", "slow", "mistral", "custom", "words"],
        help="'words' counts whitespace words, like the mock server.",
    )
    tok.add_argument("--trust-remote-code", action="store_true")

    data = parser.add_argument_group("dataset")
    data.add_argument("--dataset-name", default="random", choices=list(DATASET_NAMES))
    data.add_argument("--dataset-path", default=None)
    data.add_argument(
        "--num-prompts",
        type=int,
        default=None,
        help="Number of prompts (default 1000; 200 with the embedded server).",
    )
    data.add_argument(
        "--random-input-len", "--input-len", dest="random_input_len", type=int, default=1024
    )
    data.add_argument(
        "--random-output-len", "--output-len", dest="random_output_len", type=int, default=128
    )
    data.add_argument("--random-range-ratio", type=float, default=0.0)
    data.add_argument("--random-prefix-len", type=int, default=0)
    data.add_argument("--sharegpt-output-len", type=int, default=None)
    data.add_argument("--sonnet-input-len", type=int, default=550)
    data.add_argument("--sonnet-output-len", type=int, default=150)
    data.add_argument("--sonnet-prefix-len", type=int, default=200)
    data.add_argument("--custom-output-len", type=int, default=256)
    data.add_argument("--custom-skip-chat-template", action="store_true")
    data.add_argument("--prefix-repetition-prefix-len", type=int, default=256)
    data.add_argument("--prefix-repetition-suffix-len", type=int, default=256)
    data.add_argument("--prefix-repetition-num-prefixes", type=int, default=10)
    data.add_argument("--prefix-repetition-output-len", type=int, default=128)

    load = parser.add_argument_group("load")
    load.add_argument(
        "--request-rate",
        type=float,
        default=None,
        help="Requests per second (default inf: all at once; 10 with the embedded server).",
    )
    load.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        help="Gamma shape of the arrival gaps; 1 is a Poisson process.",
    )
    load.add_argument("--max-concurrency", type=int, default=None)
    load.add_argument("--ramp-up-strategy", choices=["linear", "exponential"], default=None)
    load.add_argument("--ramp-up-start-rps", type=int, default=None)
    load.add_argument("--ramp-up-end-rps", type=int, default=None)
    load.add_argument("--seed", type=int, default=0)
    load.add_argument("--num-warmups", type=int, default=0)

    req = parser.add_argument_group("request content")
    req.add_argument("--ignore-eos", action="store_true")
    req.add_argument("--logprobs", type=int, default=None)
    req.add_argument("--temperature", type=float, default=None)
    req.add_argument("--top-p", type=float, default=None)
    req.add_argument("--top-k", type=int, default=None)
    req.add_argument("--min-p", type=float, default=None)
    req.add_argument("--extra-body", default=None, help="JSON object merged into every body.")
    req.add_argument(
        "--request-id-prefix", default=None, help="Request id prefix (default bench-<8 hex>-)."
    )

    out = parser.add_argument_group("metrics and output")
    out.add_argument(
        "--percentile-metrics",
        default=None,
        help="Comma-separated: ttft,tpot,itl,e2el (default ttft,tpot,itl).",
    )
    out.add_argument(
        "--metric-percentiles",
        default="99",
        help="Comma-separated percentiles, e.g. 25,50,99.9 (default 99).",
    )
    out.add_argument(
        "--goodput",
        nargs="+",
        default=None,
        metavar="KEY:VALUE",
        help="SLOs in ms for goodput, e.g. ttft:500 tpot:50.",
    )
    out.add_argument("--disable-tqdm", action="store_true")
    out.add_argument("--save-result", action="store_true")
    out.add_argument("--save-detailed", action="store_true")
    out.add_argument("--append-result", action="store_true")
    out.add_argument("--result-dir", default=None)
    out.add_argument("--result-filename", default=None)
    out.add_argument("--metadata", nargs="*", default=None, metavar="KEY=VALUE")
    out.add_argument("--label", default=None)
    out.add_argument(
        "--output-jsonl",
        default=None,
        metavar="PATH",
        help="Write one JSON line per finished request, as it finishes.",
    )

    client = parser.add_argument_group("client")
    client.add_argument("--loop", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    client.add_argument(
        "--workers", type=int, default=1, help="Client processes sharing the schedule (default 1)."
    )

    mock = parser.add_argument_group("embedded mock server")
    mock.add_argument(
        "--mock-ttft",
        type=float,
        default=0.05,
        help="Seconds before the first token (default 0.05).",
    )
    mock.add_argument(
        "--mock-itl", type=float, default=0.01, help="Seconds between tokens (default 0.01)."
    )


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Build a ``BenchConfig`` from parsed arguments.

    Raises:
        ValueError: a malformed --extra-body, --header, --metadata or --goodput.
    """
    extra_body: dict[str, Any] | None = None
    if args.extra_body:
        extra_body = json.loads(args.extra_body)
        if not isinstance(extra_body, dict):
            raise ValueError("--extra-body must be a JSON object")
    goodput = parse_goodput(args.goodput) if args.goodput else None
    return BenchConfig(
        backend=args.backend,
        base_url=args.base_url,
        host=args.host,
        port=args.port,
        endpoint=args.endpoint,
        model=args.model,
        served_model_name=args.served_model_name,
        insecure=args.insecure,
        headers=_key_values(args.header, "--header"),
        timeout=args.timeout,
        tokenizer=args.tokenizer,
        tokenizer_mode=args.tokenizer_mode,
        trust_remote_code=args.trust_remote_code,
        dataset_name=args.dataset_name,
        dataset_path=args.dataset_path,
        num_prompts=args.num_prompts,
        random_input_len=args.random_input_len,
        random_output_len=args.random_output_len,
        random_range_ratio=args.random_range_ratio,
        random_prefix_len=args.random_prefix_len,
        sharegpt_output_len=args.sharegpt_output_len,
        sonnet_input_len=args.sonnet_input_len,
        sonnet_output_len=args.sonnet_output_len,
        sonnet_prefix_len=args.sonnet_prefix_len,
        custom_output_len=args.custom_output_len,
        custom_skip_chat_template=args.custom_skip_chat_template,
        prefix_repetition_prefix_len=args.prefix_repetition_prefix_len,
        prefix_repetition_suffix_len=args.prefix_repetition_suffix_len,
        prefix_repetition_num_prefixes=args.prefix_repetition_num_prefixes,
        prefix_repetition_output_len=args.prefix_repetition_output_len,
        request_rate=args.request_rate,
        burstiness=args.burstiness,
        max_concurrency=args.max_concurrency,
        ramp_up_strategy=args.ramp_up_strategy,
        ramp_up_start_rps=args.ramp_up_start_rps,
        ramp_up_end_rps=args.ramp_up_end_rps,
        seed=args.seed,
        num_warmups=args.num_warmups,
        ready_check_timeout_sec=args.ready_check_timeout_sec,
        ignore_eos=args.ignore_eos,
        logprobs=args.logprobs,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        extra_body=extra_body,
        request_id_prefix=args.request_id_prefix,
        percentile_metrics=args.percentile_metrics,
        metric_percentiles=args.metric_percentiles,
        goodput=goodput,
        disable_tqdm=args.disable_tqdm,
        save_result=args.save_result,
        save_detailed=args.save_detailed,
        append_result=args.append_result,
        result_dir=args.result_dir,
        result_filename=args.result_filename,
        metadata=_key_values(args.metadata, "metadata"),
        label=args.label,
        output_jsonl=args.output_jsonl,
        loop=args.loop,
        workers=args.workers,
        mock_ttft=args.mock_ttft,
        mock_itl=args.mock_itl,
    )


def _print_error(exc: BaseException, config: BenchConfig | None) -> None:
    text = str(exc) if config is None else config.scrubber().text(str(exc))
    print(f"anyio-llmreq bench: error: {text}", file=sys.stderr)


def run_from_args(args: argparse.Namespace) -> int:
    """The ``bench`` command: 0 when at least one request succeeded, 1 when all failed,
    2 on a configuration error, 130 when interrupted before anything finished."""
    from .._exceptions import ConfigError
    from ._run import run_benchmark

    config: BenchConfig | None = None
    try:
        config = config_from_args(args)
        result = run_benchmark(config)
    except (ValueError, ConfigError, argparse.ArgumentTypeError) as exc:
        _print_error(exc, config)
        return 2
    except RuntimeError as exc:
        _print_error(exc, config)
        return 1
    if result.metrics.completed == 0:
        return 130 if result.interrupted and not result.records else 1
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to the ``anyio-llmreq`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="Run the serving benchmark (vLLM benchmark_serving compatible).",
        description="Benchmark an LLM server: TTFT, TPOT, ITL, E2EL, throughput and "
        "goodput, vLLM-compatible flags and result files. With no --base-url, runs "
        "against the embedded mock server.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_from_args)
    return parser
