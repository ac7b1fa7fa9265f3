"""``anyio-llmreq bench``: flags compatible with vLLM's ``benchmark_serving.py`` and
``vllm bench serve``, plus ours (``--loop``, ``--workers``, ``--output-jsonl``, ...).

The parser and ``config_from_args`` are derived from ``BenchConfig``'s field metadata
(``_config.flag``): a new flag is one new field, nothing here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._config import BenchConfig, flags

__all__ = ["add_arguments", "add_parser", "config_from_args", "run_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every bench flag to *parser*, in ``BenchConfig``'s field order and groups."""
    groups: dict[str, Any] = {}
    for field, spec in flags():
        group = groups.get(spec.group)
        if group is None:
            group = groups[spec.group] = parser.add_argument_group(spec.group)
        options: dict[str, Any] = {"dest": field.name, "help": spec.help}
        if field.type in (bool, "bool"):
            options["action"] = "store_true"
        else:
            if spec.repeat:
                options["action"] = "append"
            # A parsed flag maps "not given" itself, so argparse hands it None.
            options["default"] = None if spec.parse is not None else field.default
            if spec.type is not None:
                options["type"] = spec.type
            if spec.choices is not None:
                choices = spec.choices() if callable(spec.choices) else spec.choices
                options["choices"] = list(choices)
            if spec.nargs is not None:
                options["nargs"] = spec.nargs
            if spec.metavar is not None:
                options["metavar"] = spec.metavar
        group.add_argument(spec.cli, *spec.aliases, **options)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """Build a ``BenchConfig`` from parsed arguments.

    Raises:
        ValueError: a malformed --extra-body, --header, --metadata or --goodput.
    """
    values: dict[str, Any] = {}
    for field, spec in flags():
        value = getattr(args, field.name)
        values[field.name] = spec.parse(value) if spec.parse is not None else value
    return BenchConfig(**values)


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
