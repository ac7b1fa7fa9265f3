from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from anyio_llmreq import _json

_LOOPS = [pytest.param(("asyncio", {}), id="asyncio"), pytest.param(("trio", {}), id="trio")]
if sys.platform != "win32":
    # uvloop is in the test extra wherever it builds: missing, it is an error, not a skip.
    import uvloop  # noqa: F401

    _LOOPS.insert(1, pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The bench caches checked tokenizers; tests (and the processes they start) keep
    # theirs out of the user's ~/.cache.
    old = os.environ.get("ANYIO_LLMREQ_CACHE_DIR")
    os.environ["ANYIO_LLMREQ_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["ANYIO_LLMREQ_CACHE_DIR"]
    else:
        os.environ["ANYIO_LLMREQ_CACHE_DIR"] = old


@pytest.fixture(params=_LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Every async test runs on asyncio, asyncio with uvloop, and trio."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=["default", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    """Which transport a client under test uses (see ``tests/clients.py``)."""
    kind: str = request.param
    return kind


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokenizer loading without the network: the hub is offline, ModelScope unused."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("VLLM_USE_MODELSCOPE", raising=False)


@pytest.fixture(params=["orjson", "stdlib"])
def json_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the orjson JSON path, then with the standard library's.

    ``loads``/``dumps`` are imported by name, so the chosen pair is bound wherever the
    package imported them (no per-call indirection to patch instead).
    """
    impl: str = request.param
    chosen: dict[str, object] = {
        "loads": _json.std_loads,
        "dumps": _json.std_dumps,
        "token_loads": _json.std_loads,
        "record_dumps": _json.std_record_dumps,
        "raw_dumps": None,
    }
    if impl == "orjson":
        if _json.fast_loads is None or _json.fast_dumps is None or not _json.fast_record_dumps:
            pytest.fail("orjson is in the test extra; install it")
        import orjson

        chosen = {
            "loads": _json.fast_loads,
            "dumps": _json.fast_dumps,
            "token_loads": orjson.loads,
            "record_dumps": _json.fast_record_dumps,
            "raw_dumps": orjson.dumps,
        }
    known: dict[str, set[object]] = {
        "loads": {_json.std_loads, _json.fast_loads},
        "dumps": {_json.std_dumps, _json.fast_dumps},
        "token_loads": {_json.std_loads, _json.token_loads},
        "record_dumps": {_json.std_record_dumps, _json.fast_record_dumps},
        "raw_dumps": {None, _json.raw_dumps},
    }
    missing = object()  # a module without the name: never patched, orjson or not
    for name, module in list(sys.modules.items()):
        if name == "anyio_llmreq" or name.startswith("anyio_llmreq."):
            for attr, func in chosen.items():
                if getattr(module, attr, missing) in known[attr]:
                    monkeypatch.setattr(module, attr, func)
    return impl


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """The backend registry and ``ASYNC_REQUEST_FUNCS`` as they were, after the test:
    a backend a test registers must not show up in tests that run later."""
    from anyio_llmreq import ASYNC_REQUEST_FUNCS
    from anyio_llmreq.backends import _registry

    backends = dict(_registry._BACKENDS)
    funcs = dict(ASYNC_REQUEST_FUNCS)
    try:
        yield
    finally:
        _registry._BACKENDS.clear()
        _registry._BACKENDS.update(backends)
        ASYNC_REQUEST_FUNCS.clear()
        ASYNC_REQUEST_FUNCS.update(funcs)
