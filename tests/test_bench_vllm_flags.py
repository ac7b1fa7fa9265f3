"""The flags of ``vllm bench serve`` that change what is sent or said: several headers
after one ``--header``, ``--input-len``/``--output-len`` mapped as vLLM maps them, the
penalties, LoRA modules, the temperature left to the server (with vLLM's warning),
``--profile``, ``--skip-tokenizer-init``, ``--tokenizer-mode hf``, the result date
taken after the run and the embedded server's banner."""

from __future__ import annotations

import argparse
import io
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from anyio_llmreq import ASYNC_REQUEST_FUNCS, RequestFuncInput
from anyio_llmreq.bench import BenchConfig, run_benchmark
from anyio_llmreq.bench._cli import add_arguments, config_from_args
from anyio_llmreq.bench._config import UsageError
from anyio_llmreq.bench._datasets import SampleRequest
from anyio_llmreq.bench._plan import _dataset_options, build_inputs
from anyio_llmreq.bench._report import EMBEDDED_BANNER, TEMPERATURE_WARNING
from anyio_llmreq.testing import MockBehaviour, MockServerThread

FAST = {
    "num_prompts": 6, "random_input_len": 8, "random_output_len": 3,
    "request_rate": math.inf, "disable_tqdm": True, "seed": 1,
}  # fmt: skip


def _config(*argv: str) -> BenchConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_several_headers_after_one_flag_and_the_flag_repeated():
    config = _config("--header", "a=1", "b=2", "--header", "c=3")
    assert config.headers == {"a": "1", "b": "2", "c": "3"}


def test_general_lengths_map_onto_the_datasets_as_vllm_maps_them():
    config = _config("--input-len", "77", "--output-len", "9")
    assert _dataset_options(config)["input_len"] == 77
    assert _dataset_options(config)["output_len"] == 9
    for name in ("sharegpt", "custom", "hf", "spec_bench", "prefix_repetition"):
        options = _dataset_options(_config("--dataset-name", name, "--output-len", "9"))
        assert options["output_len"] == 9, name
    # vLLM maps neither to sonnet: its own flags stay in force.
    sonnet = _dataset_options(_config("--dataset-name", "sonnet", "--output-len", "9"))
    assert sonnet["output_len"] == 150
    # Without them, each dataset's own flags.
    assert _dataset_options(_config("--random-output-len", "5"))["output_len"] == 5
    assert _dataset_options(_config("--dataset-name", "sharegpt"))["output_len"] is None


def test_ordering_and_template_flags_reach_every_sampler():
    options = _dataset_options(
        _config(
            "--dataset-name",
            "custom",
            "--disable-shuffle",
            "--no-oversample",
            "--skip-chat-template",
        )  # fmt: skip
    )
    assert options["shuffle"] is False and options["oversample"] is False
    assert options["chat_template"] is False
    # The old spelling of --skip-chat-template still works.
    old = _dataset_options(_config("--dataset-name", "custom", "--custom-skip-chat-template"))
    assert old["chat_template"] is False
    hf = _dataset_options(_config("--dataset-name", "hf", "--no-stream", "--hf-split", "x"))
    assert hf["streaming"] is False and hf["hf_split"] == "x" and hf["backend"] == "openai"


def test_both_spellings_of_prefix_repetition_are_one_dataset():
    a = _dataset_options(_config("--dataset-name", "prefix_repetition"))
    b = _dataset_options(_config("--dataset-name", "prefix-repetition"))
    assert a == b and a["num_prefixes"] == 10


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["--dataset-name", "random", "--dataset-path", "x.json"], "--dataset-path"),
        (["--dataset-name", "random-mm"], "--backend openai"),
        (["--backend", "tgi", "--frequency-penalty", "0.5"], "--backend tgi"),
        (["--blazedit-min-distance", "0.9", "--blazedit-max-distance", "0.1"],
         "--blazedit-min-distance"),
        (["--output-len", "0"], "--output-len"),
    ],
)  # fmt: skip
def test_combinations_vllm_rejects_are_usage_errors(argv, where):
    with pytest.raises(UsageError) as info:
        _config(*argv).validate({"openai", "openai-chat", "vllm"})
    assert info.value.where == where


def test_penalties_go_in_every_body():
    config = _config("--frequency-penalty", "0.5", "--presence-penalty", "0.25",
                     "--repetition-penalty", "1.1", "--top-k", "3")  # fmt: skip
    config.validate({"openai"})
    assert config.sampling_params() == {
        "top_k": 3, "frequency_penalty": 0.5, "presence_penalty": 0.25,
        "repetition_penalty": 1.1,
    }  # fmt: skip


def _inputs(config: BenchConfig, n: int = 8) -> list[RequestFuncInput]:
    samples = [SampleRequest(f"p{i}", 1, 2, f"r{i}") for i in range(n)]
    return build_inputs(
        config, samples, api_url="http://h/v1/completions", model_id="base",
        model_name="base-name", ignore_eos=False,
    )  # fmt: skip


def test_lora_modules_name_the_model_of_each_request():
    rr = _inputs(_config("--lora-modules", "a", "b", "c", "--lora-assignment", "round-robin"))
    assert [r.model for r in rr] == ["a", "b", "c", "a", "b", "c", "a", "b"]
    assert all(r.model == r.model_name for r in rr)
    picked = _inputs(_config("--lora-modules", "a", "b", "--seed", "3"))
    again = _inputs(_config("--lora-modules", "a", "b", "--seed", "3"))
    assert [r.model for r in picked] == [r.model for r in again]  # seeded
    assert {r.model for r in picked} == {"a", "b"}
    plain = _inputs(_config())
    assert {(r.model, r.model_name) for r in plain} == {("base", "base-name")}


