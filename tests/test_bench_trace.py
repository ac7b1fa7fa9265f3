"""Trace replay (``--dataset-name trace``): the four formats, prompts that share tokens
where the trace's ``hash_ids`` share blocks, time scaling and windows, one-line errors
naming the file, line and field, and replays against the mock server with exact
accounting. Timing fidelity is measured in ``benchmarks/bench_replay.py``, not here."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pytest

from anyio_llmreq.bench import BenchConfig, arun_benchmark, run_benchmark
from anyio_llmreq.bench._cli import add_arguments, config_from_args
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._tokens import WordCounter
from anyio_llmreq.bench._trace import detect_format, read_trace, sample_trace
from anyio_llmreq.testing import MockBehaviour, MockServer, MockServerThread

WORDS = WordCounter()


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _mooncake(path: Path) -> str:
    """Five requests 1 s apart (ms stamps); blocks of 4 tokens: requests 0, 1 and 3
    share blocks 1 and 2, request 2 starts with block 2 alone."""
    return _jsonl(
        path,
        [
            {"timestamp": 0, "input_length": 12, "output_length": 3, "hash_ids": [1, 2, 3]},
            {"timestamp": 1000, "input_length": 10, "output_length": 2, "hash_ids": [1, 2, 4]},
            {"timestamp": 2000, "input_length": 3, "output_length": 1, "hash_ids": [2]},
            {"timestamp": 3000, "input_length": 8, "output_length": 4, "hash_ids": [1, 2]},
            {"timestamp": 4000, "input_length": 6, "output_length": 2, "hash_ids": [7, 8]},
        ],
    )


def _sample(path: str, n: int = -1, **options: Any) -> list[Any]:
    return sample_trace(WORDS, n, path, request_id_prefix="t-", **options)


# --- prompts from hash_ids ----------------------------------------------------------------


def test_requests_sharing_hash_ids_share_those_blocks_tokens(tmp_path: Path) -> None:
    samples = _sample(_mooncake(tmp_path / "m.jsonl"), block_size=4)
    ids = [WORDS.encode(s.prompt) for s in samples]
    # Exactly input_length tokens each: the last block is cut to fit.
    assert [len(i) for i in ids] == [12, 10, 3, 8, 6]
    assert [s.prompt_len for s in samples] == [12, 10, 3, 8, 6]
    assert [s.expected_output_len for s in samples] == [3, 2, 1, 4, 2]
    # Blocks 1 and 2 are the same tokens wherever they appear ...
    assert ids[0][:8] == ids[1][:8] == ids[3][:8]
    # ... block 2 too when it comes first (a block is its hash id's, not its position's) ...
    assert ids[2] == ids[0][4:7]
    # ... and different hash ids are different tokens.
    assert ids[0][8:10] != ids[1][8:10]
    assert ids[4][:4] != ids[0][:4]
    assert [s.request_id for s in samples] == [f"t-{i}" for i in range(5)]


def test_blocks_follow_the_seed_and_lengths_past_the_blocks_are_the_requests_own(
    tmp_path: Path,
) -> None:
    path = _jsonl(
        tmp_path / "m.jsonl",
        [
            {"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [5]},
            {"timestamp": 1, "input_length": 10, "output_length": 1, "hash_ids": [5]},
            {"timestamp": 2, "input_length": 6, "output_length": 1},
        ],
    )
    a = [WORDS.encode(s.prompt) for s in _sample(path, block_size=4, seed=0)]
    again = [WORDS.encode(s.prompt) for s in _sample(path, block_size=4, seed=0)]
    other = [WORDS.encode(s.prompt) for s in _sample(path, block_size=4, seed=1)]
    assert a == again
    assert a[0][:4] != other[0][:4]
    assert a[0][:4] == a[1][:4]
    # Tokens past the trace's blocks are each request's own.
    assert a[0][4:] != a[1][4:]
    assert [len(x) for x in a] == [10, 10, 6]


def test_word_prompts_are_their_ids_decoded(tmp_path: Path) -> None:
    """Whitespace-word prompts are joined from cached block texts: the same text as
    decoding the prompt's ids."""
    from anyio_llmreq.bench._trace import _Prompts

    prompts = _Prompts(WORDS, 3, 4)
    for record in read_trace(_mooncake(tmp_path / "m.jsonl"), "mooncake") * 2:
        assert prompts.text(record) == WORDS.decode(prompts.ids(record))


