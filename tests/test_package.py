"""Guard rails: the public surface, import cost, and sans-IO purity."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import anyio_llmreq

PACKAGE = pathlib.Path(anyio_llmreq.__file__).parent


def test_all_is_sorted_unique_and_importable() -> None:
    names = list(anyio_llmreq.__all__)
    # isort-style order, as ruff's RUF022 keeps it: CONSTANTS, Classes, functions.
    def rank(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert names == sorted(names, key=rank)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(anyio_llmreq, name), name


def test_public_names_live_in_private_modules() -> None:
    for name in anyio_llmreq.__all__:
        obj = getattr(anyio_llmreq, name)
        module = getattr(obj, "__module__", None)
        if module is not None and module.startswith("anyio_llmreq"):
            parts = module.split(".")
            assert any(part.startswith("_") for part in parts[1:]), (name, module)


def test_import_stays_light() -> None:
    code = (
        "import sys, anyio_llmreq; heavy = ('transformers', 'tqdm', 'numpy', 'trio', 'torch'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


SANS_IO = ["_models.py", "_sse.py", "_json.py", "_exceptions.py", "backends"]
IO_MODULES = {"httpx", "anyio", "asyncio", "trio", "socket", "aiohttp", "time"}


def test_sans_io_modules_import_no_io_or_clock() -> None:
    files: list[pathlib.Path] = []
    for entry in SANS_IO:
        path = PACKAGE / entry
        files.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    for file in files:
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert not roots & IO_MODULES, f"{file.name} imports {roots & IO_MODULES}"


def test_py_typed_is_shipped() -> None:
    assert (PACKAGE / "py.typed").exists()
