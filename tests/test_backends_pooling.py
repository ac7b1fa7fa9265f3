"""Embeddings, rerank and pooling: payloads, parsing, and end to end."""

from __future__ import annotations

import json

import anyio
import pytest

from anyio_llmreq import (
    Accumulator,
    ConfigError,
    OpenAIEmbeddings,
    RequestFuncInput,
    ResultDelta,
    SSEEvent,
    StreamProtocolError,
    Timeouts,
    UsageDelta,
    VLLMPooling,
    VLLMRerank,
    async_request_openai_embeddings,
    async_request_vllm_pooling,
    async_request_vllm_rerank,
)
from anyio_llmreq._models import ErrorDelta
from anyio_llmreq.testing import MockBehaviour

from .mock_run import STALL_READ, check_whole_body, run

# Every test with the orjson JSON path and with the stdlib's (tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("json_impl")]


def make_input(url: str, prompt: object = "Hello", **kwargs: object) -> RequestFuncInput:
    return RequestFuncInput(prompt, url, 3, 16, "org/model", **kwargs)  # type: ignore[arg-type]


# --- payloads -----------------------------------------------------------------------------


def test_embeddings_payload() -> None:
    spec = OpenAIEmbeddings().build_payload(make_input("http://h/v1/embeddings"))
    assert OpenAIEmbeddings.framing == "json" and spec.auth is True
    assert spec.headers == {"Content-Type": "application/json"}
    assert spec.json == json.loads(
        '{"model": "org/model", "input": "Hello", "truncate_prompt_tokens": -1}'
    )
    assert list(spec.json) == ["model", "input", "truncate_prompt_tokens"]


def test_embeddings_common_updates_come_last() -> None:
    spec = OpenAIEmbeddings().build_payload(
        make_input(
            "http://h/v1/embeddings",
            model_name="served",
            ignore_eos=True,
            extra_body={"dimensions": 4, "truncate_prompt_tokens": 8},
            request_id="r",
            extra_headers={"x-a": "1"},
        )
    )
    assert spec.json == {
        "model": "served",
        "input": "Hello",
        "truncate_prompt_tokens": 8,
        "ignore_eos": True,
        "dimensions": 4,
    }
    assert list(spec.json) == [
        "model",
        "input",
        "truncate_prompt_tokens",
        "ignore_eos",
        "dimensions",
    ]
    assert spec.headers == {"Content-Type": "application/json", "x-a": "1", "x-request-id": "r"}


def test_rerank_payload_honours_extra_body() -> None:
    spec = VLLMRerank().build_payload(
        make_input("http://h/rerank", ["q", "d1", "d2"], extra_body={"top_n": 1})
    )
    assert spec.json == json.loads(
        '{"model": "org/model", "query": "q", "documents": ["d1", "d2"],'
        ' "truncate_prompt_tokens": -1, "top_n": 1}'
    )
    assert list(spec.json) == ["model", "query", "documents", "truncate_prompt_tokens", "top_n"]


@pytest.mark.parametrize("prompt", ["q", ["q"], [], None])
def test_rerank_needs_query_and_documents(prompt: object) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        VLLMRerank().build_payload(make_input("http://h/v1/rerank", prompt))


def test_pooling_payload_dict_prompt_is_merged() -> None:
    spec = VLLMPooling().build_payload(
        make_input("http://h/pooling", {"input": "x", "task": "embed"})
    )
    assert spec.json == json.loads(
        '{"model": "org/model", "truncate_prompt_tokens": -1, "input": "x", "task": "embed"}'
    )
    assert list(spec.json) == ["model", "truncate_prompt_tokens", "input", "task"]
    other = VLLMPooling().build_payload(make_input("http://h/pooling", [1, 2, 3]))
    assert other.json == {"model": "org/model", "truncate_prompt_tokens": -1, "input": [1, 2, 3]}


@pytest.mark.parametrize(
    ("backend", "url", "suffix"),
    [
        (OpenAIEmbeddings(), "http://h/v1/completions", "embeddings"),
        (VLLMRerank(), "http://h/v1/score", "rerank"),
        (VLLMPooling(), "http://h/v1/embeddings", "pooling"),
    ],
)
def test_wrong_url_is_a_config_error(backend: object, url: str, suffix: str) -> None:
    with pytest.raises(ConfigError, match=suffix):
        backend.build_payload(make_input(url, ["q", "d"]))  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["bytes", "bytes_only"])
