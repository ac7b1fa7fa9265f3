"""The bench's stages on their own: the plan without I/O, the parser derived from
``BenchConfig``'s fields, both executors through the ``Executor`` interface, and the
atomic result file."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from anyio_llmreq.bench import (
    BenchConfig,
    Execution,
    Executor,
    LocalExecutor,
    RequestRecord,
    Target,
    WorkerExecutor,
    get_request_schedule,
    plan_workload,
)
from anyio_llmreq.bench._cli import add_arguments, config_from_args
from anyio_llmreq.bench._config import FLAG_KEY, flags
from anyio_llmreq.bench._records import save_result
from anyio_llmreq.bench._tokens import WordCounter
from anyio_llmreq.testing import MockBehaviour, open_mock_server


def _target(base_url: str = "http://127.0.0.1:9") -> Target:
    # Port 9 (discard): nothing may connect while a plan is built.
    return Target(
        base_url=base_url,
        model_name="served",
        model_id="org/m",
        counter=WordCounter(),
        tokenizer_id="whitespace-words",
    )


def _config(**kwargs: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "base_url": "http://127.0.0.1:9", "num_prompts": 6, "random_input_len": 5,
        "random_output_len": 3, "request_rate": 20.0, "seed": 3, "request_id_prefix": "p-",
    }  # fmt: skip
    base.update(kwargs)
    return BenchConfig(**base)


def test_the_workload_plan_is_built_without_io() -> None:
    config = _config(backend="openai-chat", max_concurrency=2, workers=4, timeout=7.0)
    plan = plan_workload(config, _target())
    assert plan == plan_workload(config, _target())  # deterministic for a seed
    assert plan.endpoint == "/v1/chat/completions"
    assert plan.api_url == "http://127.0.0.1:9/v1/chat/completions"
    assert plan.workers == 2  # --workers capped by --max-concurrency
    assert plan.timeouts.total == 7.0
    schedule = get_request_schedule(6, 20.0, 1.0, None, None, None, seed=3)
    assert plan.schedule == schedule
    assert [r.delay for r in plan.requests] == list(schedule.delays)
    assert [r.index for r in plan.requests] == list(range(6))
    first = plan.requests[0].request
    assert first.request_id == "p-0" and first.model == "org/m" and first.model_name == "served"
    assert first.prompt_len == len(first.prompt.split()) == 5
    assert all(r.request.timeout == 7.0 for r in plan.requests)


def test_a_plan_states_a_ramp_up() -> None:
    config = _config(request_rate=None, ramp_up_strategy="linear", ramp_up_start_rps=1,
                     ramp_up_end_rps=4)  # fmt: skip
    plan = plan_workload(config, _target())
    assert plan.ramp_up == ("linear", 1, 4)
    assert plan.schedule.rates[0] == 1.0 and plan.schedule.rates[-1] <= 4.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_every_flagged_field_is_in_the_parser_and_nothing_else() -> None:
    parser = _parser()
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    flagged = {f.name for f in attrs.fields(BenchConfig) if FLAG_KEY in f.metadata}
    assert dests == flagged
    assert "quiet" not in dests  # no flag: a field for programs only
    for field, spec in flags():
        assert parser._option_string_actions[spec.cli].dest == field.name
        for alias in spec.aliases:
            assert parser._option_string_actions[alias].dest == field.name


def test_defaults_come_from_the_fields() -> None:
    assert config_from_args(_parser().parse_args([])) == BenchConfig()


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--input-len", "7"], "input_len", 7),
        (["--random-input-len", "7"], "random_input_len", 7),
        (["--output-len", "9"], "output_len", 9),
        (["--random-output-len", "9"], "random_output_len", 9),
        (["--header", "A=1", "--header", "B=2"], "headers", {"A": "1", "B": "2"}),
        (["--ramp-up-strategy", "exponential"], "ramp_up_strategy", "exponential"),
        (["--request-rate", "2.5"], "request_rate", 2.5),
    ],
)
def test_aliases_and_parsed_flags_set_their_field(
    argv: list[str], field: str, value: object
) -> None:
    assert getattr(config_from_args(_parser().parse_args(argv)), field) == value


def test_choices_come_from_literal_annotations() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--loop", "gevent"])


async def _run_through(executor: Executor, workers: int) -> tuple[Execution, list[int]]:
    async with open_mock_server(MockBehaviour(ttft=0.002, itl=0.001), record=False) as server:
        config = _config(base_url=server.base_url, model="mock-model", request_rate=float("inf"),
                         workers=workers)  # fmt: skip
        plan = plan_workload(config, _target(server.base_url))
        seen: list[int] = []

        def on_record(record: RequestRecord) -> None:
            seen.append(record.index)

        execution = await executor.run(plan, on_record)
    return execution, seen


@pytest.mark.parametrize("executor", [LocalExecutor(handle_signals=False), WorkerExecutor()])
def test_both_executors_run_a_plan_over_the_mock_server(executor: Executor) -> None:
    assert isinstance(executor, Executor)
    workers = 2 if isinstance(executor, WorkerExecutor) else 1
    execution, seen = anyio.run(_run_through, executor, workers)
    assert sorted(seen) == list(range(6))
    assert [r.index for r in execution.records] == list(range(6))  # request order
    assert all(r.output.success for r in execution.records), execution.records[0].output.error
    assert {r.worker for r in execution.records} == set(range(workers))
    assert len(execution.stats) == workers and execution.duration > 0
    assert not execution.interrupted and execution.not_finished == 0


def test_a_failed_result_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out" / "r.json"
    save_result(str(path), {"a": 1})

    def broken_dump(obj: Any, f: Any, **kwargs: Any) -> None:
        f.write('{"half": ')
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        save_result(str(path), {"b": 2})
    with pytest.raises(OSError, match="disk full"):
        save_result(str(tmp_path / "out" / "new.json"), {"c": 3})
    assert os.listdir(path.parent) == ["r.json"]  # no temp file, no new file
    assert json.loads(path.read_text()) == {"a": 1}  # the previous file, whole
