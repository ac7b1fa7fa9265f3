"""``anyio-llmreq sweep``: every ``anyio-llmreq bench`` flag, plus the sweep's own.

``--concurrency`` and ``--request-rate`` take lists here (they replace the bench's
single ``--request-rate``; ``--max-concurrency`` stays, as a cap on rate sweeps).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from .._command import debug_requested, exit_status, finish_parser, say_error
from ..bench._cli import add_arguments as add_bench_arguments
from ..bench._cli import config_from_args as bench_config_from_args
from ..bench._config import UsageError
from ._run import Mode, SLAParam, SLASearch, SweepConfig
from ._sla import Tolerance, parse_range, parse_slo, parse_tolerance
from ._space import ParameterSpace, parse_axis, parse_values

__all__ = ["add_arguments", "add_parser", "config_from_args", "main", "run_from_args"]

PROG = "anyio-llmreq sweep"
_SLA_PARAMS: dict[str, SLAParam] = {
    "max_concurrency": "max_concurrency",
    "concurrency": "max_concurrency",
    "request_rate": "request_rate",
    "rate": "request_rate",
}
_LIST_FLAGS = "--concurrency, --request-rate or --sweep"


def _sla_param(text: str) -> SLAParam:
    try:
        return _SLA_PARAMS[text.strip().lstrip("-").replace("-", "_")]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"invalid choice {text!r} (choose max_concurrency or request_rate)"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every bench flag and the sweep's to *parser*, which must resolve conflicts
    (``conflict_handler="resolve"``): the sweep's ``--request-rate`` replaces the
    bench's."""
    add_bench_arguments(parser)
    lists = parser.add_argument_group("sweep: points")
    lists.add_argument(
        "--concurrency",
        dest="sweep_concurrency",
        metavar="N,N,...",
        help="Max concurrencies to sweep, e.g. 1,4,16,64 (at request rate inf unless "
        "--request-rate is swept too).",
    )
    lists.add_argument(
        "--request-rate",
        dest="sweep_request_rate",
        metavar="R,R,...",
        help="Request rates to sweep, e.g. 1,2,4,8,inf.",
    )
    lists.add_argument(
        "--sweep",
        dest="sweep_axes",
        action="append",
        metavar="PARAM=V,V,...",
        help="Values of any bench field, e.g. random_input_len=128,1024 (repeatable); "
        "every list flag combines with the others as a cartesian product.",
    )
    lists.add_argument(
        "--saturation",
        type=int,
        metavar="N",
        help="The saturation profile: a run at concurrency 1, one at rate inf, then N "
        "rates evenly between the two measured request rates.",
    )
    sla = parser.add_argument_group("sweep: SLOs and the SLA search")
    sla.add_argument(
        "--slo",
        nargs="+",
        action="extend",
        metavar="SLO",
        help="METRIC:STAT:LIMIT_MS (ttft, tpot, itl, e2el; mean, median or pNN), e.g. "
        "ttft:p99:500, or goodput:FRACTION (of the requests meeting --goodput). Without "
        "list flags: search for the highest --sla-param that meets them all.",
    )
    sla.add_argument(
        "--sla-param",
        type=_sla_param,
        metavar="PARAM",
        help="What the SLA search varies: max_concurrency (default) or request_rate.",
    )
    sla.add_argument(
        "--sla-range",
        metavar="LOW:HIGH",
        help="Where to search (default 1:1024): LOW, doubling until a run misses the SLOs, "
        "then bisection.",
    )
    sla.add_argument(
        "--sla-tolerance",
        metavar="T",
        help="Stop when the highest pass and the lowest miss are within T, or T%% of the "
        "pass (default 1 for a concurrency, 5%% for a rate).",
    )
    out = parser.add_argument_group("sweep: repeats and files")
    out.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="Run every point K times, seeds seed..seed+K-1: means and 95%% intervals (default 1).",
    )
    out.add_argument(
        "--output-dir",
        metavar="DIR",
        help="Where sweep.json and points/ go (default sweep-YYYYmmdd-HHMMSS).",
    )
    out.add_argument(
        "--resume",
        metavar="DIR",
        help="Continue the sweep in DIR: points whose result files are finished are read, "
        "not run again.",
    )


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """Build a ``SweepConfig`` from parsed arguments.

    Raises:
        UsageError: a bench flag's mistake, a malformed list, SLO or range, an unknown
            field, or flags of different modes together.
    """
    bench_args = argparse.Namespace(**vars(args))
    bench_args.request_rate = None  # the sweep's --request-rate is a list
    bench_args.report = None  # one report for the whole sweep, not one per point
    bench = bench_config_from_args(bench_args)
    axes: list[tuple[str, tuple[Any, ...]]] = []
    if args.sweep_concurrency is not None:
        values = parse_values("max_concurrency", args.sweep_concurrency, where="--concurrency")
        axes.append(("max_concurrency", values))
    if args.sweep_request_rate is not None:
        values = parse_values("request_rate", args.sweep_request_rate, where="--request-rate")
        axes.append(("request_rate", values))
    axes += [parse_axis(text) for text in args.sweep_axes or []]
    space = ParameterSpace.of(axes)
    slos = tuple(dict.fromkeys(parse_slo(text) for text in args.slo or []))
    sla_flags = [
        flag
        for flag, value in (
            ("--sla-param", args.sla_param),
            ("--sla-range", args.sla_range),
            ("--sla-tolerance", args.sla_tolerance),
        )
        if value is not None
    ]
    mode: Mode
    if args.saturation is not None:
        if axes:
            _conflict("--saturation", f"the profile chooses its rates; drop {_LIST_FLAGS}")
        if sla_flags:
            _conflict(sla_flags[0], "the SLA search is a mode of its own; drop --saturation")
        mode = "saturation"
    elif axes:
        if sla_flags:
            _conflict(
                sla_flags[0],
                f"the SLA search varies one parameter itself; drop {_LIST_FLAGS} (with them, "
                "--slo only marks which points meet the SLOs)",
            )
        mode = "list"
    elif slos or sla_flags:
        mode = "sla"
    else:
        raise UsageError(
            "nothing to sweep",
            why="no points given",
            hint="Give --concurrency 1,4,16, --request-rate 1,4,inf, --sweep PARAM=V,V, "
            "--saturation N, or --slo ttft:p99:500 for an SLA search.",
        )
    return SweepConfig(
        bench=bench,
        mode=mode,
        output_dir=_output_dir(args),
        space=space,
        saturation=args.saturation or 0,
        slos=slos,
        search=_search(args) if mode == "sla" else None,
        repeat=args.repeat,
        resume=args.resume is not None,
    )


