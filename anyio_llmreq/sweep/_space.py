"""The parameter space of a list sweep: named axes of ``BenchConfig`` values, combined
as a cartesian product (the first axis varies slowest), and the file name of a point.

``--concurrency 1,4`` is the axis ``max_concurrency``, ``--request-rate 1,inf`` the axis
``request_rate``, ``--sweep random_input_len=128,1024`` any other bench field's.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from ..bench._config import BenchConfig, UsageError, flags

__all__ = [
    "ParameterSpace",
    "json_value",
    "param_text",
    "parse_axis",
    "parse_values",
    "point_name",
    "resolve_param",
]

#: Bench fields that change where results go, not what is measured.
OUTPUT_FIELDS = frozenset(
    {
        "save_result",
        "save_detailed",
        "append_result",
        "result_dir",
        "result_filename",
        "output_jsonl",
        "disable_tqdm",
        "label",
        "metadata",
        "report",
    }
)
#: Fields the sweep sets itself (its files) or that say nothing about the load.
_NOT_SWEPT = OUTPUT_FIELDS
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")
_NONE = ("none", "null")
_SAFE = re.compile(r"[^A-Za-z0-9._=+-]")
_MAX_NAME = 120


@attrs.frozen
class _Param:
    name: str
    cli: str
    convert: Callable[[str], Any]
    optional: bool


def _sweepable() -> dict[str, _Param]:
    hints = typing.get_type_hints(BenchConfig)
    found: dict[str, _Param] = {}
    for field, spec in flags():
        if field.name in _NOT_SWEPT or spec.parse is not None:
            continue
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
            hint = args[0]
        found[field.name] = _Param(field.name, spec.cli, _converter(hint, spec.choices), optional)
    return found


def _converter(hint: Any, choices: Any) -> Callable[[str], Any]:
    if hint is bool:
        return _to_bool
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
    if callable(choices):
        choices = choices()
    if choices is not None:
        allowed = tuple(str(c) for c in choices)

        def choose(text: str) -> str:
            if text not in allowed:
                raise ValueError(f"choose from {', '.join(allowed)}")
            return text

        return choose
    if hint is int:
        return int
    if hint is float:
        return float
    return str


def _to_bool(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError("expected true or false")


def resolve_param(name: str, *, where: str = "--sweep") -> str:
    """The ``BenchConfig`` field *name* means: a field name, or its flag with or without
    the dashes (``random_input_len``, ``random-input-len``, ``--random-input-len``).

    Raises:
        UsageError: no such bench field, or one a sweep can't vary.
    """
    params = _sweepable()
    wanted = name.strip().lstrip("-").replace("-", "_")
    if wanted in params:
        return wanted
    by_flag = {p.cli.lstrip("-").replace("-", "_"): p.name for p in params.values()}
    if wanted in by_flag:
        return by_flag[wanted]
    every = {f.name for f, _ in flags()}
    if wanted in every:
        raise UsageError(
            f"cannot sweep {name!r}",
            where=where,
            why="it sets an output file, or takes a structured value",
            hint="Sweep a load, dataset or request field, e.g. random_input_len.",
        )
    close = difflib.get_close_matches(wanted, list(params), n=1)
    hint = f"Did you mean {close[0]}?" if close else "Use a bench field, e.g. random_input_len."
    raise UsageError(
        f"unknown parameter {name!r}", where=where, why="no such bench flag", hint=hint
    )


def parse_values(name: str, text: str, *, where: str = "--sweep") -> tuple[Any, ...]:
    """The comma-separated values *text* of field *name*, converted as its flag converts
    them (``none`` for an optional field's default, ``inf`` for an unlimited rate).

    Raises:
        UsageError: an empty list, a value the flag would reject, or a repeated value.
    """
    param = _sweepable()[name]
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise UsageError(
            f"empty value in {text!r}",
            where=where,
            why="expected values separated by commas",
            hint=f"Use e.g. {where} {_example(name, where)}.",
        )
    values: list[Any] = []
    for part in parts:
        if param.optional and part.lower() in _NONE:
            values.append(None)
            continue
        try:
            values.append(param.convert(part))
        except ValueError as exc:
            why = str(exc) if "choose" in str(exc) or "expected" in str(exc) else None
            raise UsageError(
                f"invalid value {part!r} for {name}",
                where=where,
                why=why or f"{param.cli} takes {_kind(param)}",
            ) from None
    _check_load(name, values, where)
    if len(set(map(repr, values))) < len(values):
        raise UsageError(
            f"repeated value in {text!r}",
            where=where,
            why="each value is one point",
            hint="Use --repeat K to run every point K times.",
        )
    return tuple(values)


def _check_load(name: str, values: Sequence[Any], where: str) -> None:
    for value in values:
        if name == "max_concurrency" and value is not None and value < 1:
            why = f"a concurrency is at least 1, got {value}"
            raise UsageError("invalid value", where=where, why=why)
        if name == "request_rate" and value is not None and not value > 0:
            why = f"a request rate is a positive number or inf, got {value:g}"
            raise UsageError("invalid value", where=where, why=why)


def _kind(param: _Param) -> str:
    if param.convert is int:
        return "an integer"
    if param.convert is float:
        return "a number"
    if param.convert is _to_bool:
        return "true or false"
    return "a value"


def _example(name: str, where: str) -> str:
    if where == "--concurrency":
        return "1,4,16"
    if where == "--request-rate":
        return "1,4,inf"
    return f"{name}=128,1024"


def parse_axis(text: str) -> tuple[str, tuple[Any, ...]]:
    """One ``--sweep PARAM=V1,V2,...`` into its field and values.

    Raises:
        UsageError: no ``=``, an unknown or unsweepable field, or a bad value.
    """
    name, eq, values = text.partition("=")
    if not eq or not name.strip():
        raise UsageError(
            f"invalid value {text!r}",
            where="--sweep",
            why="expected PARAM=VALUE,VALUE",
            hint="Use e.g. --sweep random_input_len=128,1024.",
        )
    field = resolve_param(name)
    return field, parse_values(field, values)


@attrs.frozen
class ParameterSpace:
    """Named axes, each a tuple of values; the points are their cartesian product."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    @classmethod
    def of(cls, axes: Sequence[tuple[str, Sequence[Any]]]) -> ParameterSpace:
        """The space of *axes*.

        Raises:
            UsageError: a field given twice (``--concurrency`` is ``max_concurrency``,
                ``--request-rate`` is ``request_rate``).
        """
        seen: set[str] = set()
        for name, _ in axes:
            if name in seen:
                raise UsageError(
                    f"{name} is swept twice",
                    where="--sweep",
                    why="--concurrency sweeps max_concurrency and --request-rate "
                    "request_rate; give each field once",
                )
            seen.add(name)
        return cls(tuple((name, tuple(values)) for name, values in axes))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.axes]

    def __len__(self) -> int:
        return math.prod(len(values) for _, values in self.axes) if self.axes else 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = self.names
        for combo in itertools.product(*(values for _, values in self.axes)):
            yield dict(zip(names, combo, strict=True))


def json_value(value: Any) -> Any:
    """*value* as JSON can hold it: an infinite or NaN float as text (``"inf"``, as the
    bench writes ``request_rate``), a tuple as a list."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, tuple):
        return [json_value(v) for v in value]
    return value


def param_text(value: Any) -> str:
    """A parameter value as a flag would take it: ``4``, ``2.5``, ``inf``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        text = f"{value:g}"
        return text if float(text) == value or not math.isfinite(value) else repr(value)
    return str(value)


def point_name(params: Mapping[str, Any]) -> str:
    """The file-name stem of a point, e.g. ``max_concurrency=4-random_input_len=128``;
    values that need other characters, or a long name, get a hash of the parameters
    so two points never share a name."""
    text = "-".join(f"{k}={param_text(v)}" for k, v in params.items()) or "point"
    safe = _SAFE.sub("_", text)
    if safe != text or len(safe) > _MAX_NAME:
        canonical = json.dumps({k: json_value(v) for k, v in params.items()}, sort_keys=True)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
        safe = f"{safe[:_MAX_NAME]}-{digest}"
    return safe
