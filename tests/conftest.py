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
