"""``anyio-llmreq bench``: flags compatible with vLLM's ``benchmark_serving.py`` and
``vllm bench serve``, plus ours (``--loop``, ``--workers``, ``--output-jsonl``, ...).

The parser and ``config_from_args`` are derived from ``BenchConfig``'s field metadata
(``_config.flag``): a new flag is one new field, nothing here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._command import debug_requested, exit_status, finish_parser, say_error
from ._config import BenchConfig, UsageError, flags

__all__ = ["add_arguments", "add_parser", "config_from_args", "exit_status", "run_from_args"]

PROG = "anyio-llmreq bench"


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
                # Several values after one flag (vLLM's nargs) and the flag repeated.
                options["action"] = "extend" if spec.nargs else "append"
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
        UsageError: a malformed --extra-body, --header, --metadata or --goodput, or a
            value a field rejects.
    """
    values: dict[str, Any] = {}
    cli = {}
    for field, spec in flags():
        value = getattr(args, field.name)
        values[field.name] = spec.parse(value) if spec.parse is not None else value
        cli[field.name] = spec.cli
    try:
        return BenchConfig(**values)
    except (TypeError, ValueError) as exc:
        # A field's own validator (e.g. --workers >= 1): name the flag, not the field.
        name = next((n for n in cli if repr(n) in str(exc)), None)
        raise UsageError("invalid value", where=cli.get(name or "", None), why=str(exc)) from None


def _error(text: str, config: BenchConfig | None) -> None:
    say_error(PROG, config.scrubber().text(text) if config is not None else text)


def _check_bench_extra() -> None:
    """The bench needs the ``bench`` extra (numpy, tqdm); a base install has neither.
    Looked up, not imported: each is imported where the run uses it (tqdm only for the
    progress bar)."""
    missing = [name for name in ("numpy", "tqdm") if not _installed(name)]
    if missing:
        raise UsageError(
            "missing packages",
            where=", ".join(missing),
            why="anyio-llmreq bench needs the bench extra",
            hint="Install it with: pip install 'anyio-llmreq[bench]'",
        )


def _installed(name: str) -> bool:
    """Whether *name* can be imported, without importing it (None in ``sys.modules``:
    blocked, as ``import`` reads it)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    from importlib.util import find_spec

    return find_spec(name) is not None


def run_from_args(args: argparse.Namespace) -> int:
    """The ``bench`` command. Exit status: 0 when at least one request succeeded; 1 when
    none did, or the server could not be reached; 2 for a mistake in the flags, files or
    setup (one line on stderr, no traceback unless --debug or ANYIO_LLMREQ_DEBUG=1);
    130 after SIGINT and 143 after SIGTERM, once the partial report and files are
    written."""
    config: BenchConfig | None = None

    def bench() -> int:
        nonlocal config
        _check_bench_extra()
        config = config_from_args(args)
        from ._run import run_benchmark

        result = run_benchmark(config)
        if result.stop_signal is not None:
            return 128 + result.stop_signal
        if result.metrics.completed == 0:
            return 130 if result.interrupted and not result.records else 1
        return 0

    return exit_status(
        bench,
        debug=debug_requested(args),
        say=lambda text: _error(text, config),
        interrupted="interrupted before the run started",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to the ``anyio-llmreq`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="Run the serving benchmark (vLLM benchmark_serving compatible).",
        description="Benchmark an LLM server: TTFT, TPOT, ITL, E2EL, throughput and "
        "goodput, vLLM-compatible flags and result files. With no --base-url, runs "
        "against the embedded mock server.",
        epilog="Exit status: 0 measured; 1 no request succeeded or the server could not "
        "be reached; 2 a mistake in the flags, files or setup; 130/143 stopped by "
        "SIGINT/SIGTERM (the partial report and files are written).",
    )
    add_arguments(parser)
    return finish_parser(parser, PROG, run_from_args)
