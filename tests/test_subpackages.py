"""The three public parts: the request library at the top level, ``anyio_llmreq.bench`` and
``anyio_llmreq.testing``; the names that moved; and what the base install needs."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

import anyio_llmreq

SUBPACKAGES = [
    "anyio_llmreq.bench", "anyio_llmreq.report", "anyio_llmreq.sweep", "anyio_llmreq.testing",
]  # fmt: skip
BENCH_EXTRA = ("numpy", "tqdm", "transformers")


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_all_is_sorted_and_lives_in_private_modules(name: str) -> None:
    module = importlib.import_module(name)
    names = list(module.__all__)

    def rank(item: str) -> tuple[int, str]:
        return (0 if item.isupper() else 1 if item[0].isupper() else 2, item)

    assert names == sorted(names, key=rank)
    assert len(names) == len(set(names))
    for item in names:
        obj = getattr(module, item)
        home = getattr(obj, "__module__", "")
        if home.startswith(name):
            assert home.split(".")[-1].startswith("_"), (item, home)


@pytest.mark.parametrize("name", sorted(anyio_llmreq._MOVED))
def test_a_moved_name_still_resolves_with_a_deprecation_warning(name: str) -> None:
    home = anyio_llmreq._MOVED[name]
    with pytest.warns(DeprecationWarning, match=rf"anyio_llmreq\.{home}\.{name}\b"):
        old = getattr(anyio_llmreq, name)
    assert old is getattr(importlib.import_module(f"anyio_llmreq.{home}"), name)
    assert name not in anyio_llmreq.__all__


def test_from_import_of_a_moved_name_warns_at_the_importer() -> None:
    with pytest.warns(DeprecationWarning) as caught:
        from anyio_llmreq import MockServer  # noqa: F401
    assert caught[0].filename == __file__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        anyio_llmreq.no_such_name  # noqa: B018


def test_the_top_level_loads_neither_subpackage_and_the_subpackages_load_no_extra() -> None:
    loaded = run_python(
        """
        import sys
        import anyio_llmreq
        subs = ("anyio_llmreq.bench", "anyio_llmreq.sweep", "anyio_llmreq.testing")
        top = [m for m in subs if m in sys.modules]
        import anyio_llmreq.testing
        mock = "anyio_llmreq.bench" in sys.modules
        import anyio_llmreq.bench
        import anyio_llmreq.sweep
        heavy = [m for m in ("numpy", "tqdm", "transformers", "httpx_sse") if m in sys.modules]
        print(top, mock, heavy)
        """
    )
    assert loaded == "[] False []"


def test_the_base_install_holds_no_extra() -> None:
    # The installed metadata, which is what pip resolves.
    requires = [r.replace('"', "'") for r in metadata.requires("anyio-llmreq") or []]
    base = " ".join(r for r in requires if "extra ==" not in r)
    for name in (*BENCH_EXTRA, "httpx-sse", "orjson", "trio"):
        assert name not in base, name
    bench = " ".join(r for r in requires if "extra == 'bench'" in r)
    assert all(name in bench for name in BENCH_EXTRA)


# Makes the extras unimportable, as on a base install, before anything is imported.
BLOCK_EXTRAS = """
import sys
for name in ("numpy", "tqdm", "transformers", "httpx_sse", "orjson"):
    sys.modules[name] = None
"""


def test_the_client_and_the_mock_server_work_without_any_extra() -> None:
    # The embedding case: a request over a real socket to the mock server, measured.
    printed = run_python(
        BLOCK_EXTRAS
        + """
import anyio
from anyio_llmreq import Client, RequestFuncInput
from anyio_llmreq.testing import MockBehaviour, open_mock_server

async def main() -> None:
    async with open_mock_server(MockBehaviour(ttft=0.0, itl=0.0, output_len=5)) as server:
        async with Client() as client:
            url = f"{server.base_url}/v1/completions"
            out = await client.send("vllm", RequestFuncInput("hi", url, 1, 5, "m"))
    print(out.success, len(out.itl) + 1, out.ttft > 0)

anyio.run(main)
"""
    )
    assert printed == "True 5 True"


def test_get_tokenizer_without_transformers_names_the_extra() -> None:
    printed = run_python(
        BLOCK_EXTRAS
        + """
from anyio_llmreq import get_tokenizer

try:
    get_tokenizer("some/model")
except ImportError as exc:
    print(exc)
"""
    )
    assert printed.startswith("get_tokenizer needs transformers: pip install 'anyio-llmreq[bench]'")
