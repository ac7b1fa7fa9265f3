"""The README's examples run as written."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import httpx
import pytest

from anyio_llmreq import ASYNC_REQUEST_FUNCS, Client, RequestFuncInput, backend_names

README = pathlib.Path(__file__).parent.parent / "README.md"

pytestmark = pytest.mark.anyio


def python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_two_newcomer_commands_open_the_readme() -> None:
    head = README.read_text()[:600]
    assert "pip install '.[bench]' && anyio-llmreq bench" in head
    assert "pip install -e '.[test]' && python -m pytest" in head


@pytest.mark.usefixtures("restore_registry")
async def test_the_custom_backend_example() -> None:
    # Registered afresh on every loop, and gone afterwards (see ``restore_registry``).
    assert "my-server" not in backend_names()
    namespace: dict[str, Any] = {}
    exec(python_block_after("### Your own backend"), namespace)
    assert "my-server" in backend_names()
    assert "my-server" in ASYNC_REQUEST_FUNCS

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.read() == b'{"input":"hi"}'
        body = b'data: {"token":"Hel"}\n\ndata: {"token":"lo"}\n\ndata: [DONE]\n\n'
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with Client(transport=httpx.MockTransport(handler)) as client:
        out = await client.send("my-server", RequestFuncInput("hi", "http://x/gen", 1, 2, "m"))
    assert out.success, out.error
    assert out.generated_text == "Hello"
    assert len(out.itl) == 1
