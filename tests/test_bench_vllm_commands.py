"""``vllm bench serve`` command lines, run as ``anyio-llmreq bench`` against the embedded
mock server: those of vLLM's docs that need no download (hub datasets and files replaced
by small local copies in their formats) and one for each dataset, backend and flag of
the drop-in list. Each must finish with every request successful.

The commands are written as a vLLM user types them; only the program name changes, and
``FAST`` (our mock-server timing, no progress bar) is appended.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from anyio_llmreq._cli import main
from anyio_llmreq.testing import MockBehaviour, MockServerThread
from tests.test_bench_hf_datasets import _dataset

FAST = ["--mock-ttft", "0", "--mock-itl", "0", "--disable-tqdm"]

# {name} is replaced by the path of the file made by FILES[name].
COMMANDS = {
    # vLLM's docs (docs/benchmarking/cli.md), files made locally.
    "docs_sharegpt": "vllm bench serve --backend vllm --model NousResearch/Hermes-3-Llama-3.1-8B "
    "--endpoint /v1/completions --dataset-name sharegpt --dataset-path {sharegpt} "
    "--num-prompts 10",
    "docs_custom": "vllm bench serve --port {port} --save-result --save-detailed --backend vllm "
    "--model meta-llama/Llama-3.1-8B-Instruct --endpoint /v1/completions --dataset-name custom "
    "--dataset-path {custom} --skip-chat-template --num-prompts 8 --max-concurrency 1 "
    "--temperature=0.3 --top-p=0.75 --result-dir {out}",
    "docs_vision_arena": "vllm bench serve --backend openai-chat --model Qwen/Qwen2-VL-7B-Instruct "
    "--endpoint /v1/chat/completions --dataset-name hf --dataset-path {vision_arena} "
    "--hf-name lmarena-ai/VisionArena-Chat --hf-split train --num-prompts 6",
    "docs_instruct_coder": "vllm bench serve --model meta-llama/Meta-Llama-3-8B-Instruct "
    "--dataset-name hf --dataset-path {instruct_coder} --hf-name likaixin/InstructCoder "
    "--num-prompts 6",
    "docs_spec_bench_all": "vllm bench serve --model meta-llama/Meta-Llama-3-8B-Instruct "
    "--dataset-name spec_bench --dataset-path {spec_bench} --num-prompts -1",
    "docs_spec_bench_category": "vllm bench serve --model meta-llama/Meta-Llama-3-8B-Instruct "
    "--dataset-name spec_bench --dataset-path {spec_bench} --num-prompts -1 "
    '--spec-bench-category "summarization"',
    "docs_random_mm": "vllm bench serve --backend openai-chat --model Qwen/Qwen2.5-VL-3B-Instruct "
    "--endpoint /v1/chat/completions --dataset-name random-mm --num-prompts 6 "
    "--random-prefix-len 5 --random-input-len 30 --random-output-len 4 "
    "--random-range-ratio 0.2 --random-mm-base-items-per-request 2 "
    "--random-mm-num-mm-items-range-ratio 0.5 "
    """--random-mm-limit-mm-per-prompt '{"image": 3, "video": 0}' """
    "--random-mm-bucket-config '{(32, 32, 1): 0.5, (16, 24, 1): 0.5}' "
    "--request-rate inf --ignore-eos --seed 42",
    "docs_burstgpt": "vllm bench serve --model meta-llama/Llama-3.1-8B-Instruct "
    "--dataset-name burstgpt --dataset-path {burstgpt} --num-prompts 8",
    "docs_prefix_repetition": "vllm bench serve --model meta-llama/Llama-3.1-8B-Instruct "
    "--dataset-name prefix_repetition --num-prompts 8 --prefix-repetition-prefix-len 16 "
    "--prefix-repetition-suffix-len 8 --prefix-repetition-num-prefixes 2 "
    "--prefix-repetition-output-len 4",
    "docs_rerank": "vllm bench serve --model BAAI/bge-reranker-v2-m3 --backend vllm-rerank "
    "--endpoint /v1/rerank --dataset-name random-rerank "
    "--random-input-len 24 --random-batch-size 4 --num-prompts 6",
    "docs_embeddings_batch": "vllm bench serve --model jinaai/jina-embeddings-v3 "
    "--backend openai-embeddings --endpoint /v1/embeddings --dataset-name random "
    "--random-input-len 16 --random-batch-size 4 --num-prompts 6",
    # One for each remaining dataset, backend and flag.
    "random_general_lengths": "vllm bench serve --model m --input-len 12 --output-len 3 "
    "--num-prompts 6 --request-rate 200 --burstiness 0.5 --header x-a=1 x-b=2 --seed 7",
    "ramp_up": "vllm bench serve --model m --random-input-len 8 --random-output-len 2 "
    "--num-prompts 8 --ramp-up-strategy linear --ramp-up-start-rps 100 --ramp-up-end-rps 400",
    "sonnet_chat": "vllm bench serve --backend openai-chat --endpoint /v1/chat/completions "
    "--model m --dataset-name sonnet --dataset-path {sonnet} --sonnet-input-len 85 "
    "--sonnet-prefix-len 20 --sonnet-output-len 4 --num-prompts 5",
    "custom_output_len": "vllm bench serve --model m --dataset-name custom --dataset-path {custom} "
    "--custom-output-len -1 --disable-shuffle --no-oversample --num-prompts 3",
    "custom_mm": "vllm bench serve --backend openai-chat --endpoint /v1/chat/completions "
    "--model m --dataset-name custom_mm --dataset-path {custom_mm} --num-prompts -1",
    "custom_mm_multimodal_chat": "vllm bench serve --backend openai-chat "
    "--endpoint /v1/chat/completions --model m --dataset-name custom_mm "
    "--dataset-path {custom_mm} --enable-multimodal-chat --num-prompts 3",
    "txt_slices": "vllm bench serve --model m --dataset-name txt-slices --dataset-path {txt} "
    "--random-input-len 12 --random-output-len 3 --num-prompts 5",
    "rerank_without_reranker": "vllm bench serve --model m --backend openai-embeddings "
    "--endpoint /v1/embeddings --dataset-name random-rerank --no-reranker "
    "--random-input-len 10 --random-batch-size 3 --num-prompts 4",
    "hf_sharegpt_no_stream": "vllm bench serve --model m --dataset-name hf --dataset-path "
    "{hf_sharegpt} --hf-name Aeala/ShareGPT_Vicuna_unfiltered --hf-split train --no-stream "
    "--hf-output-len 5 --num-prompts 4",
    "hf_mt_bench_output_len": "vllm bench serve --model m --dataset-name hf --dataset-path "
    "{mt_bench} --hf-name philschmid/mt-bench --output-len 7 --num-prompts 3",
    "hf_asr_audio": "vllm bench serve --model openai/whisper-tiny --backend openai-audio "
    "--endpoint /v1/audio/transcriptions --dataset-name hf --dataset-path {asr} "
    "--hf-name openslr/librispeech_asr --hf-split train --asr-max-audio-len-sec 2 "
    "--num-prompts 3",
    "hf_vision_arena_embeddings": "vllm bench serve --model TIGER-Lab/VLM2Vec-Full "
    "--backend openai-embeddings-vlm2vec --endpoint /v1/embeddings --dataset-name hf "
    "--dataset-path {vision_arena} --hf-name lmarena-ai/VisionArena-Chat --num-prompts 4",
    "embeddings_chat": "vllm bench serve --model m --backend openai-embeddings-chat "
    "--endpoint /v1/embeddings --dataset-name random --random-input-len 8 --num-prompts 4",
    "embeddings_clip": "vllm bench serve --model m --backend openai-embeddings-clip "
    "--dataset-name random --random-input-len 8 --num-prompts 4",
    "pooling": "vllm bench serve --model m --backend vllm-pooling --endpoint /pooling "
    "--dataset-name random --random-input-len 8 --num-prompts 4",
    "infinity": "vllm bench serve --model m --backend infinity-embeddings "
    "--dataset-name random --random-input-len 8 --num-prompts 4",
    "infinity_clip": "vllm bench serve --model m --backend infinity-embeddings-clip "
    "--dataset-name random --random-input-len 8 --num-prompts 4",
    "sampling_and_lora": "vllm bench serve --model m --frequency-penalty 0.1 "
    "--presence-penalty 0.2 --repetition-penalty 1.05 --lora-modules a b "
    "--lora-assignment round-robin --profile --tokenizer-mode hf --skip-tokenizer-init "
    "--use-beam-search --num-prompts 4 --random-input-len 8 --random-output-len 2",
}


def _sharegpt(path: Path) -> None:
    convs = [
        {"conversations": [
            {"from": "human", "value": f"question {i} " + "word " * (4 + i)},
            {"from": "gpt", "value": "answer " * (5 + i)},
        ]}
        for i in range(12)
    ]  # fmt: skip
    path.write_text(json.dumps(convs))


def _custom(path: Path) -> None:
    lines = [{"prompt": f"What is the capital of country {i}?", "output_tokens": 3 + i}
             for i in range(4)]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _spec_bench(path: Path) -> None:
    cats = ["writing", "summarization", "math", "summarization", "qa"]
    rows = [{"question_id": i, "category": c, "turns": [f"Question {i} about {c} please."]}
            for i, c in enumerate(cats)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _burstgpt(path: Path) -> None:
    rows = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    rows += [f"{i * 3},GPT-4,{10 + i},{2 + i % 3},{12 + i + i % 3},Conversation log"
             for i in range(10)]  # fmt: skip
    rows += ["40,ChatGPT,30,4,34,Conversation log"]
    path.write_text("\n".join(rows) + "\n")


def _sonnet(path: Path) -> None:
    lines = [f"Shall I compare thee to a summer day number {i}," for i in range(40)]
    path.write_text("\n".join(lines) + "\n")


def _custom_mm(path: Path) -> None:
    image = path.parent / "picture.png"
    Image.new("RGB", (8, 6), (10, 200, 30)).save(image)
    lines = [{"prompt": f"Describe picture {i}.", "image_files": [str(image)]} for i in range(3)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _txt(path: Path) -> None:
    path.write_text(" ".join(f"token{i}" for i in range(200)) + "\n")


def _vision_arena(path: Path) -> None:
    rows = [
        {"conversation": [[{"role": "user", "content": f"what is in picture {i}"}]],
         "images": [Image.new("RGB", (9, 7), (i * 20, 0, 0))]}
        for i in range(5)
    ]  # fmt: skip
    features = datasets.Features({
        "conversation": [[{"role": datasets.Value("string"), "content": datasets.Value("string")}]],
        "images": [datasets.Image()],
    })  # fmt: skip
    _dataset(path, {"train": rows}, features=features)


def _instruct_coder(path: Path) -> None:
    rows = [{"input": f"def f{i}(): pass", "instruction": "Rename it."} for i in range(8)]
    _dataset(path, {"train": rows})


def _hf_sharegpt(path: Path) -> None:
    rows = [{"conversations": [{"from": "human", "value": f"prompt number {i} has words"},
                               {"from": "gpt", "value": f"reply {i} with five words"}]}
            for i in range(6)]  # fmt: skip
    _dataset(path, {"train": rows})


def _mt_bench(path: Path) -> None:
    _dataset(path, {"train": [{"turns": [f"question {i} here", "more"]} for i in range(4)]})


def _asr(path: Path) -> None:
    def sine(seconds: float) -> list[float]:
        t = np.arange(int(seconds * 16_000)) / 16_000
        return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32).tolist()

    rows = [{"audio": {"array": sine(s), "sampling_rate": 16_000}} for s in (0.5, 1.0, 3.0)]
    _dataset(path, {"train": rows})


FILES = {
    "sharegpt": ("sharegpt.json", _sharegpt),
    "custom": ("custom.jsonl", _custom),
    "spec_bench": ("question.jsonl", _spec_bench),
    "burstgpt": ("BurstGPT_without_fails_2.csv", _burstgpt),
    "sonnet": ("sonnet.txt", _sonnet),
    "custom_mm": ("image_data.jsonl", _custom_mm),
    "txt": ("book.txt", _txt),
    "vision_arena": ("VisionArena-Chat", _vision_arena),
    "instruct_coder": ("InstructCoder", _instruct_coder),
    "hf_sharegpt": ("ShareGPT_Vicuna", _hf_sharegpt),
    "mt_bench": ("mt-bench", _mt_bench),
    "asr": ("librispeech", _asr),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The local files, and ``port``: a standalone mock server's, for the docs'
    ``--port 9001``."""
    root = tmp_path_factory.mktemp("vllm-files")
    paths = {"out": str(root / "results")}
    for key, (name, make) in FILES.items():
        path = root / name
        make(path)
        paths[key] = str(path)
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0), record=False) as server:
        paths["port"] = server.base_url.rsplit(":", 1)[1]
        yield paths


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    # datasets waits 5 s after a shuffled stream's reader threads: not under test.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0, raising=False)


