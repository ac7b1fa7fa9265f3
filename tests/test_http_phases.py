"""Per-request detail: the HTTP phases our transport stamps (connection reuse, connect,
request written, response head, first body byte) and reasoning-aware timings (first
reasoning vs first content, the server's reasoning token count), from the engine's
sans-IO core to the bench's result file and report."""

from __future__ import annotations

import json
import math

import pytest

from anyio_llmreq import Client, RequestFuncInput
from anyio_llmreq._engine import Exchange
from anyio_llmreq.backends import get_backend
from anyio_llmreq.bench import BenchConfig, run_benchmark
from anyio_llmreq.bench._phases import summarize_phases
from anyio_llmreq.testing import MockBehaviour, open_mock_server

START = 100.0


def _chat(content: str | None = None, reasoning: str | None = None, **extra: object) -> bytes:
    delta: dict[str, object] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    delta.update(extra)
    chunk = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _exchange() -> Exchange:
    request = RequestFuncInput(
        prompt="hi", api_url="http://x/v1/chat/completions", prompt_len=1, output_len=8, model="m"
    )
    ex = Exchange(get_backend("openai-chat"), request)
    ex.start = START
    return ex


def _feed(ex: Exchange, reads: list[tuple[float, bytes]]) -> None:
    for now, data in reads:
        ex.feed(data, START + now)


def test_reasoning_then_content_each_stamped_where_it_began() -> None:
    ex = _exchange()
    _feed(
        ex,
        [
            (0.5, _chat(content="", role="assistant")),  # the role chunk: no output
            (1.0, _chat(reasoning="think")),
            (2.0, _chat(reasoning=" more")),
            (3.0, _chat(content="Hello")),
            (4.0, _chat(content=" there")),
            (5.0, b"data: [DONE]\n\n"),
        ],
    )
    out = ex.output()
    assert out.success and out.generated_text == "Hello there"
    assert out.ttft == 1.0 and out.ttft_reasoning == 1.0 and out.ttft_content == 3.0
    assert out.latency == 4.0 and out.itl == [1.0, 1.0, 1.0]


def test_content_and_reasoning_in_one_read_share_its_stamp() -> None:
    ex = _exchange()
    _feed(ex, [(1.0, _chat(reasoning="r")), (2.0, _chat(reasoning="s") + _chat(content="A"))])
    out = ex.output()
    assert (out.ttft_reasoning, out.ttft_content) == (1.0, 2.0)


def test_content_first_on_the_fast_path_stays_first() -> None:
    # Plain content reads take the backend's fast path (not looked at one by one):
    # reasoning arriving later must not move the first content.
    ex = _exchange()
    _feed(
        ex,
        [
            (1.0, _chat(content="A")),
            (2.0, _chat(content="B")),
            (3.0, _chat(reasoning="late")),
            (4.0, _chat(content="C")),
        ],
    )
    out = ex.output()
    assert (out.ttft, out.ttft_content, out.ttft_reasoning) == (1.0, 1.0, 3.0)


def test_tool_call_before_content() -> None:
    ex = _exchange()
    call = {"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}
    _feed(ex, [(1.0, _chat(tool_calls=[call])), (2.5, _chat(content="done"))])
    out = ex.output()
    assert (out.ttft, out.ttft_reasoning, out.ttft_content) == (1.0, None, 2.5)


def test_no_content_no_content_time() -> None:
    ex = _exchange()
    _feed(ex, [(1.0, _chat(reasoning="only thinking"))])
    out = ex.output()
    assert out.ttft_reasoning == 1.0 and out.ttft_content is None


def test_reasoning_tokens_from_usage_details() -> None:
    ex = _exchange()
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 9,
        "completion_tokens_details": {"reasoning_tokens": 6},
    }
    tail = b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
    _feed(ex, [(1.0, _chat(reasoning="r")), (2.0, _chat(content="c") + tail)])
    out = ex.output()
    assert (out.output_tokens, out.reasoning_tokens) == (9, 6)


def test_without_our_transport_no_phases() -> None:
    ex = _exchange()
    _feed(ex, [(1.0, _chat(content="A"))])
    assert ex.output().http_phases is None