def _bench_against(server: MockServerThread, **kwargs: object) -> tuple[str, list[dict]]:
    out = io.StringIO()
    config = BenchConfig(base_url=server.base_url, model="m", tokenizer_mode="words",
                         **{**FAST, **kwargs})  # type: ignore[arg-type]  # fmt: skip
    run_benchmark(config, stdout=out)
    bodies = [r.json for r in server.requests if r.json is not None]
    return out.getvalue(), bodies


def test_without_temperature_the_server_decides_and_the_bench_says_so():
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0)) as server:
        said, bodies = _bench_against(server)
        assert said.splitlines()[0] == TEMPERATURE_WARNING
        assert bodies and all("temperature" not in b for b in bodies)
        assert all(b["repetition_penalty"] == 1.0 for b in bodies)  # the rest is vLLM's
        server.reset()
        said, bodies = _bench_against(server, temperature=0.3)
        assert TEMPERATURE_WARNING not in said
        assert bodies and all(b["temperature"] == 0.3 for b in bodies)
        server.reset()
        _, chat = _bench_against(server, backend="openai-chat")
        assert chat and all("temperature" not in b for b in chat)


@pytest.mark.anyio
async def test_the_drop_in_functions_keep_the_legacy_greedy_payload(anyio_backend):
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0)) as server:
        request = RequestFuncInput(
            prompt="hi there", api_url=server.base_url + "/v1/completions", prompt_len=2,
            output_len=2, model="m",
        )  # fmt: skip
        out = await ASYNC_REQUEST_FUNCS["openai"](request)
        assert out.success
        assert server.requests[-1].json["temperature"] == 0.0


def test_profile_brackets_the_run():
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0)) as server:
        said, _ = _bench_against(server, profile=True, temperature=0.0)
        paths = [r.target for r in server.requests]
        n = FAST["num_prompts"]
        # The endpoint probe (one token), then start, the run, stop.
        assert paths[-n - 2 :] == ["/start_profile", *["/v1/completions"] * n, "/stop_profile"]
        assert "Profiler started" in said and "Profiler stopped" in said


def test_a_server_without_profiling_is_said_and_not_fatal():
    import socket

    import anyio

    from anyio_llmreq.bench._plan import Target
    from anyio_llmreq.bench._redact import Console
    from anyio_llmreq.bench._setup import profile
    from anyio_llmreq.bench._tokens import WordCounter

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = _config("--base-url", f"http://127.0.0.1:{port}")
    target = Target(base_url=f"http://127.0.0.1:{port}", model_name="m", model_id="m",
                    counter=WordCounter(), tokenizer_id="w")  # fmt: skip
    out = io.StringIO()
    ok = anyio.run(profile, config, target, "start", Console(config.scrubber(), out, False))
    assert ok is False
    assert "Profiler start failed" in out.getvalue()


def test_skip_tokenizer_init_loads_nothing(monkeypatch):
    import anyio_llmreq.bench._tokens as tokens

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no tokenizer may be loaded")

    monkeypatch.setattr(tokens, "load_token_counter", refuse)
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0)) as server:
        config = BenchConfig(base_url=server.base_url, model="org/not-downloaded",
                             skip_tokenizer_init=True, quiet=True, **FAST)  # fmt: skip
        result = run_benchmark(config)
    assert result.metrics.completed == FAST["num_prompts"]


def test_tokenizer_mode_hf_is_the_fast_tokenizer(monkeypatch):
    import anyio_llmreq.bench._setup as setup

    seen = []
    monkeypatch.setattr(setup, "load_token_counter", lambda name, mode, *a, **k: seen.append(mode))
    config = _config("--tokenizer", "some/tok", "--tokenizer-mode", "hf", "--use-beam-search")
    setup._load_counter(config, "some/tok", setup.Console(config.scrubber(), io.StringIO(), True))
    assert seen == ["auto"]


def test_the_result_date_is_taken_after_the_run(tmp_path):
    before = datetime.now().replace(microsecond=0)
    # Over a second long: a date taken at the start would be a second early.
    config = BenchConfig(mock_ttft=1.2, mock_itl=0.0, save_result=True, result_dir=str(tmp_path),
                         quiet=True, **{**FAST, "num_prompts": 2})  # fmt: skip
    result = run_benchmark(config)
    stamp = datetime.strptime(result.result["date"], "%Y%m%d-%H%M%S")
    assert stamp >= before + timedelta(seconds=int(result.duration))
    assert result.result_path is not None and result.result["date"] in result.result_path
    saved = json.loads(Path(result.result_path).read_text())
    assert saved["date"] == result.result["date"]


def test_the_embedded_server_is_named_first_and_loudly():
    out = io.StringIO()
    run_benchmark(BenchConfig(mock_ttft=0.0, mock_itl=0.0, **FAST), stdout=out)
    first = out.getvalue().splitlines()[0]
    assert first == EMBEDDED_BANNER and "EMBEDDED MOCK SERVER" in first


@pytest.mark.parametrize("command", ["bench", "sweep"])
def test_a_vllm_flag_we_do_not_have_is_one_line(command, capsys):
    from anyio_llmreq._cli import main

    with pytest.raises(SystemExit) as info:
        main([command, "--plot-timeline", "--probe-request-rate", "2"])
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"anyio-llmreq {command}: error: unrecognized arguments: ")
    assert "--plot-timeline --probe-request-rate 2" in line