def _conflict(where: str, why: str) -> NoReturn:
    raise UsageError("conflicting flags", where=where, why=why)


def _search(args: argparse.Namespace) -> SLASearch:
    param: SLAParam = args.sla_param or "max_concurrency"
    integer = param == "max_concurrency"
    low, high = parse_range(args.sla_range or "1:1024", integer=integer)
    if args.sla_tolerance is not None:
        tolerance = parse_tolerance(args.sla_tolerance)
    else:
        tolerance = Tolerance(1.0) if integer else Tolerance(0.05, relative=True)
    return SLASearch(param=param, low=low, high=high, tolerance=tolerance)


def _output_dir(args: argparse.Namespace) -> str:
    if args.resume is not None:
        if args.output_dir is not None and os.path.abspath(args.output_dir) != os.path.abspath(
            args.resume
        ):
            _conflict("--output-dir", "--resume names the directory to continue")
        return str(args.resume)
    if args.output_dir is not None:
        return str(args.output_dir)
    return time.strftime("sweep-%Y%m%d-%H%M%S")


def _error(text: str, config: SweepConfig | None) -> None:
    say_error(PROG, config.bench.scrubber().text(text) if config is not None else text)


def run_from_args(args: argparse.Namespace) -> int:
    """The ``sweep`` command. Exit status: 0 when a request of some point succeeded; 1
    when none did, the server could not be reached, or a point's run failed (the points
    before it are written); 2 for a mistake in the flags or the output directory (one
    line on stderr); 130 after SIGINT and 143 after SIGTERM, once the finished points
    are written."""
    from ..bench._cli import _check_bench_extra
    from ..bench._setup import check_report_extra
    from ._run import run_sweep

    config: SweepConfig | None = None

    def sweep() -> int:
        nonlocal config
        _check_bench_extra()
        config = config_from_args(args)
        if args.report is not None:
            check_report_extra("--report")
        result = run_sweep(config)
        if args.report is not None and result.measured:
            from ..report import write_report

            write_report(config.output_dir, args.report)
            print(f"Wrote the report to {args.report}")
        if result.stop_signal is not None:
            return 128 + result.stop_signal
        return 0 if result.measured else 1

    return exit_status(
        sweep,
        debug=debug_requested(args),
        say=lambda text: _error(text, config),
        interrupted="interrupted",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to the ``anyio-llmreq`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="Run the benchmark over many points: lists, saturation, SLA search.",
        description="Run the serving benchmark at many points: lists of concurrencies, "
        "rates or any bench field (a cartesian product), the saturation profile, or a "
        "search for the highest load meeting SLOs. Every point's result file and a "
        "sweep.json summary go to --output-dir.",
        epilog="Exit status: 0 measured; 1 nothing measured, the server could not be "
        "reached, or a run failed; 2 a mistake in the flags or the output directory; "
        "130/143 stopped by SIGINT/SIGTERM (the finished points are written).",
        conflict_handler="resolve",
    )
    add_arguments(parser)
    return finish_parser(parser, PROG, run_from_args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``anyio-llmreq sweep`` with *argv* (the arguments after ``sweep``); return
    the exit status."""
    from .._cli import main as cli_main

    try:
        return cli_main(["sweep", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as exc:  # --help, or a mistake argparse found (said on stderr)
        return exc.code if isinstance(exc.code, int) else 2
