from __future__ import annotations

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extra where it builds
    uvloop = None

_no_uvloop = [pytest.mark.skip(reason="uvloop not installed")] if uvloop is None else []


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop", marks=_no_uvloop),
        pytest.param(("trio", {}), id="trio"),
    ]
)
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