@pytest.mark.anyio
async def test_phases_over_a_real_socket(anyio_backend: object) -> None:
    behaviour = MockBehaviour(ttft=0.02, itl=0.005, reasoning_tokens=3)
    async with open_mock_server(behaviour, record=False) as server, Client() as client:
        outs = []
        for _ in range(2):
            request = RequestFuncInput(
                prompt="hi",
                api_url=server.base_url + "/v1/chat/completions",
                prompt_len=1,
                output_len=4,
                model="mock",
            )
            outs.append(await client.send("openai-chat", request))
    for n, out in enumerate(outs):
        assert out.success, out.error
        phases = out.http_phases
        assert phases is not None
        assert phases["connection_reused"] is (n == 1)
        order = [phases[k] for k in ("request_sent", "first_byte", "headers", "first_body_byte")]
        assert all(v is not None for v in order)
        assert 0 <= order[0] <= order[1] <= order[2] <= order[3] <= out.ttft
        # Reasoning first (3 tokens), then the answer: what a user sees starts later.
        assert out.ttft_reasoning == out.ttft
        assert out.ttft_content is not None
        assert out.ttft_content > out.ttft_reasoning
        assert math.isclose(out.ttft_content, out.ttft + sum(out.itl[:3]))
        assert out.reasoning_tokens == 3 and out.output_tokens == 7
    first, second = (o.http_phases for o in outs)
    assert first is not None and second is not None
    assert first["connect"] is not None and first["connect"] >= 0 and first["tls"] is None
    assert second["connect"] is None and second["dns"] is None


def test_summary_splits_ttft_into_its_parts() -> None:
    from anyio_llmreq import RequestFuncOutput

    def out(ttft: float, sent: float, head: float, reused: bool) -> RequestFuncOutput:
        phases = {
            "connection_reused": reused,
            "dns": None if reused else 0.001,
            "connect": None if reused else 0.002,
            "tls": None,
            "request_sent": sent,
            "first_byte": head,
            "headers": head,
            "first_body_byte": ttft,
        }
        return RequestFuncOutput(success=True, ttft=ttft, http_phases=phases)

    summary = summarize_phases([out(0.1, 0.01, 0.02, False), out(0.3, 0.03, 0.04, True)])
    split = summary.split_ms
    assert summary.new_connections == 1 and summary.requests == 2
    assert split is not None
    assert split["client_network"] == pytest.approx(20.0)
    assert split["server_head"] == pytest.approx(10.0)
    assert split["queue_prefill"] == pytest.approx(170.0)
    assert sum(split[k] for k in ("client_network", "server_head", "queue_prefill")) == (
        pytest.approx(split["ttft"])
    )
    assert summary.phases_ms["open"] == {"mean": 3.0, "median": 3.0, "p99": 3.0}
    assert summary.reasoning_requests == 0 and "reasoning" not in summary.result_keys()


def test_bench_result_report_and_jsonl(tmp_path: object) -> None:
    from pathlib import Path

    out_dir = Path(str(tmp_path))
    config = BenchConfig(
        backend="openai-chat",
        num_prompts=12,
        max_concurrency=3,
        mock_ttft=0.005,
        mock_itl=0.001,
        mock_reasoning_tokens=2,
        random_input_len=16,
        random_output_len=4,
        request_rate=float("inf"),
        disable_tqdm=True,
        quiet=True,
        save_result=True,
        save_detailed=True,
        result_dir=str(out_dir),
        output_jsonl=str(out_dir / "r.jsonl"),
    )
    result = run_benchmark(config)
    data = result.result
    assert data["completed"] == 12
    phases = data["http_phases_ms"]
    assert phases["requests"] == 12 and phases["new_connections"] == 3
    split = data["ttft_split_ms"]
    parts = split["client_network"] + split["server_head"] + split["queue_prefill"]
    assert parts == pytest.approx(data["mean_ttft_ms"])
    reasoning = data["reasoning"]
    assert reasoning["requests"] == 12 and reasoning["total_reasoning_tokens"] == 24
    assert reasoning["ttft_content_ms"]["mean"] > reasoning["ttft_reasoning_ms"]["mean"]
    assert len(data["http_phases"]) == 12 and len(data["ttfts_content"]) == 12
    assert sum(not p["connection_reused"] for p in data["http_phases"]) == 3
    assert data["reasoning_tokens"] == [2] * 12
    lines = [json.loads(line) for line in (out_dir / "r.jsonl").read_text().splitlines()]
    assert all(line["http_phases"]["headers"] is not None for line in lines)
    assert any("TTFT split (mean)" in line for line in result.report)
    assert any("Mean time to first content (ms):" in line for line in result.report)

    from anyio_llmreq.report import build_charts, load_inputs

    saved = next(out_dir.glob("*.json"))
    ids = {chart.id for chart in build_charts(load_inputs([str(saved)]))}
    assert {"ttft-split", "reasoning-timing"} <= ids

    # Without --save-detailed: the summaries stay, the per-request lists go.
    config = BenchConfig(**{**_fields(config), "save_detailed": False, "output_jsonl": None})
    brief = run_benchmark(config).result
    assert "ttft_split_ms" in brief and "http_phases" not in brief


def _fields(config: BenchConfig) -> dict[str, object]:
    import attrs

    return attrs.asdict(config, recurse=False)
