"""Setup: what a run does with the server before it measures anything.

Start the embedded mock server when no server is named (``open_server``), ask the
server for its model (``resolve_model``) and load the tokenizer (``resolve_target``),
then, with the run's client, wait for the endpoint and warm up (``get_ready``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio

from .._client import Client
from .._models import RequestFuncInput, RequestFuncOutput
from ._config import BenchConfig
from ._drive import one_line_error, send_counted
from ._plan import Target, WorkloadPlan
from ._redact import Console, redact_url
from ._tokens import TokenCounter, WordCounter, load_token_counter

__all__ = ["get_ready", "open_server", "resolve_model", "resolve_target"]


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

    behaviour = MockBehaviour(ttft=config.mock_ttft, itl=config.mock_itl)
    async with open_mock_server(
        behaviour, model=config.model or "mock-model", record=False
    ) as server:
        yield server.base_url


async def resolve_target(config: BenchConfig, base_url: str, console: Console) -> Target:
    """The model (from the flags or the server) and its token counter."""
    verify = not config.insecure
    model_name, model_id = await resolve_model(config, base_url, verify)
    counter, tokenizer_id = _token_counter(config, model_id, console)
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
    """``(model_name, model_id)``: the flags, or the server's first model (vLLM).

    Raises:
        RuntimeError: the server didn't answer with a model list (the reason, one line).
    """
    if config.model is not None:
        return config.served_model_name or config.model, config.model
    import httpx

    url = f"{base_url}/v1/models"
    try:
        async with httpx.AsyncClient(verify=verify, timeout=30.0) as http:
            response = await http.get(url, headers=_models_headers(config))
            if response.is_error:
                raise RuntimeError(f"HTTP {response.status_code} {response.reason_phrase}")
            entry = response.json()["data"][0]
            model_id = entry.get("root") or entry["id"]
            name = entry["id"]
    except Exception as exc:
        reason = str(exc) if isinstance(exc, RuntimeError) else one_line_error(exc)
        raise RuntimeError(
            f"could not ask {redact_url(url)} for the model ({reason}); pass --model"
        ) from None
    return config.served_model_name or name, model_id


def _token_counter(
    config: BenchConfig, model_id: str, console: Console
) -> tuple[TokenCounter, str]:
    """The counter for prompts and outputs, and its id for the result JSON."""
    if config.tokenizer_mode == "words":
        return WordCounter(), "whitespace-words"
    if config.tokenizer is not None:
        return (
            load_token_counter(config.tokenizer, config.tokenizer_mode, config.trust_remote_code),
            config.tokenizer,
        )
    if config.embedded:
        return WordCounter(), "whitespace-words"
    try:
        counter = load_token_counter(model_id, config.tokenizer_mode, config.trust_remote_code)
    except Exception as exc:
        console.say(
            f"WARNING: could not load the tokenizer {model_id!r} ({type(exc).__name__}); "
            "prompt lengths are whitespace words and outputs without server usage are "
            "counted as words. Pass --tokenizer to fix."
        )
        return WordCounter(), "whitespace-words"
    return counter, model_id


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
    if config.ready_check_timeout_sec > 0:
        console.say("Waiting for the endpoint to become ready...")
        test = await _wait_for_endpoint(
            client, plan.backend, first, config.ready_check_timeout_sec, console
        )
        if not test.success:
            raise RuntimeError(
                "Initial test run failed - Please make sure benchmark arguments "
                f"are correctly specified. Error: {test.error}"
            )
    if config.num_warmups > 0:
        console.say(f"Warming up with {config.num_warmups} requests...")
        await _warmup(client, plan.backend, first, config.num_warmups, config.max_concurrency)


async def _wait_for_endpoint(
    client: Client, backend: str, test: RequestFuncInput, limit_s: float, console: Console
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
    client: Client, backend: str, test: RequestFuncInput, n: int, limit: int | None
) -> None:
    limiter = anyio.CapacityLimiter(limit or n)

    async def one() -> None:
        async with limiter:
            await send_counted(client, backend, test)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