def test_a_real_tokenizers_prompts_share_the_blocks_text(tmp_path: Path) -> None:
    """With a tokenizer, a prompt is the text of its ids: requests sharing leading
    blocks share the text of those blocks' ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from anyio_llmreq.bench._tokens import HFTokenCounter

    class Tok:
        """The slice of a transformers tokenizer the counter uses, over a WordLevel
        vocabulary (no transformers import: seconds)."""

        def __init__(self) -> None:
            vocab = {f"w{i}": i for i in range(50)} | {"<s>": 50}
            self.raw = Tokenizer(models.WordLevel(vocab, unk_token="<s>"))
            self.raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
            self.vocab_size = 51
            self.all_special_ids = [50]

        def __call__(self, text: str, add_special_tokens: bool = True) -> Any:
            ids = self.raw.encode(text).ids
            return argparse.Namespace(input_ids=([50] if add_special_tokens else []) + ids)

        def decode(self, ids: list[int]) -> str:
            return " ".join(f"w{i}" for i in ids)

        def num_special_tokens_to_add(self) -> int:
            return 1

    counter = HFTokenCounter(Tok(), "tiny")
    path = _mooncake(tmp_path / "m.jsonl")
    samples = sample_trace(counter, 2, path, block_size=4)
    a, b = (counter.encode(s.prompt) for s in samples)
    # The tokenizer adds one special token: the ids are one shorter than input_length.
    assert (len(a), len(b)) == (11, 9)
    assert a[:8] == b[:8] and a[8:9] != b[8:9]
    assert 50 not in a + b  # never a special token


# --- formats, times and windows -----------------------------------------------------------


def test_mooncake_milliseconds_scaled_and_windowed(tmp_path: Path) -> None:
    path = _mooncake(tmp_path / "m.jsonl")
    assert detect_format(path) == "mooncake"
    assert [s.arrival for s in _sample(path)] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [s.arrival for s in _sample(path, time_scale=0.5)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    # A window in trace seconds, re-based to its start, then scaled.
    window = _sample(path, trace_start=1.5, trace_duration=2.0, time_scale=2.0)
    assert [s.arrival for s in window] == [1.0, 3.0]
    assert [s.prompt_len for s in window] == [3, 8]
    # --num-prompts takes the window's first requests.
    assert [s.arrival for s in _sample(path, 2, trace_start=1.0)] == [0.0, 1.0]
    with pytest.raises(UsageError, match=r"empty trace window .*no request of .* from 9 s"):
        _sample(path, trace_start=9.0)


def test_bailian_seconds_and_16_token_blocks(tmp_path: Path) -> None:
    ids = list(range(100, 102))
    rows = [
        {"chat_id": 2, "parent_chat_id": -1, "timestamp": 61.5, "input_length": 40,
         "output_length": 5, "type": "text", "turn": 1, "hash_ids": [*ids, 7]},
        {"chat_id": 1, "parent_chat_id": -1, "timestamp": 61.25, "input_length": 20,
         "output_length": 3, "type": "text", "turn": 1, "hash_ids": [ids[0], 9]},
    ]  # fmt: skip
    path = _jsonl(tmp_path / "b.jsonl", rows)
    assert detect_format(path) == "bailian"
    samples = _sample(path)
    # Time order, from the earliest request (a file need not start at 0 or be sorted).
    assert [s.arrival for s in samples] == [0.0, 0.25]
    first, second = (WORDS.encode(s.prompt) for s in samples)
    assert first[:16] == second[:16] and first[16:20] != second[16:20]


def test_azure_csv_dates_from_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,0\n"
        "\n"
        "2023-11-16 18:15:51.0000000,12,7\n"
    )
    assert detect_format(str(path)) == "azure"
    samples = _sample(str(path))
    assert [s.arrival for s in samples] == pytest.approx([0.0, 4.314579, 4.31941], abs=1e-6)
    assert [s.prompt_len for s in samples] == [374, 396, 12]
    # Nothing to generate is sent as one token.
    assert [s.expected_output_len for s in samples] == [44, 1, 7]
    assert [len(s.prompt.split()) for s in samples] == [374, 396, 12]


def test_generic_jsonl_prompts_lengths_and_output_len(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "g.jsonl",
        [
            {"timestamp_ms": 250, "prompt": "hello there world", "max_tokens": 4},
            {"timestamp_ms": 0, "input_length": 5, "output_length": 2},
        ],
    )
    assert detect_format(path) == "jsonl"
    samples = _sample(path)
    assert [s.arrival for s in samples] == [0.0, 0.25]
    assert samples[1].prompt == "hello there world" and samples[1].prompt_len == 3
    assert [s.expected_output_len for s in samples] == [2, 4]
    assert [s.expected_output_len for s in _sample(path, output_len=9)] == [9, 9]
    seconds = _jsonl(tmp_path / "s.jsonl", [{"timestamp": 1.5, "prompt": "a", "max_tokens": 1}])
    assert _sample(seconds, trace_format="jsonl")[0].arrival == 0.0


def test_an_ambiguous_first_record_asks_for_the_format(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "x.jsonl", [{"timestamp": 5, "input_length": 3, "output_length": 1}])
    with pytest.raises(UsageError, match="can't tell the trace format.*--trace-format"):
        detect_format(path)
    # Told, both readings work: milliseconds or seconds.
    assert read_trace(path, "mooncake")[0].time == 0.005
    assert read_trace(path, "jsonl")[0].time == 5.0


_BAD = [
    ("mooncake", '{"timestamp": 0, "input_length": 4, "output_length": 1}\n{"timestamp": 1}\n',
     "line 2: field 'input_length' is missing"),
    ("mooncake", '{"timestamp": "soon", "input_length": 4, "output_length": 1}\n',
     "line 1: field 'timestamp' is a string, expected a number"),
    ("mooncake", '{"timestamp": 0, "input_length": 4, "output_length": 1, "hash_ids": 3}\n',
     "line 1: field 'hash_ids' is an int, expected a list of integers"),
    ("mooncake", '{"timestamp": 0, "input_length": 0, "output_length": 1}\n',
     "line 1: field 'input_length' is 0, expected at least 1"),
    ("bailian", '{"timestamp": 0, "input_length": 4, "output_length": 1}\n\nnot json\n',
     "line 3: not valid JSON"),
    ("jsonl", '{"timestamp": 0, "prompt": "a b"}\n',
     "line 1: no field 'output_length'"),
    ("jsonl", '{"timestamp": 0, "prompt": ["a"], "max_tokens": 1}\n',
     "line 1: field 'prompt' is a list, expected a string"),
    ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,3,1\nyesterday,3,1\n",
     "line 3: field 'TIMESTAMP' is 'yesterday', expected a date and time"),
    ("azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,three,1\n",
     "line 2: field 'ContextTokens' is 'three', expected an integer"),
    ("azure", "TIMESTAMP,Tokens\n1,2\n", "line 1: the header has no column 'ContextTokens'"),
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "text", "why"), _BAD)
def test_a_bad_record_is_one_line_naming_file_line_and_field(
    tmp_path: Path, fmt: str, text: str, why: str
) -> None:
    path = tmp_path / "trace.txt"
    path.write_text(text)
    with pytest.raises(UsageError) as excinfo:
        _sample(str(path), trace_format=fmt)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"invalid dataset (--dataset-path {path}): ")
    assert why in message


# --- flags ------------------------------------------------------------------------------


def _config(*argv: str) -> BenchConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_the_trace_flags(tmp_path: Path) -> None:
    config = _config(
        "--dataset-name", "trace", "--dataset-path", "t.jsonl", "--trace-format", "azure",
        "--time-scale", "0.5", "--trace-start", "10", "--trace-duration", "60",
        "--block-size", "16",
    )  # fmt: skip
    assert (config.trace_format, config.time_scale, config.block_size) == ("azure", 0.5, 16)
    assert (config.trace_start, config.trace_duration) == (10.0, 60.0)
    # The whole trace (window) by default.
    assert config.resolved_num_prompts() == -1
    config.validate(set())


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["--dataset-name", "trace", "--request-rate", "5"], "--request-rate"),
        (["--dataset-name", "trace", "--burstiness", "0.5"], "--burstiness"),
        (["--dataset-name", "trace", "--time-scale", "0"], "--time-scale"),
        (["--dataset-name", "trace", "--trace-start", "-1"], "--trace-start"),
        (["--time-scale", "2"], "--time-scale"),
        (["--block-size", "16"], "--block-size"),
    ],
)
def test_flags_that_conflict_with_a_trace_or_need_one(argv: list[str], where: str) -> None:
    with pytest.raises(UsageError, match=f"\\({where}\\)"):
        _config(*argv).validate(set())


# --- replays ------------------------------------------------------------------------------


def _replay_config(server: MockServer, path: str, **kwargs: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "base_url": server.base_url,
        "tokenizer_mode": "words",
        "dataset_name": "trace",
        "dataset_path": path,
        "block_size": 4,
        "time_scale": 0.01,
        "disable_tqdm": True,
        "quiet": True,
        "temperature": 0.0,
    }
    base.update(kwargs)
    return BenchConfig(**base)


def _check_replay(result: Any, server: MockServer, path: str) -> None:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    offsets = [row["timestamp"] / 1000 * 0.01 for row in rows]
    assert result.metrics.completed == len(rows) and result.metrics.failed == 0
    # Each request went out at its own (scaled) trace time: the schedule is the trace.
    assert [r.scheduled for r in result.records] == pytest.approx(offsets)
    # The server got every prompt, each exactly its recorded length, and was asked for
    # the recorded output.
    got = {r.header("x-request-id"): r.json for r in server.requests if r.json}
    prompts = [got[r.request_id]["prompt"] for r in result.records]
    assert [len(p.split()) for p in prompts] == [row["input_length"] for row in rows]
    assert [got[r.request_id]["max_tokens"] for r in result.records] == [
        row["output_length"] for row in rows
    ]
    assert prompts[0].split()[:8] == prompts[1].split()[:8] == prompts[3].split()[:8]
    assert result.result["total_input_tokens"] == sum(row["input_length"] for row in rows)
    assert result.result["total_output_tokens"] == sum(row["output_length"] for row in rows)
    replay = result.result["trace_replay"]
    assert (replay["requests"], replay["planned"], replay["time_scale"]) == (5, 5, 0.01)
    assert replay["span_s"] == pytest.approx(0.04)
    timeline = replay["timeline"]
    step = timeline["bucket_s"]
    assert sum(timeline["offered_rps"]) * step == pytest.approx(5)
    assert sum(timeline["dispatched_rps"]) * step == pytest.approx(5)
    assert 0 <= replay["late"] <= 5
    assert replay["send_lag_max_ms"] >= replay["send_lag_p99_ms"] >= replay["send_lag_p50_ms"]


@pytest.mark.anyio
async def test_a_replay_sends_every_request_at_its_time(tmp_path: Path, anyio_backend: Any) -> None:
    path = _mooncake(tmp_path / "m.jsonl")
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0)) as server:
        result = await arun_benchmark(
            _replay_config(server, path, max_concurrency=2), handle_signals=False
        )
        _check_replay(result, server, path)
    replay = result.result["trace_replay"]
    # With a concurrency cap the replay also says how late requests started.
    assert "started_rps" in replay["timeline"] and "start_lag_p99_ms" in replay
    assert result.result["request_rate"] == pytest.approx(100.0)  # 4 gaps in 0.04 s
    text = "\n".join(result.report)
    assert "Trace replay" in text and "Send lag vs trace P50/P99/max (ms):" in text


def test_a_replay_across_two_workers_keeps_each_requests_time(tmp_path: Path) -> None:
    path = _mooncake(tmp_path / "m.jsonl")
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0)) as server:
        result = run_benchmark(_replay_config(server, path, workers=2))
        _check_replay(result, server, path)
    assert {r.worker for r in result.records} == {0, 1}
    assert "started_rps" not in result.result["trace_replay"]["timeline"]


def test_the_report_draws_offered_against_achieved(tmp_path: Path) -> None:
    from anyio_llmreq.report import build_charts, load_inputs

    timeline = {
        "bucket_s": 0.5, "t": [0.0, 0.5], "offered_rps": [4.0, 2.0],
        "dispatched_rps": [4.0, 2.0], "lag_p50_ms": [0.1, None], "lag_p99_ms": [0.2, None],
        "lag_max_ms": [0.3, None],
    }  # fmt: skip
    result = {"completed": 3, "duration": 1.0, "trace_replay": {"timeline": timeline}}
    charts = {c.id: c for c in build_charts(load_inputs([result]))}
    spec = charts["trace-replay"].spec
    rows = [row for rows in spec["datasets"].values() for row in rows]
    offered = [r for r in rows if r.get("series") == "offered (trace)"]
    # One point per interval, and the last interval's end.
    assert [(r["t"], r["value"]) for r in offered] == [(0.0, 4.0), (0.5, 2.0), (1.0, 2.0)]
    lag = [r for r in rows if r.get("series") == "P99"]
    assert [r["value"] for r in lag] == [0.2, 0.2]
    assert not math.isnan(sum(r["value"] for r in lag))
    without = {"completed": 3, "duration": 1.0}
    assert "trace-replay" not in {c.id for c in build_charts(load_inputs([without]))}
