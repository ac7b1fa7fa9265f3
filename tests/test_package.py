"""Guard rails: the public surface, import cost, and sans-IO purity."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

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


SANS_IO = [
    "_models.py", "_sse.py", "_json.py", "_exceptions.py", "_transport/_http11.py", "backends",
]  # fmt: skip
# Modules whose use is I/O, a clock, or an import at call time (file reads, on the loop).
IO_MODULES = {
    "httpx", "anyio", "asyncio", "trio", "socket", "aiohttp", "time", "importlib", "pathlib",
    "shutil", "tempfile", "mmap", "subprocess", "glob", "fileinput",
}  # fmt: skip
# What of os / os.path touches no file: the rest (os.stat, os.path.exists...) does.
PURE_OS = {"environ", "getenv", "fspath", "fsdecode", "fsencode", "sep", "linesep", "path"}
PURE_OS_PATH = {"basename", "dirname", "join", "split", "splitext", "normpath", "normcase"}
# httpx's protocol errors are plain exception classes: the HTTP/1.1 codec raises them as
# httpx's own transport does, so users see the same types. Nothing else of httpx.
HTTPX_ERRORS = {"LocalProtocolError", "RemoteProtocolError"}
FILE_CALLS = {"open", "__import__"}  # builtins
FILE_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes"}


def io_uses(source: str) -> list[str]:
    """Where *source* does (or imports what does) I/O, reads a clock, or imports at call
    time: each as "line: what"."""
    found: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and in_function:
            found.append(f"{line}: import inside a function")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in IO_MODULES:
                    found.append(f"{line}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = {alias.name for alias in node.names}
            if node.module.split(".")[0] in IO_MODULES:
                if not (node.module == "httpx" and names <= HTTPX_ERRORS):
                    found.append(f"{line}: from {node.module} import")
            elif node.module == "os" and names - PURE_OS:
                found.append(f"{line}: from os import {sorted(names - PURE_OS)}")
            elif node.module == "os.path" and names - PURE_OS_PATH:
                found.append(f"{line}: from os.path import {sorted(names - PURE_OS_PATH)}")
            elif node.module == "io" and names & {"open", "FileIO"}:
                found.append(f"{line}: from io import {sorted(names & {'open', 'FileIO'})}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FILE_CALLS:
                found.append(f"{line}: {func.id}()")
            elif isinstance(func, ast.Attribute) and func.attr in FILE_METHODS:
                found.append(f"{line}: .{func.attr}()")
        elif isinstance(node, ast.Attribute):
            value = node.value
            if isinstance(value, ast.Name) and value.id == "os" and node.attr not in PURE_OS:
                found.append(f"{line}: os.{node.attr}")
            elif (
                isinstance(value, ast.Attribute)
                and isinstance(value.value, ast.Name)
                and (value.value.id, value.attr) == ("os", "path")
                and node.attr not in PURE_OS_PATH
            ):
                found.append(f"{line}: os.path.{node.attr}")
            elif isinstance(value, ast.Name) and value.id == "io" and node.attr == "FileIO":
                found.append(f"{line}: io.FileIO")
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def test_sans_io_modules_do_no_io_and_read_no_clock() -> None:
    files: list[pathlib.Path] = []
    for entry in SANS_IO:
        path = PACKAGE / entry
        files.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    assert any(file.name == "_audio.py" for file in files)
    found = {file.name: io_uses(file.read_text()) for file in files}
    assert {name: uses for name, uses in found.items() if uses} == {}


@pytest.mark.parametrize(
    "source",
    [
        # What the audio backend did in build_payload.
        "import importlib\ndef f():\n    return importlib.import_module('soundfile')",
        "def f(path):\n    with open(path, 'rb') as f:\n        return f.read()",
        "def f():\n    import soundfile",
        "import io\nio.open('x')",
        "import io\nio.FileIO('x')",
        "from io import open",
        "import os\nos.stat('x')",
        "import os\nos.path.getsize('x')",
        "import os.path\nos.path.exists('x')",
        "from os import listdir",
        "from os.path import isfile",
        "from pathlib import Path",
        "def f(p):\n    return p.read_bytes()",
        "def f(p):\n    return p.read_text()",
        "__import__('numpy')",
        "import time\ntime.perf_counter()",
        "from anyio import sleep",
        "import httpx",
        "from httpx import AsyncClient",
        "from httpx import RemoteProtocolError, AsyncClient",
        "from httpx._transports.default import RemoteProtocolError",
    ],
)
def test_the_sans_io_guard_catches(source: str) -> None:
    assert io_uses(source)


def test_the_sans_io_guard_lets_pure_code_pass() -> None:
    source = (
        "import io, json, os\n"
        "try:\n    import orjson\nexcept ImportError:\n    orjson = None\n"
        "def f(p):\n"
        "    key = os.environ.get('K') or os.getenv('K')\n"
        "    return os.path.basename(os.fspath(p)), io.BytesIO(b''), json.dumps(key)\n"
    )
    assert io_uses(source) == []
    assert io_uses("from httpx import LocalProtocolError, RemoteProtocolError") == []


def test_py_typed_is_shipped() -> None:
    assert (PACKAGE / "py.typed").exists()
