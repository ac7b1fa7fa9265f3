"""Setup: what a run does with the server before it measures anything.

Check what can be checked without the server (``check_environment``: the event loop's
package, the dataset file, output paths; ``preload_counter``: the tokenizer), start the
embedded mock server when no server is named (``open_server``), ask the server for its
model (``resolve_model``) and load the tokenizer (``resolve_target``), then, with the
run's client, probe the endpoint once, wait for it and warm up (``get_ready``). Every
mistake found on the way is a ``UsageError`` naming its flag, file or URL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import sys
from collections.abc import AsyncIterator

import anyio

from .._client import Client
from .._models import RequestFuncInput, RequestFuncOutput
from ..backends._base import Backend
from ._config import BenchConfig, UsageError
from ._datasets import FILE_DATASETS, canonical_dataset_name, missing_dataset_path
from ._drive import one_line_error, send_counted
from ._plan import Target, WorkloadPlan
from ._redact import Console, redact_url
from ._tokens import TokenCounter, WordCounter, load_token_counter

__all__ = [
    "check_environment",
    "get_ready",
    "open_server",
    "preload_counter",
    "resolve_model",
    "resolve_target",
]

#: Datasets read from ``--dataset-path``.
_CONNECT_HINT = "Start the server, or fix --base-url (or --host/--port)."
_AUTH_HINT = (
    "Set OPENAI_API_KEY, or pass --header 'Authorization=Bearer KEY' with the server's key."
)


def check_environment(config: BenchConfig) -> None:
    """What can be checked before any server is contacted: the ``--loop`` package, the
    dataset file, the ``--output-jsonl`` directory.

    Raises:
        UsageError: the first problem, naming its flag or file.
    """
    check_loop(config.loop)
    if config.executor == "ray":
        from ._ray import require_ray

        require_ray()
    _check_dataset_path(config)
    if config.report is not None:
        check_report_extra("--report")
    if config.output_jsonl is not None:
        parent = os.path.dirname(os.path.abspath(config.output_jsonl))
        if not os.path.isdir(parent):
            raise UsageError(
                "cannot write the request log",
                where=f"--output-jsonl {config.output_jsonl}",
                why=f"no directory {parent}",
                hint="Create it, or pick another path.",
            )


def check_report_extra(where: str) -> None:
    """The HTML report needs the ``report`` extra: said before the run, not after it.

    Raises:
        UsageError: altair or vl-convert-python is not installed.
    """
    import importlib.util

    missing = [name for name in ("altair", "vl_convert") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            "missing packages",
            where=where,
            why=f"the HTML report needs {' and '.join(missing)}",
            hint="Install them with: pip install 'anyio-llmreq[report]'",
        )


def check_loop(loop: str) -> None:
    """``--loop trio``/``uvloop`` need their package (the ``bench`` extra has both).

    Raises:
        UsageError: it is not installed.
    """
    if loop == "asyncio":
        return
    if loop == "uvloop" and sys.platform == "win32":  # pragma: no cover
        raise UsageError(
            "uvloop is not available on Windows", where="--loop uvloop", hint="Use --loop asyncio."
        )
    try:
        importlib.import_module(loop)
    except ImportError as exc:
        raise UsageError(
            f"the {loop} event loop is not installed",
            where=f"--loop {loop}",
            why=str(exc),
            hint=f"Install it with: pip install 'anyio-llmreq[bench]' "
            f"(or 'anyio-llmreq[{loop}]'), or use --loop asyncio.",
        ) from None


def _check_dataset_path(config: BenchConfig) -> None:
    name = canonical_dataset_name(config.dataset_name)
    if name not in FILE_DATASETS:
        return
    path = config.dataset_path
    if path is None:
        raise missing_dataset_path(name)
    if name == "hf" or (name == "txt-slices" and path.startswith(("http://", "https://"))):
        return  # a hub id or a local dataset directory; a URL: their samplers say
    why = None
    if not os.path.exists(path):
        why = "no such file"
    elif os.path.isdir(path):
        why = "it is a directory"
    elif not os.access(path, os.R_OK):
        why = "permission denied"
    if why is not None:
        raise UsageError(
            "cannot read the dataset",
            where=f"--dataset-path {path}",
            why=why,
            hint="Check the path.",
        )


def preload_counter(config: BenchConfig, console: Console) -> tuple[TokenCounter, str] | None:
    """The token counter when the flags alone say which (``--tokenizer``,
    ``--tokenizer-mode words``, ``--model``, or the embedded server's words), loaded
    before any server starts; ``None`` when it depends on the server's model.

    Raises:
        UsageError: the tokenizer can't be loaded (why, and what to pass instead).
    """
    if config.tokenizer_mode == "words" or (config.embedded and config.tokenizer is None):
        return WordCounter(), "whitespace-words"
    if config.skip_tokenizer_init:
        # vLLM's tokenizer_id is None then; lengths are words and the server's usage.
        return WordCounter(), "whitespace-words"
    name = config.tokenizer or config.model
    if name is None:
        return None
    return _load_counter(config, name, console), name


@contextlib.asynccontextmanager
async def open_server(config: BenchConfig) -> AsyncIterator[str]:
    """The base URL to benchmark: the configured server's, or that of an embedded mock
    server started here (and stopped on exit) when none is named."""
    if not config.embedded:
        resolved = config.resolved_base_url()
        assert resolved is not None
        yield resolved
        return
    from ..testing import MockBehaviour, open_mock_server

    behaviour = MockBehaviour(
        ttft=config.mock_ttft, itl=config.mock_itl, reasoning_tokens=config.mock_reasoning_tokens
    )
    async with open_mock_server(
        behaviour, model=config.model or "mock-model", record=False
    ) as server:
        yield server.base_url


async def resolve_target(
    config: BenchConfig,
    base_url: str,
    console: Console,
    preloaded: tuple[TokenCounter, str] | None = None,
) -> Target:
    """The model (from the flags or the server) and its token counter (*preloaded*, or
    the tokenizer of the server's model)."""
    verify = not config.insecure
    model_name, model_id = await resolve_model(config, base_url, verify)
    if preloaded is None:
        preloaded = preload_counter(config, console)
    if preloaded is None:
        preloaded = _load_counter(config, model_id, console), model_id
    counter, tokenizer_id = preloaded
    return Target(
        base_url=base_url,
        model_name=model_name,
        model_id=model_id,
        counter=counter,
        tokenizer_id=tokenizer_id,
        verify=verify,
        embedded=config.embedded,
    )


def _models_headers(config: BenchConfig) -> dict[str, str]:
    """The headers of ``GET /v1/models``: the requests' bearer key (``OPENAI_API_KEY``,
    as the client sends it), then ``--header``, whose Authorization wins in any case."""
    from .._engine import add_bearer
    from ..backends._base import api_key_from_env

    return add_bearer(dict(config.headers), api_key_from_env())


async def resolve_model(config: BenchConfig, base_url: str, verify: bool) -> tuple[str, str]:
    """``(model_name, model_id)``: the flags, or the server's first model (vLLM). This
    ``GET /v1/models`` is also the check that the server is there and lets us in.

    Raises:
        UsageError: the server can't be reached (exit status 1), wants credentials, or
            has no model list (the URL, the reason and what to try).
    """
    if config.model is not None:
        return config.served_model_name or config.model, config.model
    import httpx

    url = f"{base_url}/v1/models"
    shown = redact_url(url)
    what = "could not ask the server for its model"
    try:
        async with httpx.AsyncClient(verify=verify, timeout=30.0) as http:
            response = await http.get(url, headers=_models_headers(config))
    except httpx.TransportError as exc:
        raise _unreachable(shown, exc) from None
    status = f"HTTP {response.status_code} {response.reason_phrase}"
    if response.status_code in (401, 403):
        raise UsageError(what, where=shown, why=f"{status}: credentials needed", hint=_AUTH_HINT)
    if response.is_error:
        raise UsageError(
            what,
            where=shown,
            why=status,
            hint="Pass --model NAME (servers without /v1/models need it), and check --base-url.",
            exit_code=2 if response.status_code < 500 else 1,
        )
    try:
        entry = response.json()["data"][0]
        model_id = entry.get("root") or entry["id"]
        name = entry["id"]
    except Exception as exc:
        raise UsageError(
            what,
            where=shown,
            why=f"the answer is not a model list ({one_line_error(exc)})",
            hint="Pass --model NAME.",
        ) from None
    return config.served_model_name or name, model_id


def _unreachable(where: str, exc: BaseException) -> UsageError:
    """Connection refused, a name that doesn't resolve, a timeout: exit status 1."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text.lower():
        why = "connection refused"
    elif "name or service" in text.lower() or "nodename" in text.lower():
        why = "the host name does not resolve"
    elif "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        why = "the connection timed out"
    else:
        why = one_line_error(exc)
    return UsageError(
        "could not connect to the server", where=where, why=why, hint=_CONNECT_HINT, exit_code=1
    )


def _load_counter(config: BenchConfig, name: str, console: Console) -> TokenCounter:
    return load_token_counter(
        name,
        # vLLM's "hf" is transformers' fast tokenizer: our "auto".
        "auto" if config.tokenizer_mode == "hf" else config.tokenizer_mode,
        config.trust_remote_code,
        flag="--tokenizer" if config.tokenizer is not None else "--tokenizer, default: the model",
        say=console.say,
    )


async def get_ready(
    config: BenchConfig, client: Client, plan: WorkloadPlan, console: Console
) -> None:
    """``--ready-check-timeout-sec`` then ``--num-warmups``, with the plan's first request.

    Raises:
        RuntimeError: the endpoint never answered the test request.
    """
    if not plan.requests:
        return
    first = plan.requests[0].request
    if config.ready_check_timeout_sec <= 0 and not plan.target.embedded:
        await _probe_endpoint(client, plan.request_backend, first)
    if config.ready_check_timeout_sec > 0:
        console.say("Waiting for the endpoint to become ready...")
        test = await _wait_for_endpoint(
            client, plan.request_backend, first, config.ready_check_timeout_sec, console
        )
        if not test.success:
            raise RuntimeError(
                "Initial test run failed - Please make sure benchmark arguments "
                f"are correctly specified. Error: {test.error}"
            )
    if config.num_warmups > 0:
        console.say(f"Warming up with {config.num_warmups} requests...")
        await _warmup(
            client, plan.request_backend, first, config.num_warmups, config.max_concurrency
        )


async def _probe_endpoint(client: Client, backend: Backend | str, first: RequestFuncInput) -> None:
    """One cheap request (a two-word prompt, one output token) before the run, so a
    server that isn't there, a wrong path or missing credentials stop the bench with one
    clear line instead of failing every request. Any other failure is left to the run,
    which reports it. Not the first prompt itself: the server must not cache it.

    Raises:
        UsageError: connection refused, 404 or 401/403 on the endpoint.
    """
    probe = dataclasses.replace(
        first,
        prompt="Hello there" if isinstance(first.prompt, str) else first.prompt,
        prompt_len=2 if isinstance(first.prompt, str) else first.prompt_len,
        output_len=1,
        request_id=f"{first.request_id}-probe" if first.request_id else None,
    )
    out = await send_counted(client, backend, probe)
    if out.success:
        return
    url = redact_url(first.api_url)
    error = out.error.strip()
    if out.status_code is None and error.startswith(("ConnectError", "ConnectTimeout")):
        raise _unreachable(url, RuntimeError(error))
    reason = error if len(error) <= 200 else error[:197] + "..."
    if out.status_code == 404:
        raise UsageError(
            "the endpoint was not found",
            where=url,
            why=reason,
            hint="Check --endpoint and --backend (each backend has its default path), "
            "--base-url, and --model.",
        )
    if out.status_code in (401, 403):
        raise UsageError("the server refused the request", where=url, why=reason, hint=_AUTH_HINT)


async def _wait_for_endpoint(
    client: Client, backend: Backend | str, test: RequestFuncInput, limit_s: float, console: Console
) -> RequestFuncOutput:
    """vLLM's ready check: retry the test request until it succeeds or time runs out."""
    deadline = anyio.current_time() + limit_s
    out = RequestFuncOutput(error="not tried")
    while True:
        out = await send_counted(client, backend, test)
        if out.success:
            return out
        remaining = deadline - anyio.current_time()
        last_line = (out.error.strip().splitlines() or [""])[-1]
        console.say(f"Endpoint not ready yet: {last_line}")
        if remaining <= 0:
            return out
        await anyio.sleep(min(5.0, remaining))


async def _warmup(
    client: Client, backend: Backend | str, test: RequestFuncInput, n: int, limit: int | None
) -> None:
    limiter = anyio.CapacityLimiter(limit or n)

    async def one() -> None:
        async with limiter:
            await send_counted(client, backend, test)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)


async def profile(config: BenchConfig, target: Target, which: str, console: Console) -> bool:
    """``--profile``: POST ``{base_url}/start_profile`` or ``/stop_profile`` (*which* is
    ``"start"`` or ``"stop"``), as ``vllm bench serve`` does; True when the server
    answered 200. A failure is said and the run goes on: profiling is the server's."""
    import httpx

    url = f"{target.base_url}/{which}_profile"
    console.say("Starting profiler..." if which == "start" else "Stopping profiler...")
    try:
        async with httpx.AsyncClient(verify=target.verify, timeout=60.0) as http:
            response = await http.post(url, headers=_models_headers(config))
    except httpx.TransportError as exc:
        console.say(f"Profiler {which} failed ({redact_url(url)}): {one_line_error(exc)}")
        return False
    if response.status_code != 200:
        status = f"HTTP {response.status_code} {response.reason_phrase}"
        console.say(f"Profiler {which} failed ({redact_url(url)}): {status}")
        return False
    console.say("Profiler started" if which == "start" else "Profiler stopped")
    return True
