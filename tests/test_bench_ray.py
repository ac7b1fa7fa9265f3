"""The Ray executor (``--executor ray``) on a real local Ray cluster (one head for the
module, on 127.0.0.1, 2 CPUs, no dashboard) against a standalone mock server: exact
accounting, percentiles on the merged records, the same figures as ``--workers 2``, an
actor killed mid-run, SIGINT; and, without a cluster, its flags, clock estimate and
missing extra. The actors' loops: asyncio, trio and uvloop, one run each."""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import attrs
import numpy as np
import pytest

from anyio_llmreq._cli import build_parser
from anyio_llmreq._engine import Timeouts
from anyio_llmreq.bench import BenchConfig, Executor, RequestRecord, arun_benchmark, run_benchmark
from anyio_llmreq.bench._cli import config_from_args
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._execute import Execution, RecordCallback
from anyio_llmreq.bench._plan import WorkloadPlan
from anyio_llmreq.bench._ray import (
    ClockOffset,
    RayExecutor,
    _Actor,
    _ActorInfo,
    _check_reachable,
    clock_lines,
    estimate_offset,
    require_ray,
)
from anyio_llmreq.bench._workers import WorkerSpec
from anyio_llmreq.testing import MockBehaviour, MockServer, MockServerThread

NUM = 40


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Any]:
    """A local Ray head for the module; nothing reports home, nothing leaves 127.0.0.1."""
    import ray

    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # ray.init makes SIGTERM exit and installs its own excepthook: both put back after.
    sigterm, excepthook = signal.getsignal(signal.SIGTERM), sys.excepthook
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, sigterm)
        sys.excepthook = excepthook
        if saved is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = saved


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServerThread(MockBehaviour(itl=0.002), record=False) as running:
        yield running


def _config(server: MockServer, **kwargs: Any) -> BenchConfig:
    base: dict[str, Any] = {
        "base_url": server.base_url, "tokenizer_mode": "words", "num_prompts": NUM,
        "random_input_len": 8, "random_output_len": 8, "request_rate": 20.0,
        "executor": "ray", "workers": 2, "disable_tqdm": True, "quiet": True,
    }  # fmt: skip
    base.update(kwargs)
    return BenchConfig(**base)


@attrs.frozen
class _Hooked:
    """A ``RayExecutor`` whose records pass through *hook* (after the sink's call)."""

    inner: RayExecutor
    hook: Any

    async def run(self, plan: WorkloadPlan, on_record: RecordCallback) -> Execution:
        def both(rec: RequestRecord) -> None:
            on_record(rec)
            self.hook(rec)

        return await self.inner.run(plan, both)


def _percentile_checks(result: Any) -> None:
    records = result.records
    ttfts = [r.output.ttft * 1000 for r in records]
    itls = [x * 1000 for r in records for x in r.output.itl]
    for name, values in (("ttft", ttfts), ("itl", itls)):
        assert result.result[f"mean_{name}_ms"] == pytest.approx(np.mean(values))
        assert result.result[f"median_{name}_ms"] == pytest.approx(np.median(values))
        assert result.result[f"p99_{name}_ms"] == pytest.approx(np.percentile(values, 99))


