"""``anyio-llmreq report RESULTS... [-o report.html] [--svg DIR | --png DIR]``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

from ..bench._config import UsageError

__all__ = ["PROG", "add_parser", "run_from_args"]

PROG = "anyio-llmreq report"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to the ``anyio-llmreq`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="Make a self-contained HTML report from result files.",
        description="Charts and tables from bench result files (--save-result, "
        "--append-result, vLLM's), --output-jsonl logs and sweep.json files, several "
        "overlaid to compare them, in one HTML file that opens with no network.",
        epilog="Exit status: 0 written; 2 a file that can't be read, or a mistake in the "
        "flags (one line on stderr).",
    )
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULTS",
        help="Result JSON files, JSONL logs or sweep.json files.",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="PATH",
        help="Where to write the page (default report.html).",
    )
    images = parser.add_mutually_exclusive_group()
    images.add_argument("--svg", metavar="DIR", help="Also write each chart as DIR/<chart>.svg.")
    images.add_argument("--png", metavar="DIR", help="Also write each chart as DIR/<chart>.png.")
    parser.add_argument("--title", help="The page title (default: names the inputs).")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="Show the full traceback of an error (also: ANYIO_LLMREQ_DEBUG=1).",
    )
    setattr(parser, "error", _usage_error)  # noqa: B010 - an instance's own error()
    parser.set_defaults(func=run_from_args)
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """The ``report`` command: 0 when the page was written, 2 for a usage error."""
    from ._write import write_report

    try:
        report = write_report(
            args.results, args.output, title=args.title, svg_dir=args.svg, png_dir=args.png
        )
    except UsageError as exc:
        if _debug(args):
            raise
        _error(str(exc))
        return exc.exit_code
    print(f"Wrote {report.path} ({len(report.charts)} charts).")
    if report.images:
        where = os.path.dirname(report.images[0]) or "."
        print(f"Wrote {len(report.images)} images to {where}.")
    return 0


def _debug(args: argparse.Namespace) -> bool:
    env = os.environ.get("ANYIO_LLMREQ_DEBUG", "").strip().lower()
    return bool(getattr(args, "debug", False)) or env not in ("", "0", "false", "no", "off")


def _error(text: str) -> None:
    print(f"{PROG}: error: {' '.join(text.split())}", file=sys.stderr)


def _usage_error(message: str) -> NoReturn:
    """argparse's errors as one line (the usage is ``--help``'s)."""
    _error(f"{message}. Run '{PROG} --help' for the flags.")
    sys.exit(2)
