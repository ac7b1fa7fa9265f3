"""The drop-in layer: vLLM-shaped dataclasses and request functions on every loop."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import anyio
import pytest

import anyio_llmreq
from anyio_llmreq import (
    ASYNC_REQUEST_FUNCS,
    OPENAI_COMPATIBLE_BACKENDS,
    ConfigError,
    RequestFuncInput,
    RequestFuncOutput,
    async_request_openai_chat_completions,
    async_request_openai_completions,
)
from anyio_llmreq.testing import MockBehaviour, MockServer, MockServerThread

REFERENCE_INPUT_FIELDS = [
    ("prompt", dataclasses.MISSING),
    ("api_url", dataclasses.MISSING),
    ("prompt_len", dataclasses.MISSING),
    ("output_len", dataclasses.MISSING),
    ("model", dataclasses.MISSING),
    ("model_name", None),
    ("logprobs", None),
    ("extra_body", None),
    ("multi_modal_content", None),
    ("ignore_eos", False),
    ("language", None),
    ("request_id", None),
]
REFERENCE_OUTPUT_FIELDS = [
    ("generated_text", ""),
    ("success", False),
    ("latency", 0.0),
    ("output_tokens", 0),
    ("ttft", 0.0),
    ("itl", dataclasses.MISSING),  # default_factory=list
    ("tpot", 0.0),
    ("prompt_len", 0),
    ("error", ""),
]


def fields_of(cls: type) -> list[tuple[str, object]]:
    return [(f.name, f.default) for f in dataclasses.fields(cls)]


def test_input_fields_keep_the_reference_order_and_defaults() -> None:
    fields = fields_of(RequestFuncInput)
    assert fields[: len(REFERENCE_INPUT_FIELDS)] == REFERENCE_INPUT_FIELDS
    assert all(default is not dataclasses.MISSING for _, default in fields[12:])


def test_output_fields_keep_the_reference_order_and_defaults() -> None:
    fields = fields_of(RequestFuncOutput)
    assert fields[: len(REFERENCE_OUTPUT_FIELDS)] == REFERENCE_OUTPUT_FIELDS
    assert RequestFuncOutput().itl == [] and RequestFuncOutput().itl is not RequestFuncOutput().itl


def test_dataclass_behaviour() -> None:
    positional = RequestFuncInput("p", "http://h/v1/completions", 1, 2, "m", None, 3)
    keyword = RequestFuncInput(
        prompt="p", api_url="http://h/v1/completions", prompt_len=1, output_len=2, model="m",
        logprobs=3,
    )
    assert positional == keyword
    assert "logprobs=3" in repr(positional)
    assert dataclasses.asdict(RequestFuncOutput(itl=[0.5]))["itl"] == [0.5]
    assert dataclasses.is_dataclass(RequestFuncOutput)


def test_registry_holds_the_openai_compatible_keys() -> None:
    for key in ["vllm", "lmdeploy", "openai", "openai-chat", "scalellm", "sglang", "llama.cpp"]:
        assert key in ASYNC_REQUEST_FUNCS
    assert OPENAI_COMPATIBLE_BACKENDS == [
        "vllm", "lmdeploy", "openai", "openai-chat", "scalellm", "sglang", "llama.cpp"
    ]
    assert ASYNC_REQUEST_FUNCS["vllm"] is async_request_openai_completions
    assert ASYNC_REQUEST_FUNCS["openai-chat"] is async_request_openai_chat_completions
    assert async_request_openai_completions.__name__ == "async_request_openai_completions"


class Bar:
    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int) -> None:
        self.n += n


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServerThread(behaviour=MockBehaviour(output_len=5)) as running:
        yield running


def completions(server: MockServer, **kwargs: Any) -> RequestFuncInput:
    return RequestFuncInput("one two", f"{server.base_url}/v1/completions", 2, 5, "m", **kwargs)


def chat(server: MockServer, **kwargs: Any) -> RequestFuncInput:
    url = f"{server.base_url}/v1/chat/completions"
    return RequestFuncInput("one two", url, 2, 5, "m", **kwargs)


async def three_calls(server: MockServer) -> list[RequestFuncOutput]:
    bar = Bar()
    outs = [
        await async_request_openai_completions(completions(server), pbar=bar),
        await async_request_openai_chat_completions(chat(server), bar),
        await ASYNC_REQUEST_FUNCS["vllm"](
            completions(server, extra_body={"mock": {"status": 503}}), bar
        ),
    ]
    assert bar.n == 3
    return outs


def run_asyncio(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(fn())


def run_uvloop(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    uvloop = pytest.importorskip("uvloop")
    return uvloop.run(fn())


def run_trio(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    import trio

    return trio.run(fn)


def run_anyio(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return anyio.run(fn)


@pytest.mark.parametrize("runner", [run_asyncio, run_uvloop, run_trio, run_anyio])
def test_wrappers_under_every_runner(
    server: MockServer, runner: Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]
) -> None:
    before = server.stats.connections
    ok_completion, ok_chat, failed = runner(lambda: three_calls(server))
    assert ok_completion.success and ok_chat.success, (ok_completion.error, ok_chat.error)
    assert ok_completion.output_tokens == ok_chat.output_tokens == 5
    assert len(ok_completion.generated_text.split()) == 5
    assert len(ok_chat.itl) == 4
    assert not failed.success and failed.error.startswith("HTTP 503")
    # Three sequential calls in one loop share one pooled connection, and the pool is
    # closed when the loop ends: the server sees the connection go away.
    assert server.stats.connections - before == 1
    deadline = time.monotonic() + 5
    while server.stats.active_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.stats.active_connections == 0


def test_bad_url_raises_before_io(server: MockServer) -> None:
    async def call() -> None:
        bad = RequestFuncInput("p", f"{server.base_url}/v1/generate", 1, 1, "m")
        await async_request_openai_chat_completions(bad)

    before = server.stats.requests
    with pytest.raises(ConfigError, match="chat/completions"):
        anyio.run(call)
    assert server.stats.requests == before


def test_cancellation_propagates_through_wrappers(server: MockServer) -> None:
    async def call() -> bool:
        slow = completions(server, extra_body={"mock": {"ttft": 5}})
        with anyio.move_on_after(0.2) as scope:
            await async_request_openai_completions(slow)
        return scope.cancelled_caught

    assert anyio.run(call) is True


def test_package_exports_the_reference_names() -> None:
    for name in [
        "ASYNC_REQUEST_FUNCS",
        "OPENAI_COMPATIBLE_BACKENDS",
        "RequestFuncInput",
        "RequestFuncOutput",
        "async_request_openai_completions",
        "async_request_openai_chat_completions",
    ]:
        assert name in anyio_llmreq.__all__
