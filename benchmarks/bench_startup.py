"""Start-up: from ``anyio-llmreq bench`` starting to its first request, with a large tokenizer.

A byte-level BPE with a Gemma-3-sized vocabulary (262,144 tokens by default) is built
with the ``tokenizers`` library and saved as a transformers tokenizer directory (cached
under /tmp: building it takes a while). Each run starts ``anyio-llmreq bench --tokenizer
DIR --num-prompts 1`` in a fresh process against a mock server in this process, and
reports the time from starting the process to the server receiving its first request
(both read on the system-wide monotonic clock) and the process's CPU time for the whole
run. Rows: the package at *--before* (a copy of an older ``anyio_llmreq``, run with
PYTHONPATH) and this checkout, each with an empty tokenizer cache (every first run: loads
through transformers, then caches) and with the cache filled.

    cp -r anyio_llmreq /tmp/startup_before/   # before a change
    python benchmarks/bench_startup.py [--before /tmp/startup_before] [--after .] [--vocab N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anyio_llmreq.testing import MockBehaviour, MockServerThread

ROOT = Path(__file__).resolve().parent.parent


def build_tokenizer(vocab_size: int, where: Path) -> Path:
    """A byte-level BPE of *vocab_size* tokens: the 256 byte symbols, then merges of
    earlier tokens (short ones first, so text splits into realistic pieces)."""
    path = where / f"anyio_llmreq_startup_bpe_{vocab_size}"
    if (path / "tokenizer.json").exists():
        return path
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    rng = random.Random(0)
    tokens = sorted(alphabet)
    vocab = {t: i for i, t in enumerate(tokens)}
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size - 3:
        # Mostly recent (longer) tokens paired with single bytes, like real merges.
        left = tokens[rng.randrange(len(tokens))] if rng.random() < 0.5 else rng.choice(alphabet)
        right = rng.choice(alphabet) if rng.random() < 0.7 else tokens[rng.randrange(len(tokens))]
        merged = left + right
        if merged in vocab or len(merged) > 16:
            continue
        vocab[merged] = len(vocab)
        tokens.append(merged)
        merges.append((left, right))
    for special in ("<unk>", "<bos>", "<eos>"):
        vocab[special] = len(vocab)
    raw = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )
    tmp = Path(tempfile.mkdtemp(dir=where, prefix=".tmp-startup-bpe-"))
    fast.save_pretrained(tmp)
    os.replace(tmp, path)
    return path


def one_run(tokenizer: Path, pythonpath: str | None, cache_dir: str) -> tuple[float, float]:
    """(seconds from process start to the first request, CPU seconds of the process)."""
    env = dict(os.environ, ANYIO_LLMREQ_CACHE_DIR=cache_dir, HF_HUB_OFFLINE="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    main = "import sys; from anyio_llmreq._cli import main; sys.exit(main())"
    with MockServerThread(MockBehaviour(ttft=0.0, itl=0.0)) as server:
        cmd = [sys.executable, "-c", main, "bench", "--base-url", server.base_url]
        cmd += ["--model", "m", "--tokenizer", str(tokenizer), "--num-prompts", "1"]
        cmd += ["--random-input-len", "32", "--random-output-len", "4", "--disable-tqdm"]
        start = time.perf_counter()  # CLOCK_MONOTONIC, as the server's received_at
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=tempfile.gettempdir(),
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            assert proc.stderr is not None
            raise RuntimeError(f"bench failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        first = min(r.received_at for r in server.requests)
    return first - start, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="/tmp/startup_before", help="old package's parent")
    parser.add_argument("--after", default=str(ROOT), help="new package's parent")
    parser.add_argument("--vocab", type=int, default=262_144)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokenizer-cache", default=tempfile.gettempdir())
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    tokenizer = build_tokenizer(args.vocab, Path(args.tokenizer_cache))
    size = (tokenizer / "tokenizer.json").stat().st_size / 1e6
    print(f"tokenizer: {tokenizer} ({size:.1f} MB, ready in {time.perf_counter() - t0:.1f} s)")
    cache = tempfile.mkdtemp(prefix="anyio_llmreq-startup-cache-")
    rows: list[tuple[str, list[tuple[float, float]]]] = []
    try:
        trees = [("after", args.after)]
        if (Path(args.before) / "anyio_llmreq").is_dir():
            trees.insert(0, ("before", args.before))
        for name, tree in trees:
            # Each first run with an empty cache (an older package may keep one too).
            cold = []
            for _ in range(args.runs):
                shutil.rmtree(cache, ignore_errors=True)
                cold.append(one_run(tokenizer, tree, cache))
            rows.append((f"{name}, first run (no cache)", cold))
            warm = [one_run(tokenizer, tree, cache) for _ in range(args.runs)]
            rows.append((f"{name}, cached", warm))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{'':30} {'to first request':>17} {'CPU':>8}   (medians of {args.runs})")
    base = None
    for label, runs in rows:
        first = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        base = base if base is not None else first
        print(f"{label:30} {first:15.2f} s {cpu:6.2f} s   x{first / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