def _argv(command: str, files: dict[str, str], out: Path) -> list[str]:
    # Only {name}s of files: JSON and dict flag values keep their braces.
    text = re.sub(r"\{(\w+)\}", lambda m: files.get(m.group(1), m.group(0)), command)
    words = shlex.split(text)
    assert words[:3] == ["vllm", "bench", "serve"]
    # A real server's model would need its tokenizer from the hub: count words.
    offline = ["--tokenizer-mode", "words"] if "--port" in words else []
    return ["bench", *words[3:], *FAST, *offline, "--output-jsonl", str(out)]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_vllm_command_line_runs_unchanged(name, files, tmp_path, capsys):
    jsonl = tmp_path / "requests.jsonl"
    status = main(_argv(COMMANDS[name], files, jsonl))
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "============ Serving Benchmark Result ============" in out.out
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert records and all(r["success"] for r in records), records[:1]
    assert "Failed requests:                         0" in out.out


def test_every_dataset_and_pooling_backend_is_in_the_table():
    from anyio_llmreq.bench._config import POOLING_BACKENDS
    from anyio_llmreq.bench._datasets import DATASET_NAMES, SESSION_DATASETS

    text = " ".join(COMMANDS.values())
    # Ours alone: our old spelling (vLLM's is in the table), multi-turn and trace replay.
    ours = ("prefix-repetition", *SESSION_DATASETS, "trace")
    for name in DATASET_NAMES:
        if name not in ours:
            assert f"--dataset-name {name} " in text, name
    for backend in POOLING_BACKENDS:
        assert f"--backend {backend} " in text, backend


def test_the_audio_set_sends_its_own_audio(files, tmp_path):
    """The ASR rows' audio reaches the server (not the synthetic noise of text sets)."""
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0)) as server:
        argv = _argv(COMMANDS["hf_asr_audio"], files, tmp_path / "r.jsonl")
        argv += ["--base-url", server.base_url, "--tokenizer-mode", "words"]
        assert main(argv) == 0
        sizes = {r.files["file"].size for r in server.requests if r.files}
    # 16-bit PCM WAV (a 44-byte header): the two clips of at most 2 s, 0.5 s and 1 s at
    # 16 kHz (and the probe, which sends the first).
    assert sizes == {44 + 2 * 8_000, 44 + 2 * 16_000}
