"""The ``anyio-llmreq`` command: ``bench``, ``sweep``, ``report`` and ``mock-server``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

#: Each command's module (with ``add_parser``), imported only when its parser is built:
#: ``anyio-llmreq bench`` need not import the report, sweep and mock-server code (100+ ms).
_COMMANDS = {
    "bench": "anyio_llmreq.bench._cli",
    "sweep": "anyio_llmreq.sweep._cli",
    "report": "anyio_llmreq.report._cli",
    "mock-server": "anyio_llmreq.testing._cli",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command-line parser: every command, or only the command *only*."""
    parser = argparse.ArgumentParser(
        prog="anyio-llmreq",
        description="Benchmark LLM serving backends: TTFT, ITL, TPOT and latency.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _COMMANDS.items():
        if only is None or only == name:
            importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    # `--help` and an unknown command get the full parser.
    only = args[0] if args and args[0] in _COMMANDS else None
    parser = build_parser(only)
    parsed, unknown = parser.parse_known_args(args)
    if unknown:
        # The command's own parser says it, in the command's one-line error style.
        command = _command_parsers(parser)[parsed.command]
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    status: int = parsed.func(parsed)
    return status


def _command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no commands")  # pragma: no cover - build_parser adds them


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
