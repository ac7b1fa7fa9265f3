"""``anyio-llmreq report RESULTS... [-o report.html] [--svg DIR | --png DIR]``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._command import debug_requested, finish_parser, say_error
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
    return finish_parser(parser, PROG, run_from_args)


def run_from_args(args: argparse.Namespace) -> int:
    """The ``report`` command: 0 when the page was written, 2 for a usage error."""
    from ._write import write_report

    try:
        report = write_report(
            args.results, args.output, title=args.title, svg_dir=args.svg, png_dir=args.png
        )
    except UsageError as exc:
        if debug_requested(args):
            raise
        say_error(PROG, str(exc))
        return exc.exit_code
    print(f"Wrote {report.path} ({len(report.charts)} charts).")
    if report.images:
        where = os.path.dirname(report.images[0]) or "."
        print(f"Wrote {len(report.images)} images to {where}.")
    return 0
