"""The ``anyio-llmreq`` command: ``bench``, ``sweep``, ``report`` and ``mock-server``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anyio-llmreq",
        description="Benchmark LLM serving backends: TTFT, ITL, TPOT and latency.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .bench._cli import add_parser as add_bench_parser
    from .report._cli import add_parser as add_report_parser
    from .sweep._cli import add_parser as add_sweep_parser
    from .testing._cli import add_parser as add_mock_parser

    add_bench_parser(subparsers)
    add_sweep_parser(subparsers)
    add_report_parser(subparsers)
    add_mock_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
