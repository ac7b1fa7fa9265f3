"""What ``import anyio_llmreq`` loads beyond its dependencies: a list of modules, not a
timing (timings flake; a module that comes back is what made the import slow).

Each check runs in a fresh interpreter that imports the core dependencies first
(httpx, anyio, attrs, dataclasses), so only what the package itself adds is counted:
whatever httpx pulls in on a given install (its CLI, in some environments) is not ours.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

DEPS = "import httpx, anyio, attrs, dataclasses"

# Top-level names the package may add to what its dependencies load: itself and the
# optional fast paths (orjson). anyio, sniffio and contextvars are what older anyio
# versions load with ``anyio`` itself; newer ones load them on first use.
ALLOWED = {
    "anyio_llmreq", "anyio", "typing_extensions", "sniffio", "orjson", "contextvars",
    "_contextvars",
}  # fmt: skip

# Never loaded by the import, whoever tries: ML stacks and progress bars (tokenizer and
# benchmark only), the event loops (asyncio too: it is imported by the asyncio run that
# needs it, and a trio application never does), httpx's own transport, the subpackages and
# modules that are imported only when used, and heavy stdlib modules nothing here needs
# at import.
HEAVY = (
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "torch",
    "numpy",
    "tqdm",
    "asyncio",
    "trio",
    "uvloop",
    "httpcore",
    "h11",
    "h2",
    "ray",
    "anyio._backends",
    "anyio.streams",
    # Loaded on first use: the shared client's RunVar, a socket's attributes.
    "anyio.lowlevel",
    "anyio.abc",
    "anyio_llmreq.bench",
    "anyio_llmreq.sweep",
    "anyio_llmreq.report",
    "altair",
    "vl_convert",
    "playwright",
    "prometheus_client",
    "anyio_llmreq.testing",
    "anyio_llmreq._gguf",
    "anyio_llmreq._transport._trio_reactor",
    "importlib.metadata",
    "multiprocessing",
    "argparse",
    "wave",
    "audioop",
    "mmap",
)


def new_modules(statement: str) -> list[str]:
    """The modules *statement* loads in a fresh interpreter after the dependencies."""
    code = (
        f"import json, sys; {DEPS}; before = set(sys.modules); {statement}; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return list(json.loads(result.stdout))


def top_level(modules: list[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.fixture(scope="module")
def loaded() -> list[str]:
    return new_modules("import anyio_llmreq")


def test_the_import_loads_nothing_heavy(loaded: list[str]) -> None:
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []


def test_the_import_adds_only_known_packages(loaded: list[str]) -> None:
    unexpected = top_level(loaded) - ALLOWED
    assert unexpected == set(), (
        f"import anyio_llmreq now also loads {sorted(unexpected)}: import them where "
        "they are used (or, if they are cheap and needed, add them to ALLOWED)"
    )


def test_the_guard_sees_what_a_statement_loads() -> None:
    # The checks above are only as good as new_modules: it must see a module load.
    assert "wave" in new_modules("import wave")
    assert "anyio_llmreq.bench" in new_modules("import anyio_llmreq.bench")
