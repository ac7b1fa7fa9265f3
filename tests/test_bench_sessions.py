"""Multi-turn sessions (``--dataset-name multi-turn``): both inputs parsed, vLLM's
distributions, the history each turn carries (checked on what the mock server received),
per-turn metrics, failed turns, workers, and one-line errors for bad files and flags."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import attrs
import numpy as np
import pytest

from anyio_llmreq.bench import BenchConfig, arun_benchmark, run_benchmark
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._sessions import (
    Distribution,
    load_conversations,
    parse_distribution,
    parse_think_time,
)
from anyio_llmreq.bench._tokens import WordCounter
from anyio_llmreq.report import build_charts, load_inputs
from anyio_llmreq.testing import MockBehaviour, MockServerThread, open_mock_server

FAST = MockBehaviour(ttft=0.0, itl=0.0, output_len=4)


def _config(tmp_path, **options: Any) -> dict[str, Any]:
    """A small vLLM generation config, written to *tmp_path*."""
    conf: dict[str, Any] = {
        "filetype": "generate_conversations",
        "num_conversations": 5,
        "text_files": [],
        "prompt_input": {
            "num_turns": {"distribution": "uniform", "min": 2, "max": 6},
            "common_prefix_num_tokens": {"distribution": "constant", "value": 20},
            "prefix_num_tokens": {"distribution": "constant", "value": 30},
            "num_tokens": {"distribution": "uniform", "min": 15, "max": 40},
        },
        "prompt_output": {"num_tokens": {"distribution": "constant", "value": 6}},
    }
    conf.update(options)
    return conf


def _write(tmp_path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _bench(path: str, **kwargs: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "backend": "openai-chat",
        "dataset_name": "multi-turn",
        "dataset_path": path,
        "request_rate": math.inf,
        "mock_ttft": 0.0,
        "mock_itl": 0.0,
        "tokenizer_mode": "words",
        "disable_tqdm": True,
        "quiet": True,
    }
    base.update(kwargs)
    return BenchConfig(**base)


CONVERSATIONS = [
    {
        "id": "a",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question here"},
            {"role": "assistant", "content": "recorded answer one two"},
            {"role": "user", "content": "second question"},
            {"role": "assistant", "content": "recorded answer two"},
            {"role": "user", "content": "third question"},
        ],
    },
    [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "and again"},
    ],
    {
        "conversations": [
            {"from": "human", "value": "sharegpt question"},
            {"from": "gpt", "value": "sharegpt answer words"},
            {"from": "human", "value": "follow up"},
            {"from": "human", "value": "out of turn: the conversation is cut here"},
        ]
    },
]


# -- inputs ------------------------------------------------------------------------------


def test_generation_config_makes_vllm_conversations(tmp_path):
    path = _write(tmp_path, "gen.json", _config(tmp_path))
    convs = load_conversations(path, WordCounter(), seed=3, num=None)
    assert len(convs) == 5
    common = None
    for c, conv in enumerate(convs):
        assert conv.id == f"CONV_ID_{c}"
        # Messages: 2 to 6 and even, so 1 to 3 user turns, each with its answer.
        assert 1 <= len(conv.turns) <= 3
        first = conv.turns[0][0]["content"]
        assert f"{c} is a nice number... " in first
        assert "Please rewrite the following text and add more content: " in first
        head = first.split(f"{c} is a nice number")[0]
        common = common or head
        assert head == common and len(head.split()) == 18  # 20 - 2 tokens, then "."
        for user, answer, out in conv.turns:
            assert user["role"] == "user" and answer is not None
            assert out == 6 and len(answer["content"].split()) == 6
            assert 15 <= len(user["content"].split()) <= 40 + 30 + 18 + 4
    again = load_conversations(path, WordCounter(), seed=3, num=None)
    assert again == convs
    other = load_conversations(path, WordCounter(), seed=4, num=None)
    assert other != convs
    assert len(load_conversations(path, WordCounter(), seed=3, num=2)) == 2


def test_conversation_files_json_and_jsonl(tmp_path):
    path = _write(tmp_path, "conv.json", CONVERSATIONS)
    convs = load_conversations(path, WordCounter(), seed=0, num=None)
    assert [c.id for c in convs] == ["a", "conv-1", "conv-2"]
    a = convs[0]
    assert a.system == ({"role": "system", "content": "be brief"},)
    assert [t[0]["content"] for t in a.turns] == [
        "first question here",
        "second question",
        "third question",
    ]
    assert a.turns[0][1] == {"role": "assistant", "content": "recorded answer one two"}
    assert a.turns[2][1] is None  # the last user message has no recorded answer
    # ShareGPT: kept up to the first message out of turn.
    assert [t[0]["content"] for t in convs[2].turns] == ["sharegpt question", "follow up"]
    jsonl = "\n".join(json.dumps(c) for c in CONVERSATIONS) + "\n"
    lines = load_conversations(_write(tmp_path, "conv.jsonl", jsonl), WordCounter(), seed=0, num=2)
    assert lines == convs[:2]


def test_distributions_follow_their_definitions(tmp_path):
    rng = np.random.RandomState

    def dist(spec: dict[str, Any]) -> Distribution:
        return parse_distribution({"s": {"x": spec}}, "s", "x", "f.json")

    assert list(dist({"distribution": "constant", "value": 7}).sample(rng(0), 4)) == [7] * 4
    ints = dist({"distribution": "uniform", "min": 2, "max": 5}).sample(rng(0), 2000)
    assert set(ints.tolist()) == {2, 3, 4, 5}  # both ends included
    floats = dist({"distribution": "uniform", "min": 0.5, "max": 1.5}).sample(rng(0), 2000)
    assert floats.min() >= 0.5 and floats.max() < 1.5 and floats.dtype.kind == "f"
    zipf = dist({"distribution": "zipf", "alpha": 1.5, "max": 9}).sample(rng(0), 2000)
    assert zipf.min() >= 1 and zipf.max() == 9
    poisson = dist({"distribution": "poisson", "alpha": 4, "max": 6}).sample(rng(0), 2000)
    assert poisson.min() >= 0 and poisson.max() == 6 and 3 < poisson.mean() < 5
    avg = dist({"distribution": "lognormal", "average": 200}).sample(rng(0), 5000)
    assert abs(avg.mean() - 200) < 1  # scaled to the average, then rounded
    assert np.median(avg) < avg.mean()  # median ratio 0.85: skewed right
    raw = dist({"distribution": "lognormal", "mean": 3.0, "sigma": 0.5, "max": 40})
    values = raw.sample(rng(1), 2000)
    assert values.max() == 40 and values.dtype.kind == "i"
    assert (raw.sample(rng(1), 2000) == values).all()  # the seed decides
    # An optional subsection left out is constant 0.
    absent = parse_distribution({"s": {}}, "s", "y", "f.json", optional=True)
    assert absent == Distribution("constant", value=0)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"filetype": "other"}, "field 'filetype' is 'other'"),
        (
            {"prompt_input": {"num_turns": {"distribution": "uniform", "min": 3}}},
            "prompt_input.num_turns: the uniform distribution needs field 'max'",
        ),
        (
            {"prompt_input": {"num_turns": {"distribution": "gauss"}}},
            "prompt_input.num_turns: field 'distribution' is 'gauss'",
        ),
        (
            {"prompt_output": {"num_tokens": {"distribution": "zipf", "alpha": 0.5}}},
            "prompt_output.num_tokens: field 'alpha' must be over 1",
        ),
        ({"num_conversations": 0}, "field 'num_conversations' is 0"),
        ([{"messages": [{"role": "user"}]}], "record 0: messages[0]: field 'content'"),
        ([{"messages": "hi"}], "record 0: field 'messages' is a string"),
        (
            [{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}],
            "record 0: messages[1]: field 'role' is 'user', expected assistant",
        ),
        ([{"id": "x", "messages": []}, {"id": "x", "messages": []}], "no conversation"),
        (
            [{"conversations": [{"from": "alien", "value": "x"}]}],
            "record 0: conversations[0]: field 'from' is 'alien'",
        ),
        ([3], "record 0 is a number, expected an object or a list of messages"),
        ("[{]", "not valid JSON"),
    ],
)
def test_bad_files_say_file_record_and_field(tmp_path, data, expected):
    if isinstance(data, dict) and "filetype" not in data:
        full = _config(tmp_path)
        for key, value in data.items():
            if isinstance(value, dict):
                full[key] = {**full[key], **value}
            else:
                full[key] = value
        data = full
    path = _write(tmp_path, "bad.json", data)
    with pytest.raises(UsageError) as info:
        load_conversations(path, WordCounter(), seed=0, num=None)
    text = str(info.value)
    assert "\n" not in text and f"--dataset-path {path}" in text
    assert expected in text, text


def test_bad_jsonl_line_and_text_too_short(tmp_path):
    jsonl = json.dumps(CONVERSATIONS[1]) + "\n" + '{"messages": [}\n'
    with pytest.raises(UsageError, match="line 2: not valid JSON"):
        load_conversations(_write(tmp_path, "c.jsonl", jsonl), WordCounter(), seed=0, num=None)
    text = _write(tmp_path, "short.txt", "only a few words here")
    conf = _config(tmp_path, text_files=[text])
    with pytest.raises(UsageError, match=r"text_files hold 5 tokens, too few"):
        load_conversations(_write(tmp_path, "g.json", conf), WordCounter(), seed=0, num=None)
    with pytest.raises(UsageError, match=r"--num-prompts.*9 conversations asked.*holds 3"):
        load_conversations(_write(tmp_path, "c.json", CONVERSATIONS), WordCounter(), seed=0, num=9)


def test_think_time_forms():
    assert parse_think_time(None).draw(np.random.default_rng(0), 2) == [0.0, 0.0]
    assert parse_think_time("0.5").draw(np.random.default_rng(0), 2) == [0.5, 0.5]
    drawn = parse_think_time("uniform:1:2").draw(np.random.default_rng(0), 500)
    assert 1 <= min(drawn) and max(drawn) <= 2
    drawn = parse_think_time("exponential:2").draw(np.random.default_rng(0), 2000)
    assert 1.8 < sum(drawn) / len(drawn) < 2.2
    for bad in ("-1", "uniform:3:1", "gauss:1", "soon"):
        with pytest.raises(UsageError, match="--think-time"):
            parse_think_time(bad)


def test_flags_checked_before_the_run(tmp_path):
    path = _write(tmp_path, "c.json", CONVERSATIONS)
    with pytest.raises(UsageError, match=r"\(--backend openai\).*only the openai-chat"):
        _bench(path, backend="openai").validate(set())
    with pytest.raises(UsageError, match=r"\(--think-time\).*multi-turn only"):
        BenchConfig(think_time="1").validate(set())
    with pytest.raises(UsageError, match="--max-active-conversations"):
        _bench(path, max_active_conversations=0).validate(set())


# -- runs --------------------------------------------------------------------------------


def _chats(server) -> list[list[dict[str, Any]]]:
    return [r.json["messages"] for r in server.requests if r.path == "/v1/chat/completions"]


def test_each_turn_carries_the_servers_answers(tmp_path):
    path = _write(tmp_path, "c.json", CONVERSATIONS)
    jsonl = tmp_path / "r.jsonl"
    with MockServerThread(FAST) as server:
        result = run_benchmark(
            _bench(path, base_url=server.base_url, output_jsonl=str(jsonl), save_detailed=True)
        )
        sent = _chats(server)
    assert len(sent) == 3 + 2 + 2 + 1  # every turn, and the probe
    records = {(r.session_id, r.turn): r for r in result.records}
    assert sorted(records) == [("a", 1), ("a", 2), ("a", 3), ("conv-1", 1), ("conv-1", 2)] + [
        ("conv-2", 1),
        ("conv-2", 2),
    ]
    a3 = next(m for m in sent if m[-1]["content"] == "third question")
    answer1, answer2 = records["a", 1].output.generated_text, records["a", 2].output.generated_text
    assert answer1 and answer1 != "recorded answer one two"
    assert a3 == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question here"},
        {"role": "assistant", "content": answer1},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": answer2},
        {"role": "user", "content": "third question"},
    ]
    # Input tokens are the history's: the server's count of the same messages.
    assert all(r.output.prompt_len == r.output.prompt_tokens for r in result.records)
    res = result.result
    assert res["conversations"] == res["conversations_completed"] == 3
    assert res["turns_not_sent"] == 0 and not result.interrupted
    assert [t["turn"] for t in res["per_turn"]] == [1, 2, 3]
    assert [t["completed"] for t in res["per_turn"]] == [3, 3, 1]
    assert {"mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "p99_e2el_ms"} <= set(
        res["per_turn"][0]
    )
    assert res["num_prompts"] == 3 and res["completed"] == 7
    assert sorted(zip(res["session_ids"], res["turns"], strict=True)) == sorted(records)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert {(x["session_id"], x["turn"]) for x in lines} == set(records)
    report = "\n".join(result.report)
    assert "Conversations completed:                 3/3" in report
    assert "TTFT p50" in report
    # The HTML report's chart of latency by turn, from the result's per_turn.
    charts = {c.id: c for c in build_charts(load_inputs([result]))}
    data = [row for rows in charts["turn-latency"].spec["datasets"].values() for row in rows]
    ttft = {(r["turn"], r["stat"]) for r in data if r.get("metric") == "TTFT"}
    assert ttft == {(t, s) for t in (1, 2, 3) for s in ("P50", "P99")}
    assert {(r["turn"], r["requests"]) for r in data if "requests" in r} == {(1, 3), (2, 3), (3, 1)}
    assert "3/3 conversations completed" in json.dumps(charts["turn-latency"].spec["title"])


def test_recorded_answers_and_output_lengths(tmp_path):
    path = _write(tmp_path, "c.json", CONVERSATIONS[:1])
    with MockServerThread(FAST) as server:
        run_benchmark(_bench(path, base_url=server.base_url, multi_turn_use_recorded_answers=True))
        bodies = [r.json for r in server.requests if r.path == "/v1/chat/completions"][1:]
    third = bodies[2]["messages"]
    assert [m["content"] for m in third if m["role"] == "assistant"] == [
        "recorded answer one two",
        "recorded answer two",
    ]
    # max tokens: the recorded answer's length; the last turn has none (the default).
    assert [b["max_completion_tokens"] for b in bodies] == [4, 3, 128]


def test_a_failed_turn_stops_its_session(tmp_path):
    path = _write(tmp_path, "c.json", CONVERSATIONS)
    out = io.StringIO()
    with MockServerThread(MockBehaviour(status=500)) as server:
        result = run_benchmark(_bench(path, base_url=server.base_url, quiet=False), stdout=out)
    res = result.result
    assert [r.turn for r in result.records] == [1, 1, 1]
    assert res["conversations_failed"] == 3 and res["conversations_completed"] == 0
    assert res["turns_not_sent"] == 4 and res["not_finished"] == 0
    assert not result.interrupted
    assert "4 turn(s) not sent: a failed turn stopped their conversation." in out.getvalue()
    assert "Conversations stopped at a failed turn:  3" in out.getvalue()


def test_workers_keep_each_session_on_one_worker(tmp_path):
    path = _write(tmp_path, "gen.json", _config(tmp_path, num_conversations=8))
    with MockServerThread(FAST) as server:
        result = run_benchmark(
            _bench(path, base_url=server.base_url, workers=2, max_active_conversations=2)
        )
    by_session: dict[str, set[int]] = {}
    for r in result.records:
        by_session.setdefault(r.session_id or "", set()).add(r.worker)
    assert len(by_session) == 8 and all(len(w) == 1 for w in by_session.values())
    assert {w for ws in by_session.values() for (w,) in [tuple(ws)]} == {0, 1}
    assert result.result["conversations_completed"] == 8 and not result.interrupted
    # Turns of a session go out one after the other.
    for sid in by_session:
        turns = sorted((r for r in result.records if r.session_id == sid), key=lambda r: r.turn)
        starts = [r.output.start_time for r in turns]
        assert starts == sorted(starts)


@pytest.mark.anyio
async def test_sessions_on_every_loop(tmp_path):
    path = _write(tmp_path, "gen.json", _config(tmp_path, num_conversations=4))
    async with open_mock_server(FAST) as server:
        config = _bench(
            path,
            base_url=server.base_url,
            think_time="uniform:0:0.01",
            max_concurrency=2,
            max_active_conversations=2,
            ramp_up_strategy=None,
        )
        result = await arun_benchmark(config, handle_signals=False)
    res = result.result
    assert res["conversations_completed"] == 4 and res["turns_planned"] == len(result.records)
    assert res["max_concurrency"] == 2 and result.metrics.failed == 0
    for rec in result.records:
        if rec.turn and rec.turn > 1:
            assert rec.scheduled > 0  # due after the answer before it and the pause


def test_plan_and_worker_shares(tmp_path):
    from anyio_llmreq.bench import Target, plan_workload
    from anyio_llmreq.bench._workers import worker_specs

    path = _write(tmp_path, "gen.json", _config(tmp_path, num_conversations=7))
    target = Target(
        base_url="http://127.0.0.1:1",
        model_name="m",
        model_id="m",
        counter=WordCounter(),
        tokenizer_id="words",
    )
    config = _bench(
        path, workers=3, max_active_conversations=5, think_time="uniform:1:2", request_rate=4.0
    )
    plan = plan_workload(config, target)
    assert plan.workers == 3 and len(plan.sessions) == 7
    assert len(plan.requests) == sum(len(s.turns) for s in plan.sessions)
    assert [t.scheduled.index for s in plan.sessions for t in s.turns] == list(
        range(len(plan.requests))
    )
    delays = [s.delay for s in plan.sessions]
    assert delays == sorted(delays) and delays[-1] == pytest.approx(7 / 4)
    pauses = [p for s in plan.sessions for p in s.think_times]
    assert all(1 <= p <= 2 for p in pauses)
    assert all(len(s.think_times) == len(s.turns) - 1 for s in plan.sessions)
    assert plan_workload(config, target).sessions[0].think_times == plan.sessions[0].think_times
    specs = worker_specs(plan, 3)
    assert all(s.requests == () and s.sessions is not None for s in specs)
    shares = [s.sessions for s in specs if s.sessions is not None]
    assert [[x.index for x in share.sessions] for share in shares] == [[0, 3, 6], [1, 4], [2, 5]]
    assert [share.max_active for share in shares] == [2, 2, 1]
    lora = plan_workload(attrs.evolve(config, lora_modules=("x", "y", "z")), target)
    assert all(len({t.scheduled.request.model for t in s.turns}) == 1 for s in lora.sessions)
    assert len({s.turns[0].scheduled.request.model for s in lora.sessions}) > 1
    ordinary = plan_workload(BenchConfig(num_prompts=4, random_input_len=8), target)
    assert ordinary.sessions == () and worker_specs(ordinary, 2)[0].sessions is None


def test_mock_server_counts_long_histories_as_words():
    import random

    from anyio_llmreq.testing._tokens import count_words

    rng = random.Random(0)
    alphabet = " \t\n\r\x0b\x0c\x1c\x1f ab.,é"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(200, 600)))
        assert count_words(text) == len(text.split())
    history = [{"role": "user", "content": " word" * 5000}, {"role": "assistant", "content": "a"}]
    assert count_words(history) == 5001


def test_a_stopped_run_counts_unsent_turns_as_not_finished(tmp_path):
    path = _write(tmp_path, "c.json", CONVERSATIONS)
    with MockServerThread(FAST) as server:
        result = run_benchmark(_bench(path, base_url=server.base_url), stop_after=2)
    assert result.interrupted and len(result.records) >= 2
    assert result.not_finished == 7 - len(result.records)
    assert result.result["conversations_not_finished"] >= 1
