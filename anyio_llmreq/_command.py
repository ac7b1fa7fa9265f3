"""What every ``anyio-llmreq`` command shares: errors as one line on stderr, and
``--debug`` (or ``ANYIO_LLMREQ_DEBUG=1``) for the traceback instead, and what a
command's failure means as an exit status."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

__all__ = ["debug_requested", "exit_status", "finish_parser", "say_error"]


def debug_requested(args: argparse.Namespace) -> bool:
    """``--debug`` given, or ``ANYIO_LLMREQ_DEBUG`` set to something true."""
    env = os.environ.get("ANYIO_LLMREQ_DEBUG", "").strip().lower()
    return bool(getattr(args, "debug", False)) or env not in ("", "0", "false", "no", "off")


def say_error(prog: str, text: str) -> None:
    """``<prog>: error: <text>`` as one line on stderr, whatever line breaks *text* held."""
    print(f"{prog}: error: {' '.join(text.split())}", file=sys.stderr)


def finish_parser(
    parser: argparse.ArgumentParser, prog: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Give a command's *parser* the shared ``--debug`` flag, argparse's own errors as
    one line (the usage is ``--help``'s), and *run* as what it does."""

    def usage_error(message: str) -> NoReturn:
        say_error(prog, f"{message}. Run '{prog} --help' for the flags.")
        sys.exit(2)

    parser.add_argument(
        "--debug",
        action="store_true",
        help="Show the full traceback of an error (also: ANYIO_LLMREQ_DEBUG=1).",
    )
    setattr(parser, "error", usage_error)  # noqa: B010 - an instance's own error()
    parser.set_defaults(func=run)
    return parser


def exit_status(
    command: Callable[[], int], *, debug: bool, say: Callable[[str], None], interrupted: str
) -> int:
    """Run *command* (``bench``, ``sweep``) and map what it raises to one line through
    *say* and an exit status: a ``UsageError`` its own (2, or 1 when nothing could be
    measured), a configuration the backend rejects 2, a failed run 1, Ctrl-C before the
    run 130. With *debug* the exception propagates with its traceback."""
    from ._exceptions import LLMReqError
    from .bench._config import UsageError

    try:
        return command()
    except UsageError as exc:
        if debug:
            raise
        say(str(exc))
        return exc.exit_code
    except (LLMReqError, argparse.ArgumentTypeError) as exc:
        # A configuration the backend rejects (ConfigError): the user's to fix.
        if debug:
            raise
        say(str(exc))
        return 2
    except RuntimeError as exc:
        # The run itself failed (the ready check, a worker): nothing was measured.
        if debug:
            raise
        say(str(exc))
        return 1
    except KeyboardInterrupt:
        # Ctrl-C before the requests started (during setup): nothing to report.
        if debug:
            raise
        say(interrupted)
        return 130