def test_binary_encoding_is_refused_before_io(fmt: str) -> None:
    request = make_input("http://h/v1/embeddings", extra_body={"encoding_format": fmt})
    with pytest.raises(ConfigError, match="base64"):
        OpenAIEmbeddings().build_payload(request)


# --- parsing ------------------------------------------------------------------------------


def test_the_whole_answer_is_the_result_and_usage_gives_prompt_len() -> None:
    body = {"data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 7, "total_tokens": 7}}
    backend = OpenAIEmbeddings()
    deltas = list(backend.parse_event(SSEEvent(json.dumps(body))))
    assert deltas == [ResultDelta(body), UsageDelta(prompt_tokens=7)]
    acc = Accumulator()
    assert [acc.add(d) for d in deltas] == [True, False]  # a result is output
    done = backend.finalize(acc)
    assert (done.generated_text, done.prompt_tokens, done.output_tokens) == ("", 7, None)
    # usage without prompt_tokens counts 0, as in vLLM; no usage leaves prompt_len alone.
    assert UsageDelta(prompt_tokens=0) in backend.parse_event(SSEEvent('{"usage": {}}'))
    assert list(VLLMRerank().parse_event(SSEEvent('{"results": []}'))) == [
        ResultDelta({"results": []})
    ]


def test_errors() -> None:
    for body in [
        '{"error": {"message": "too long"}}',
        '{"object": "error", "message": "too long"}',
    ]:
        (error,) = VLLMPooling().parse_event(SSEEvent(body))
        assert isinstance(error, ErrorDelta) and "too long" in error.message
    for data in ["nope", "[1]"]:
        with pytest.raises(StreamProtocolError):
            VLLMPooling().parse_event(SSEEvent(data))


# --- end to end ---------------------------------------------------------------------------

CASES = [
    pytest.param("openai-embeddings", "/v1/embeddings", "a b c d e", id="embeddings"),
    pytest.param("vllm-rerank", "/rerank", ["a b", "c d", "e"], id="rerank"),
    pytest.param("vllm-pooling", "/pooling", "a b c d e", id="pooling"),
]


@pytest.mark.parametrize(("backend", "path", "prompt"), CASES)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "byte-split"])
async def test_success(backend: str, path: str, prompt: object, split: bool) -> None:
    behaviour = MockBehaviour(split_every=1, split_delay=0.0) if split else MockBehaviour()
    out, server = await run(backend, path, behaviour, prompt=prompt)
    check_whole_body(out)
    assert out.generated_text == "" and out.output_tokens == 0
    assert out.prompt_len == 5  # the server's usage.prompt_tokens, not the input's 3
    assert server.requests[0].json["truncate_prompt_tokens"] == -1


@pytest.mark.parametrize(("backend", "path", "prompt"), CASES)
async def test_compat_functions(backend: str, path: str, prompt: object) -> None:
    out, _ = await run(backend, path, prompt=prompt, compat=True)
    check_whole_body(out)
    assert [f.__name__ for f in (
        async_request_openai_embeddings, async_request_vllm_rerank, async_request_vllm_pooling
    )] == [
        "async_request_openai_embeddings", "async_request_vllm_rerank", "async_request_vllm_pooling"
    ]  # fmt: skip


async def test_rerank_extra_body_reaches_the_server() -> None:
    _, server = await run("vllm-rerank", "/rerank", prompt=["q", "a", "b"], extra_body={"top_n": 1})
    assert server.requests[0].json["top_n"] == 1


@pytest.mark.parametrize(("backend", "path", "prompt"), CASES)
async def test_faults(backend: str, path: str, prompt: object) -> None:
    out, _ = await run(backend, path, MockBehaviour(status=500), prompt=prompt)
    assert not out.success and out.error.startswith("HTTP 500")
    out, _ = await run(backend, path, MockBehaviour(reset_after=0), prompt=prompt)
    assert not out.success and out.error and "\n" not in out.error


async def test_stall_hits_the_read_timeout() -> None:
    with anyio.fail_after(10):
        out, _ = await run(
            "openai-embeddings", "/v1/embeddings", MockBehaviour(stall_after=0),
            timeouts=Timeouts(read=STALL_READ),
        )  # fmt: skip
    assert not out.success and "Timeout" in out.error