def test_two_actors_account_for_every_request_and_match_two_processes(
    ray_head: Any, server: MockServer, tmp_path: Any
) -> None:
    jsonl = tmp_path / "ray.jsonl"
    config = _config(
        server,
        loop="asyncio",
        workers_per_node=2,  # one node, both actors: the placement-group path
        max_concurrency=8,
        save_detailed=True,
        output_jsonl=str(jsonl),
    )
    ray_run = run_benchmark(config)
    records = ray_run.records
    assert [r.index for r in records] == list(range(NUM))  # each request exactly once
    assert all(r.output.success for r in records), records[0].output.error
    assert all(r.index % 2 == r.worker for r in records)  # worker_specs' split
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(NUM))
    result = ray_run.result
    assert (result["completed"], result["not_finished"], result["interrupted"]) == (NUM, 0, False)
    assert result["executor"] == "ray" and result["workers"] == 2
    assert [a["status"] for a in result["ray_actors"]] == ["finished", "finished"]
    assert [a["finished"] for a in result["ray_actors"]] == [NUM // 2, NUM // 2]
    for actor in result["ray_actors"]:
        assert actor["cpu_fraction"] > 0 and actor["send_lag_p99_ms"] is not None
        assert actor["loop_lag_p99_ms"] is not None
    for clock in result["clock_offsets"]:
        # One machine, one clock: the estimate is within its own bound of zero.
        assert abs(clock["offset_ms"]) <= clock["uncertainty_ms"] + 0.05
        assert clock["end_offset_ms"] is not None
    _percentile_checks(ray_run)

    processes = run_benchmark(attrs.evolve(config, executor="local", workers_per_node=None))
    local = processes.result
    assert "executor" not in local and local["workers"] == 2
    for key in ("completed", "failed", "total_input_tokens", "total_output_tokens"):
        assert result[key] == local[key], key
    assert result["input_lens"] == local["input_lens"]
    assert result["output_lens"] == local["output_lens"]
    assert result["client_processes"] == local["client_processes"] == 2


def test_an_actor_killed_mid_run_keeps_what_it_finished(ray_head: Any, server: MockServer) -> None:
    killed: list[int] = []
    seen = [0]

    def kill_worker_1(rec: RequestRecord) -> None:
        if rec.worker != 1 or killed:
            return
        seen[0] += 1
        if seen[0] == 3:
            (name,) = [n for n in ray_head.util.list_named_actors() if n.endswith("-1")]
            ray_head.kill(ray_head.get_actor(name))
            killed.append(rec.index)

    out = io.StringIO()
    config = _config(server, loop="trio", quiet=False)
    executor = _Hooked(RayExecutor(), kill_worker_1)
    run = functools.partial(arun_benchmark, config, stdout=out, executor=executor)
    bench = anyio.run(run, backend="trio")
    assert killed
    by_worker = [[r for r in bench.records if r.worker == k] for k in (0, 1)]
    assert len(by_worker[0]) == NUM // 2  # the other actor finished its share
    assert 3 <= len(by_worker[1]) < NUM // 2  # the killed one kept what it sent back
    indices = [r.index for r in bench.records]
    assert len(set(indices)) == len(indices) and all(r.index % 2 == r.worker for r in bench.records)
    result = bench.result
    assert result["not_finished"] == NUM - len(bench.records) == NUM // 2 - len(by_worker[1])
    assert result["completed"] == len(bench.records) and result["interrupted"] is True
    lost = result["ray_actors"][1]
    assert lost["status"] == "lost" and "died" in lost["reason"]
    assert result["ray_actors"][0]["status"] == "finished"
    text = out.getvalue()
    assert "Ray: 2 actor(s) on 1 node(s), started in" in text
    assert f"worker 1 (Ray actor on {lost['node']}) was lost after" in text
    assert "count as not finished" in text
    _percentile_checks(bench)


def test_sigint_stops_every_actor_and_writes_what_finished(
    ray_head: Any, server: MockServer, tmp_path: Any
) -> None:
    jsonl = tmp_path / "stopped.jsonl"
    config = _config(
        server,
        loop="uvloop",
        output_jsonl=str(jsonl),
        save_result=True,
        result_dir=str(tmp_path),
        result_filename="stopped.json",
    )

    seen = [0]

    def interrupt(rec: RequestRecord) -> None:
        seen[0] += 1
        if seen[0] == 7:  # Ctrl-C, as the terminal sends it
            os.kill(os.getpid(), signal.SIGINT)

    executor = _Hooked(RayExecutor(handle_signals=True), interrupt)
    run = functools.partial(arun_benchmark, config, executor=executor)
    bench = anyio.run(run, backend="asyncio", backend_options={"use_uvloop": True})
    assert bench.stop_signal == signal.SIGINT and bench.interrupted
    assert 7 <= len(bench.records) < NUM
    result = json.loads((tmp_path / "stopped.json").read_text())
    assert result["completed"] + result["failed"] == len(bench.records)
    assert result["not_finished"] == NUM - len(bench.records)
    assert {a["status"] for a in result["ray_actors"]} == {"stopped"}
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == sorted(r.index for r in bench.records)


def test_stop_after_stops_every_actor(ray_head: Any, server: MockServer) -> None:
    bench = run_benchmark(_config(server, num_prompts=20, request_rate=10.0), stop_after=5)
    assert bench.interrupted and bench.stop_signal is None
    assert 5 <= len(bench.records) < 20
    assert bench.not_finished == 20 - len(bench.records)
    assert {a["status"] for a in bench.result["ray_actors"]} == {"stopped"}


def test_a_server_on_this_machine_is_refused_for_actors_on_other_nodes(ray_head: Any) -> None:
    from types import SimpleNamespace

    actors = [_actor(0, 0.0, 0.001), _actor(1, 0.0, 0.001)]
    here = ray_head.get_runtime_context().get_node_id()
    actors[0].info = _ActorInfo(node_id=here, node="10.0.0.1", pid=1)
    actors[1].info = _ActorInfo(node_id="elsewhere", node="10.0.0.2", pid=2)
    for url, embedded in (("http://127.0.0.1:8000", True), ("http://localhost:8000", False)):
        plan: Any = SimpleNamespace(target=SimpleNamespace(base_url=url, embedded=embedded))
        with pytest.raises(UsageError, match="worker 1 runs on node 10.0.0.2"):
            _check_reachable(ray_head, plan, actors)
    plan = SimpleNamespace(target=SimpleNamespace(base_url="http://10.0.0.9:8000", embedded=False))
    _check_reachable(ray_head, plan, actors)  # a routable address: every node may reach it
    plan = SimpleNamespace(target=SimpleNamespace(base_url="http://127.0.0.1:8000", embedded=True))
    _check_reachable(ray_head, plan, actors[:1])  # every actor on this node: fine


def test_missing_ray_is_a_usage_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UsageError, match=r"pip install 'anyio-llmreq\[ray\]'"):
        require_ray()
    config = BenchConfig(executor="ray", num_prompts=2, request_rate=float("inf"), quiet=True)
    with pytest.raises(UsageError, match=r"--executor ray.*anyio-llmreq\[ray\]"):
        run_benchmark(config)


