"""Every backend through the bench against the embedded server, and configuration errors
that stop the bench with their reason instead of a traceback."""

from __future__ import annotations

import pytest

from anyio_llmreq import ASYNC_REQUEST_FUNCS, RequestFuncInput, RequestFuncOutput
from anyio_llmreq._cli import main
from anyio_llmreq._client import Client
from anyio_llmreq.bench import BenchConfig, run_benchmark
from anyio_llmreq.bench._drive import drive
from anyio_llmreq.bench._plan import ScheduledRequest

FAST = {
    "num_prompts": 6, "mock_ttft": 0.002, "mock_itl": 0.001, "random_input_len": 16,
    "random_output_len": 4, "request_rate": float("inf"), "disable_tqdm": True, "quiet": True,
}  # fmt: skip


@pytest.mark.parametrize("backend", list(ASYNC_REQUEST_FUNCS))
def test_every_backend_runs_on_the_embedded_server(backend: str) -> None:
    # Text datasets get the shapes a backend needs: [query, documents] for rerank,
    # synthetic audio for transcription.
    result = run_benchmark(BenchConfig(backend=backend, **FAST))
    errors = [r.output.error for r in result.records if not r.output.success]
    assert errors == []
    assert result.metrics.completed == 6


def test_a_request_the_backend_cannot_build_stops_the_bench(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["bench", "--backend", "tgi", "--endpoint", "/v1/completions",
                   "--num-prompts", "3", "--disable-tqdm"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert "TGI URL must end with 'generate_stream'" in err
    assert "Traceback" not in err


def test_a_missing_dataset_path_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bench", "--dataset-name", "sharegpt", "--num-prompts", "3"])
    assert status == 2
    assert "needs --dataset-path" in capsys.readouterr().err


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_one_unbuildable_request_is_counted_not_raised() -> None:
    good = RequestFuncInput("a b", "http://127.0.0.1:9/v1/chat/completions", 2, 1, "m")
    bad = RequestFuncInput("a b", "http://127.0.0.1:9/v1/chat/completions", 2, 1, "m",
                           multi_modal_content="not a dict")  # type: ignore[arg-type]  # fmt: skip
    async with Client() as client:
        records, _ = await drive(
            client,
            "openai-chat",
            [ScheduledRequest(0, bad, 0.0), ScheduledRequest(1, good, 0.0)],
            start=0.0,
            signals=(),
        )
    by_index = {r.index: r.output for r in records}
    assert isinstance(by_index[0], RequestFuncOutput)
    assert by_index[0].error.startswith("ConfigError: multi_modal_content")
    assert not by_index[1].success  # nothing listens on port 9: a failed request, also counted
