"""``anyio-llmreq mock-server``: run the mock server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal

import anyio

from .._loops import LOOPS, loop_backend
from ._behaviour import SERVING_ITL, SERVING_TTFT, MockBehaviour
from ._http import MAX_BODY
from ._server import open_mock_server

__all__ = ["add_parser", "run"]

_LINE_ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


class _DefaultsFormatter(argparse.HelpFormatter):
    """Shows each flag's default where it says something (not None or a switch's bool)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, argparse.SUPPRESS) or isinstance(default, bool):
            return text
        return f"{text} (default: %(default)s)"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``mock-server`` subcommand; it sets ``func`` to :func:`run`."""
    p = subparsers.add_parser(
        "mock-server",
        help="run a mock LLM server (OpenAI, TGI, Triton, MII, audio, embeddings)",
        description="Serve deterministic mock LLM responses with configurable timing "
        "and faults. Any behaviour field can also be set per request with a top-level "
        '"mock" object in the JSON body or an x-mock-behaviour header.',
        formatter_class=_DefaultsFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--model", default="mock-model", help="served model name")
    p.add_argument("--loop", choices=sorted(LOOPS), default="asyncio", help="event loop")
    p.add_argument("--record", action="store_true", help="keep requests for /mock/requests")
    p.add_argument(
        "--max-body-size",
        type=int,
        default=MAX_BODY,
        metavar="BYTES",
        help="larger request bodies are answered 413 (default: 16 MiB)",
    )
    timing = p.add_argument_group("timing and output")
    # The bench's embedded server uses the same timing, so the two answer alike.
    timing.add_argument(
        "--ttft", type=float, default=SERVING_TTFT, help="seconds to the first event"
    )
    timing.add_argument("--itl", type=float, default=SERVING_ITL, help="seconds between events")
    timing.add_argument(
        "--capacity",
        type=int,
        default=None,
        metavar="N",
        help="at most N requests generate at once; the others queue before their first "
        "token (default: no limit)",
    )
    timing.add_argument(
        "--ttft-per-active",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds added to the TTFT per other request generating",
    )
    timing.add_argument("--output-len", type=int, default=16, help="tokens when unspecified")
    timing.add_argument("--max-output-len", type=int, default=None, help="cap on tokens")
    timing.add_argument("--tokens-per-event", type=int, default=1, help="tokens in each event")
    timing.add_argument(
        "--reasoning-tokens", type=int, default=0, help="chat: reasoning tokens before the answer"
    )
    timing.add_argument("--unicode", action="store_true", help="emit multi-byte words")
    usage = timing.add_mutually_exclusive_group()
    usage.add_argument(
        "--no-usage",
        dest="usage",
        action="store_false",
        default=None,
        help="never send usage (default: as the request asks)",
    )
    usage.add_argument("--usage", dest="usage", action="store_true", help="always send usage")
    timing.add_argument(
        "--continuous-usage",
        action="store_true",
        default=None,
        help="usage in every event (default: as the request asks)",
    )
    framing = p.add_argument_group("SSE framing")
    framing.add_argument(
        "--line-ending", choices=sorted(_LINE_ENDINGS), default="lf", help="SSE line ending"
    )
    framing.add_argument("--ping-every", type=int, default=None, help="': ping' every N events")
    framing.add_argument("--event-ids", action="store_true", help="an 'id:' field on each event")
    framing.add_argument(
        "--no-done", dest="send_done", action="store_false", help="end without 'data: [DONE]'"
    )
    faults = p.add_argument_group("faults")
    faults.add_argument("--status", type=int, default=None, help="answer every request so")
    faults.add_argument("--fault-rate", type=float, default=0.0, help="share of faulty requests")
    faults.add_argument("--seed", type=int, default=None, help="seed for --fault-rate draws")
    faults.add_argument(
        "--behaviour",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="any other MockBehaviour fields, e.g. '{\"split_every\": 7}'",
    )
    p.set_defaults(func=run)


def behaviour_from_args(args: argparse.Namespace) -> MockBehaviour:
    """The :class:`MockBehaviour` the flags describe."""
    base = MockBehaviour(
        ttft=args.ttft,
        itl=args.itl,
        capacity=args.capacity,
        ttft_per_active=args.ttft_per_active,
        output_len=args.output_len,
        max_output_len=args.max_output_len,
        tokens_per_event=args.tokens_per_event,
        reasoning_tokens=args.reasoning_tokens,
        unicode=args.unicode,
        usage=args.usage,
        continuous_usage=args.continuous_usage,
        line_ending=_LINE_ENDINGS[args.line_ending],
        ping_every=args.ping_every,
        event_ids=args.event_ids,
        send_done=args.send_done,
        status=args.status,
        fault_rate=args.fault_rate,
        seed=args.seed,
    )
    return base.with_overrides(args.behaviour or {})


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit status."""
    try:
        behaviour = behaviour_from_args(args)
    except (ValueError, TypeError) as exc:
        print(f"anyio-llmreq mock-server: {exc}")
        return 2
    if args.max_body_size < 0:
        print(f"anyio-llmreq mock-server: --max-body-size must be >= 0, not {args.max_body_size}")
        return 2
    backend, options = loop_backend(args.loop)
    try:
        anyio.run(_serve, args, behaviour, backend=backend, backend_options=options)
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(args: argparse.Namespace, behaviour: MockBehaviour) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_mock_server(
            behaviour,
            host=args.host,
            port=args.port,
            model=args.model,
            record=args.record,
            max_body_size=args.max_body_size,
        ) as server:
            print(f"mock server listening on {server.base_url}", flush=True)
            async for _ in signals:
                break