def test_ray_flags_parse_and_need_executor_ray() -> None:
    args = build_parser().parse_args(
        ["bench", "--executor", "ray", "--ray-address", "ray://head:10001",
         "--workers", "4", "--workers-per-node", "2"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.executor, config.ray_address, config.workers_per_node) == (
        "ray",
        "ray://head:10001",
        2,
    )
    config.validate(set())
    assert BenchConfig().executor == "local"
    with pytest.raises(UsageError, match="--ray-address"):
        BenchConfig(ray_address="auto").validate(set())
    with pytest.raises(UsageError, match="--workers-per-node"):
        BenchConfig(workers_per_node=2).validate(set())
    with pytest.raises(UsageError, match="at least 1"):
        BenchConfig(executor="ray", workers_per_node=0).validate(set())
    assert isinstance(RayExecutor(), Executor)


def test_the_offset_comes_from_the_shortest_round_trip() -> None:
    # (sent, rtt, remote): the remote clock runs 3 ms ahead; slow trips blur it.
    samples = [(100.0, 0.040, 100.033), (200.0, 0.002, 200.004), (300.0, 0.010, 300.001)]
    offset = estimate_offset(samples)
    assert offset.offset == pytest.approx(0.003) and offset.rtt == 0.002
    assert offset.bound == pytest.approx(0.001)


def _actor(worker: int, offset: float, rtt: float) -> _Actor:
    spec = WorkerSpec(
        worker=worker,
        loop="asyncio",
        backend="openai",
        requests=(),
        max_concurrency=None,
        timeouts=Timeouts(),
        verify=True,
    )
    return _Actor(spec, None, offset=ClockOffset(offset, rtt))


def test_the_report_warns_when_a_clock_is_off_by_more_than_a_few_ms() -> None:
    close = [_actor(0, 0.0002, 0.001), _actor(1, -0.0004, 0.0012)]
    lines = clock_lines(close, 1.5)
    assert len(lines) == 1 and "at most 0.40 ms" in lines[0] and "±0.60 ms" in lines[0]
    far = [_actor(0, 0.0002, 0.001), _actor(1, -0.012, 0.002)]
    warning = clock_lines(far, 1.5)[1]
    assert warning.startswith("WARNING: the clock of worker 1") and "-12.0 ms" in warning
    slow_link = [_actor(0, 0.0, 0.030)]  # offset small, but known to ±15 ms only
    assert "±15.0 ms" in clock_lines(slow_link, 1.5)[1]
