"""Multi-turn sessions (``--dataset-name multi-turn``): conversations read or generated,
planned as sessions whose turns carry the growing history, driven turn by turn, and
measured per turn.

Two inputs, told apart by their content:

- vLLM's generation config (``benchmarks/multi_turn``: ``"filetype":
  "generate_conversations"``), whose ``num_turns``, ``common_prefix_num_tokens``,
  ``prefix_num_tokens`` and ``num_tokens`` distributions (constant, uniform, lognormal,
  zipf, poisson) are drawn as vLLM draws them, in its order, from numpy's legacy
  generator seeded with ``--seed``; the text comes from its ``text_files`` or, without
  them, a built-in passage;
- OpenAI-style conversations (JSON list or JSONL): each one ``{"messages": [{"role",
  "content"}, ...]}`` (vLLM's ShareGPT conversion, with an optional ``id``), a bare list of
  messages, or ShareGPT's ``{"conversations": [{"from", "value"}, ...]}``.

A session sends its user turns in order. Turn *k* carries every earlier user message and
the answer to it: the server's own answer (vLLM's way), or with
``--multi-turn-use-recorded-answers`` the file's (the plan already holds those requests,
so nothing is built during the run). A turn that fails stops its session: its later turns
are never sent, and are counted as not sent, apart from the interrupted ones.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._config import UsageError

if TYPE_CHECKING:
    from .._models import RequestFuncInput, RequestFuncOutput
    from ._config import BenchConfig
    from ._execute import Execution, RequestRecord
    from ._metrics import BenchmarkMetrics
    from ._plan import ScheduledRequest, Target, WorkloadPlan
    from ._tokens import TokenCounter

__all__ = [
    "Conversation",
    "Distribution",
    "ScheduledSession",
    "SessionMetrics",
    "SessionShare",
    "SessionTurn",
    "ThinkTime",
    "TurnStats",
    "generate_conversations",
    "load_conversations",
    "parse_distribution",
    "parse_think_time",
    "plan_sessions",
    "read_conversations",
    "run_session",
    "session_metrics",
]

#: The dataset name that plans sessions instead of independent requests.
DATASET = "multi-turn"
#: Output tokens of a turn with neither ``--output-len`` nor a recorded answer.
DEFAULT_OUTPUT_LEN = 128
#: vLLM's instruction in every generated user turn.
_BASE_PROMPT = "Please rewrite the following text and add more content: "

_CONFIG_SHAPE = (
    'A generation config is vLLM\'s JSON: {"filetype": "generate_conversations", '
    '"num_conversations": N, "text_files": [...], "prompt_input": {...}, '
    '"prompt_output": {...}}'
)
_FILE_SHAPE = (
    'Conversations are a JSON list (or JSONL) of {"messages": [{"role": ..., '
    '"content": ...}, ...]}, of message lists, or of ShareGPT {"conversations": '
    '[{"from": ..., "value": ...}, ...]}'
)

# The built-in text of generated conversations without text_files (cycled as needed).
_BUILTIN_TEXT = """\
The harbour town woke before the light. Fishermen coiled their ropes along the quay,
gulls argued over the nets, and the baker on the corner pushed open his shutters to let
the smell of bread drift down toward the water. Nobody hurried, yet everything was
ready by the time the sun cleared the headland: boats bailed, lamps trimmed, the first
tea poured. Visitors often asked how a place so small kept such careful time. The old
harbour master would only point at the tide table nailed beside his door and say that
the sea kept the time and the town kept its word. In winter the storms came in long
grey lines from the west, and the houses turned their backs to the wind. Children
learned the names of the rocks before they learned their letters, because a rock you
could name was a rock you could avoid. In summer the evenings stretched out until the
lighthouse and the last of the sunset shared the same thin band of sky, and the whole
town sat outside to watch the boats come home one by one.
"""


# -- distributions (vLLM's benchmarks/multi_turn/bench_dataset.py) -----------------------


@attrs.frozen
class Distribution:
    """One of vLLM's multi-turn distributions; ``sample`` draws as vLLM does.

    *kind* is ``constant`` (*value*), ``uniform`` (*low*..*high*, integers when both
    are, both ends included), ``zipf``/``poisson`` (*alpha*, capped at *high* when
    given), or ``lognormal`` (*mean*/*sigma* of the underlying normal, or *average*
    with *median_ratio*, whose draws are scaled to that average; capped at *high*;
    rounded to integers).
    """

    kind: str
    value: float = 0.0
    low: float = 0.0
    high: float | None = None
    alpha: float = 0.0
    mean: float = 0.0
    sigma: float = 0.0
    average: float | None = None
    integer: bool = True

    def sample(self, rng: Any, size: int) -> Any:
        """*size* draws (a numpy array) from *rng*, a ``numpy.random.RandomState``."""
        import numpy as np

        cap = self.high
        if self.kind == "constant":
            return np.full(shape=size, fill_value=self.value)
        if self.kind == "uniform":
            assert cap is not None
            if self.integer:
                return rng.randint(int(self.low), int(cap + 1), size=size)
            return rng.uniform(self.low, cap, size=size)
        if self.kind in ("zipf", "poisson"):
            draw = rng.zipf if self.kind == "zipf" else rng.poisson
            samples = draw(self.alpha, size=size)
            return np.minimum(samples, cap) if cap else samples
        samples = rng.lognormal(mean=self.mean, sigma=self.sigma, size=size)
        if self.average is not None:
            samples *= self.average / samples.mean()
        if cap:
            samples = np.minimum(samples, cap)
        return np.round(samples).astype(int)


def parse_distribution(
    conf: dict[str, Any], section: str, subsection: str, path: str, *, optional: bool = False
) -> Distribution:
    """``conf[section][subsection]`` as a ``Distribution`` (vLLM's fields: ``distribution``
    plus ``value``; ``min``/``max``; ``alpha``/``max``; ``mean``/``sigma`` or ``average``/
    ``median_ratio``, with ``max``). An *optional* one that is absent is constant 0.

    Raises:
        UsageError: a missing or invalid field, naming the file, the record and the field.
    """
    where = f"{section}.{subsection}"
    parent = conf.get(section)
    if not isinstance(parent, dict):
        raise _bad(path, f"field {section!r} is {_kind(parent)}, expected an object")
    if subsection not in parent and optional:
        return Distribution("constant", value=0)
    spec = parent.get(subsection)
    if not isinstance(spec, dict):
        raise _bad(path, f"{where} is {_kind(spec)}, expected an object with 'distribution'")
    kind = spec.get("distribution")

    def number(field: str, default: float | None = None) -> float:
        value = spec.get(field)
        if value is None:
            value = default  # null is "not given", as vLLM reads it
        if value is None:
            raise _bad(path, f"{where}: the {kind} distribution needs field {field!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(path, f"{where}: field {field!r} is {_kind(value)}, expected a number")
        return value

    def cap() -> float | None:
        return number("max") if spec.get("max") is not None else None

    if kind == "constant":
        return Distribution("constant", value=number("value"))
    if kind == "uniform":
        low, high = number("min"), number("max")
        if not 0 < low <= high:
            why = f"{where}: needs 0 < min <= max, got min {low:g} and max {high:g}"
            raise _bad(path, why)
        integer = isinstance(low, int) and isinstance(high, int)
        return Distribution("uniform", low=low, high=high, integer=integer)
    if kind in ("zipf", "poisson"):
        alpha = number("alpha")
        least_ok = alpha > 1 if kind == "zipf" else alpha >= 0
        if not least_ok:
            need = "over 1" if kind == "zipf" else "at least 0"
            raise _bad(path, f"{where}: field 'alpha' must be {need}, got {alpha:g}")
        return Distribution(kind, alpha=alpha, high=cap())
    if kind == "lognormal":
        return _lognormal(spec, where, path, number, cap())
    raise _bad(
        path,
        f"{where}: field 'distribution' is {kind!r}, expected constant, uniform, lognormal, "
        "zipf or poisson",
    )


def _lognormal(
    spec: dict[str, Any],
    where: str,
    path: str,
    number: Callable[..., float],
    cap: float | None,
) -> Distribution:
    if "average" in spec:
        if spec.get("mean") or spec.get("sigma"):
            raise _bad(path, f"{where}: give 'average' or 'mean'/'sigma', not both")
        average = number("average")
        ratio = number("median_ratio", 0.85)  # vLLM's default: a wide range
        if average < 1:
            raise _bad(path, f"{where}: field 'average' must be at least 1, got {average:g}")
        if not 0 < ratio < 1:
            raise _bad(path, f"{where}: field 'median_ratio' must be in (0, 1), got {ratio:g}")
        # median / mean = exp(-sigma^2 / 2) and median = exp(mu).
        median = average * ratio
        sigma = math.sqrt(2 * math.log(average / median))
        return Distribution(
            "lognormal", mean=math.log(median), sigma=sigma, average=average, high=cap
        )
    mean, sigma = number("mean"), number("sigma")
    if mean <= 0 or sigma < 0:
        why = f"{where}: needs mean > 0 and sigma >= 0, got mean {mean:g} and sigma {sigma:g}"
        raise _bad(path, why)
    return Distribution("lognormal", mean=mean, sigma=sigma, high=cap)


# -- conversations ------------------------------------------------------------------------


@attrs.frozen
class Conversation:
    """One conversation: *system* messages sent before every turn, then its turns, each
    ``(user message, recorded answer or None, output tokens to ask for or None)``."""

    id: str
    system: tuple[dict[str, Any], ...]
    turns: tuple[tuple[dict[str, Any], dict[str, Any] | None, int | None], ...]


@attrs.frozen
class GenerationConfig:
    """vLLM's ``generate_conversations`` file, parsed."""

    num_conversations: int
    text_files: tuple[str, ...]
    num_turns: Distribution
    common_prefix_num_tokens: Distribution
    prefix_num_tokens: Distribution
    num_tokens: Distribution
    output_num_tokens: Distribution


def load_conversations(
    path: str, counter: TokenCounter, *, seed: int, num: int | None
) -> list[Conversation]:
    """The conversations of *path*: generated from a vLLM generation config (*num*
    replaces its ``num_conversations``), or read from a conversations file (the first
    *num*; all without it).

    Raises:
        UsageError: the file can't be read, or a record or field is not as expected.
    """
    from ._datasets import _read_text

    text = _read_text(path)
    data = _parse_json_or_jsonl(text, path)
    if isinstance(data, dict) and "filetype" not in data:
        if "messages" in data or "conversations" in data:
            data = _Lines([(1, data)])  # a JSONL file of one conversation
    if isinstance(data, dict):
        config = parse_generation_config(data, path)
        if num is not None:
            config = attrs.evolve(config, num_conversations=num)
        return generate_conversations(config, counter, seed=seed, path=path)
    conversations = read_conversations(data, path)
    if num is not None:
        if num > len(conversations):
            raise UsageError(
                "invalid value",
                where="--num-prompts",
                why=f"{num} conversations asked, {path} holds {len(conversations)}",
                hint="Drop --num-prompts to send every conversation of the file.",
            )
        conversations = conversations[:num]
    return conversations


def _parse_json_or_jsonl(text: str, path: str) -> Any:
    """A JSON document, or the records of a JSONL file as ``[(line, value), ...]``
    wrapped in a ``_Lines``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        first_error = exc
    lines = _Lines()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            lines.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            if lineno == 1 or not lines:
                e = first_error
                why = f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
            else:
                why = f"line {lineno}: not valid JSON: {exc.msg} at column {exc.colno}"
            raise _bad(path, why, _FILE_SHAPE) from None
    return lines


class _Lines(list[tuple[int, Any]]):
    """The records of a JSONL file, with their line numbers."""


def parse_generation_config(data: dict[str, Any], path: str) -> GenerationConfig:
    """vLLM's generation config (*data*, from *path*).

    Raises:
        UsageError: a field missing or invalid, naming the file and the field.
    """
    filetype = data.get("filetype")
    if filetype != "generate_conversations":
        why = f"field 'filetype' is {filetype!r}, expected 'generate_conversations'"
        raise _bad(path, why, _CONFIG_SHAPE)
    count = data.get("num_conversations")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        why = f"field 'num_conversations' is {count!r}, expected a positive integer"
        raise _bad(path, why, _CONFIG_SHAPE)
    files = data.get("text_files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise _bad(path, "field 'text_files' must be a list of file names", _CONFIG_SHAPE)
    for section in ("prompt_input", "prompt_output"):
        if not isinstance(data.get(section), dict):
            why = f"field {section!r} is {_kind(data.get(section))}, expected an object"
            raise _bad(path, why, _CONFIG_SHAPE)
    base = os.path.dirname(os.path.abspath(path))
    return GenerationConfig(
        num_conversations=count,
        text_files=tuple(_text_file(f, base) for f in files),
        num_turns=parse_distribution(data, "prompt_input", "num_turns", path),
        common_prefix_num_tokens=parse_distribution(
            data, "prompt_input", "common_prefix_num_tokens", path, optional=True
        ),
        prefix_num_tokens=parse_distribution(data, "prompt_input", "prefix_num_tokens", path),
        num_tokens=parse_distribution(data, "prompt_input", "num_tokens", path),
        output_num_tokens=parse_distribution(data, "prompt_output", "num_tokens", path),
    )


def _text_file(name: str, base: str) -> str:
    """*name* as given (vLLM opens it from the working directory), else beside the config."""
    if os.path.isabs(name) or os.path.exists(name):
        return name
    return os.path.join(base, name)


class _Text:
    """The token stream generated prompts are cut from: the text files' tokens (or
    whitespace words), or the built-in passage's, repeated as far as needed."""

    def __init__(self, counter: TokenCounter, files: Sequence[str], path: str) -> None:
        from ._datasets import _read_text

        self._counter = counter
        self._words = counter.kind == "words"
        self.files = tuple(files)
        self.cyclic = not files
        texts = [_read_text(f) for f in files] if files else [_BUILTIN_TEXT]
        tokens: list[Any] = []
        for text in texts:
            tokens += text.split() if self._words else counter.encode(text)
        if not tokens:
            raise _bad(path, f"the text_files ({', '.join(files)}) hold no text")
        self._tokens = tokens
        self._path = path

    def __len__(self) -> int:
        return len(self._tokens)

    def cut(self, start: int, end: int, what: str) -> str:
        """The text of tokens ``[start, end)``."""
        n = len(self._tokens)
        if end < n:
            part = self._tokens[start:end]
        elif self.cyclic:
            part = [self._tokens[i % n] for i in range(start, end)]
        else:
            raise _bad(
                self._path,
                f"the text_files hold {n} tokens, too few for {what} (tokens {start} to "
                f"{end}); vLLM asks the same",
                "Add text files, or lower the token counts or num_conversations.",
            )
        if self._words:
            return " ".join(part)
        return self._counter.decode(part)


def generate_conversations(
    config: GenerationConfig, counter: TokenCounter, *, seed: int, path: str
) -> list[Conversation]:
    """Conversations as vLLM's ``generate_conversations`` builds them: turn counts
    (messages, at least 2 and rounded up to even), a common prefix for all, a prefix per
    conversation on its first turn, then vLLM's instruction and text up to each turn's
    length; the recorded answers are the text's first tokens."""
    import numpy as np

    text = _Text(counter, config.text_files, path)
    rng = np.random.RandomState(seed)
    base_len = counter.count(_BASE_PROMPT)
    n = config.num_conversations
    turn_count = config.num_turns.sample(rng, n)
    turn_count = np.maximum(turn_count, 2)
    turn_count = turn_count + (turn_count % 2)
    prefix_tokens = config.prefix_num_tokens.sample(rng, n)
    offset = 0
    common_text = ""
    common = int(config.common_prefix_num_tokens.sample(rng, 1)[0])
    if common > 0:
        common_text = text.cut(0, max(common - 2, 0), "the common prefix") + "."
        offset += common
    conversations = []
    for c in range(n):
        nturns = int(turn_count[c])
        inputs = np.maximum(config.num_tokens.sample(rng, nturns), base_len)
        outputs = np.maximum(config.output_num_tokens.sample(rng, nturns), 1)
        longest = int(inputs.max())
        turns: list[tuple[dict[str, Any], dict[str, Any] | None, int | None]] = []
        user: dict[str, Any] = {}
        for t in range(nturns):
            if t % 2:
                out = int(outputs[t])
                answer = {"role": "assistant", "content": text.cut(0, out, "an answer")}
                turns.append((user, answer, out))
                continue
            content = f"{c} is a nice number... "
            if common_text and t == 0:
                content = common_text + content
            left = int(inputs[t]) - counter.count(content)
            prefix = int(prefix_tokens[c])
            if t == 0 and prefix > 0:
                what = f"conversation {c}'s prefix"
                content += f"{c}, " + text.cut(offset, offset + prefix, what)
                offset += prefix
            content += _BASE_PROMPT
            left -= base_len
            if left > 0:
                start = offset + t * longest
                content += text.cut(start, start + left, f"conversation {c}, turn {t // 2 + 1}")
            user = {"role": "user", "content": content}
        offset += nturns
        conversations.append(Conversation(f"CONV_ID_{c}", (), tuple(turns)))
    return conversations


# ShareGPT's speakers.
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}


def read_conversations(data: Any, path: str) -> list[Conversation]:
    """The conversations of a parsed conversations file (a JSON list or JSONL records).

    Raises:
        UsageError: a record or message not of a known shape, naming the record (or
            line) and the field; a file with no conversation.
    """
    if isinstance(data, _Lines):
        items = [(f"line {lineno}", value) for lineno, value in data]
    elif isinstance(data, list):
        items = [(f"record {i}", value) for i, value in enumerate(data)]
    else:
        raise _bad(path, f"expected a JSON list of conversations, got {_kind(data)}", _FILE_SHAPE)
    conversations = []
    seen: set[str] = set()
    for i, (where, record) in enumerate(items):
        conv = _conversation(record, where, path, default_id=f"conv-{i}")
        if conv is None:
            continue
        if conv.id in seen:
            raise _bad(path, f"{where}: field 'id' {conv.id!r} is used twice", _FILE_SHAPE)
        seen.add(conv.id)
        conversations.append(conv)
    if not conversations:
        raise _bad(path, "no conversation with a user message", _FILE_SHAPE)
    return conversations


def _conversation(record: Any, where: str, path: str, default_id: str) -> Conversation | None:
    if isinstance(record, list):
        return _from_messages(record, where, "", path, default_id)
    if not isinstance(record, dict):
        why = f"{where} is {_kind(record)}, expected an object or a list of messages"
        raise _bad(path, why, _FILE_SHAPE)
    conv_id = record.get("id", default_id)
    if not isinstance(conv_id, (str, int)) or isinstance(conv_id, bool):
        raise _bad(path, f"{where}: field 'id' is {_kind(conv_id)}, expected a string")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list):
            why = f"{where}: field 'messages' is {_kind(messages)}, expected a list"
            raise _bad(path, why, _FILE_SHAPE)
        return _from_messages(messages, where, "messages", path, str(conv_id))
    if "conversations" in record:
        return _from_sharegpt(record["conversations"], where, path, str(conv_id))
    raise _bad(path, f"{where}: no field 'messages' or 'conversations'", _FILE_SHAPE)


def _from_messages(
    messages: list[Any], where: str, field: str, path: str, conv_id: str
) -> Conversation | None:
    """OpenAI messages: system messages first, then user and assistant in turn."""
    normal = []
    for j, message in enumerate(messages):
        at = f"{where}: {field}[{j}]" if field else f"{where}: message {j}"
        if not isinstance(message, dict):
            raise _bad(path, f"{at} is {_kind(message)}, expected an object", _FILE_SHAPE)
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant"):
            why = f"{at}: field 'role' is {role!r}, expected system, user or assistant"
            raise _bad(path, why, _FILE_SHAPE)
        _check_content(message.get("content"), at, path)
        normal.append({"role": role, "content": message["content"]})
    system, rest = _split_system(normal)
    turns = []
    for j in range(0, len(rest), 2):
        user = rest[j]
        answer = rest[j + 1] if j + 1 < len(rest) else None
        k = len(system) + j
        if user["role"] != "user":
            at = f"{where}: {field}[{k}]" if field else f"{where}: message {k}"
            why = f"{at}: field 'role' is {user['role']!r}, expected user (turns alternate)"
            raise _bad(path, why, _FILE_SHAPE)
        if answer is not None and answer["role"] != "assistant":
            at = f"{where}: {field}[{k + 1}]" if field else f"{where}: message {k + 1}"
            why = f"{at}: field 'role' is {answer['role']!r}, expected assistant (turns alternate)"
            raise _bad(path, why, _FILE_SHAPE)
        turns.append((user, answer, None))
    return Conversation(conv_id, tuple(system), tuple(turns)) if turns else None


def _from_sharegpt(conv: Any, where: str, path: str, conv_id: str) -> Conversation | None:
    """ShareGPT ``from``/``value`` messages, kept up to the first one out of turn (raw
    dumps have repeated or leading speakers, which vLLM's converter drops too)."""
    if not isinstance(conv, list):
        why = f"{where}: field 'conversations' is {_kind(conv)}, expected a list"
        raise _bad(path, why, _FILE_SHAPE)
    normal = []
    for j, message in enumerate(conv):
        at = f"{where}: conversations[{j}]"
        if not isinstance(message, dict):
            raise _bad(path, f"{at} is {_kind(message)}, expected an object", _FILE_SHAPE)
        speaker = message.get("from")
        role = _SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            why = f"{at}: field 'from' is {speaker!r}, expected human, gpt or system"
            raise _bad(path, why, _FILE_SHAPE)
        value = message.get("value")
        if not isinstance(value, str):
            why = f"{at}: field 'value' is {_kind(value)}, expected a string"
            raise _bad(path, why, _FILE_SHAPE)
        normal.append({"role": role, "content": value})
    system, rest = _split_system(normal)
    turns: list[tuple[dict[str, Any], dict[str, Any] | None, int | None]] = []
    expected = "user"
    for message in rest:
        if message["role"] != expected:
            break
        if expected == "user":
            turns.append((message, None, None))
        else:
            turns[-1] = (turns[-1][0], message, None)
        expected = "assistant" if expected == "user" else "user"
    return Conversation(conv_id, tuple(system), tuple(turns)) if turns else None


def _split_system(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = 0
    while n < len(messages) and messages[n]["role"] in ("system", "developer"):
        n += 1
    return messages[:n], messages[n:]


def _check_content(content: Any, at: str, path: str) -> None:
    if isinstance(content, str):
        return
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return  # OpenAI content parts: sent as they are, their text counted
    why = f"{at}: field 'content' is {_kind(content)}, expected a string or content parts"
    raise _bad(path, why, _FILE_SHAPE)


def content_text(content: Any) -> str:
    """The text of a message's content (a string, or the ``text`` of its parts)."""
    if isinstance(content, str):
        return content
    return " ".join(
        p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
    )


# -- think time ---------------------------------------------------------------------------


@attrs.frozen
class ThinkTime:
    """``--think-time``: seconds between an answer and the session's next turn, a
    constant (*low*), uniform in [*low*, *high*], or exponential with mean *low*."""

    kind: str = "constant"
    low: float = 0.0
    high: float = 0.0

    def draw(self, rng: Any, size: int) -> list[float]:
        """*size* pauses from *rng* (a ``numpy.random.Generator``)."""
        if self.kind == "uniform":
            return [float(x) for x in rng.uniform(self.low, self.high, size=size)]
        if self.kind == "exponential":
            return [float(x) for x in rng.exponential(self.low, size=size)]
        return [self.low] * size


def parse_think_time(text: str | None) -> ThinkTime:
    """``SECONDS``, ``uniform:LOW:HIGH`` or ``exponential:MEAN`` (None: no pause).

    Raises:
        UsageError: anything else, or a negative time.
    """
    if text is None:
        return ThinkTime()
    hint = "Use e.g. --think-time 2, --think-time uniform:1:3 or --think-time exponential:2."
    kind, *parts = text.strip().split(":")
    try:
        if not parts:
            values = [float(kind)]
            kind = "constant"
        else:
            values = [float(p) for p in parts]
    except ValueError:
        values = []
    need = {"constant": 1, "uniform": 2, "exponential": 1}.get(kind)
    ok = need == len(values) and all(math.isfinite(v) and v >= 0 for v in values)
    if ok and kind == "uniform" and values[0] > values[1]:
        ok = False
    if not ok:
        why = f"{text!r} is not SECONDS, uniform:LOW:HIGH or exponential:MEAN (seconds >= 0)"
        raise UsageError("invalid value", where="--think-time", why=why, hint=hint)
    return ThinkTime(kind, values[0], values[-1])


# -- the plan -----------------------------------------------------------------------------


@attrs.frozen
class SessionTurn:
    """One turn of a session: *scheduled* holds its request as sent with the recorded
    answers (its ``delay`` is the session's arrival), *new_len* the tokens it adds (its
    user message; on the first turn the system messages too), *recorded_len* the tokens
    of the recorded answer that follows it."""

    scheduled: ScheduledRequest
    new_len: int
    recorded_len: int


@attrs.frozen
class ScheduledSession:
    """A conversation to run: its turns in order, the first at ``delay`` seconds after
    the common start, each later one *think_times* seconds after the answer before it."""

    index: int
    session_id: str
    turns: tuple[SessionTurn, ...]
    think_times: tuple[float, ...]

    @property
    def delay(self) -> float:
        """When the conversation starts: its first turn's scheduled time."""
        return self.turns[0].scheduled.delay


@attrs.frozen
class SessionShare:
    """The sessions one process runs, with at most *max_active* of them under way
    (``--max-active-conversations``, this process's share) and *recorded_answers*."""

    sessions: tuple[ScheduledSession, ...]
    max_active: int | None = None
    recorded_answers: bool = False

    @property
    def turns(self) -> int:
        return sum(len(s.turns) for s in self.sessions)


def plan_sessions(config: BenchConfig, target: Target, *, request_id_prefix: str) -> WorkloadPlan:
    """The ``WorkloadPlan`` of a multi-turn run: ``sessions`` arrive by the schedule
    (``--request-rate``, ``--burstiness``, ramp-up: one arrival per conversation) and
    ``requests`` lists every turn in order (index, as sent with the recorded answers)
    for the ready check and the accounting.

    Raises:
        UsageError: a bad file, or flags that don't fit it.
    """
    import numpy as np

    from ._datasets import SampleRequest, missing_dataset_path
    from ._plan import (
        ScheduledRequest,
        arrival_schedule,
        assemble_plan,
        plan_inputs,
        ramp_up_of,
    )

    path = config.dataset_path
    if path is None:
        raise missing_dataset_path(DATASET)
    counter = target.counter
    conversations = load_conversations(path, counter, seed=config.seed, num=config.num_prompts)
    samples: list[SampleRequest] = []
    shapes: list[tuple[int, int, int]] = []  # (conversation, new_len, recorded_len)
    for c, conv in enumerate(conversations):
        history = list(conv.system)
        new_len = sum(counter.count(content_text(m["content"])) for m in conv.system)
        prompt_len = 0
        for user, answer, out_len in conv.turns:
            new_len += counter.count(content_text(user["content"]))
            history.append(user)
            recorded = counter.count(content_text(answer["content"])) if answer else 0
            if config.output_len is not None:
                out_len = config.output_len
            elif out_len is None:
                out_len = max(recorded, 1) if answer is not None else DEFAULT_OUTPUT_LEN
            prompt_len += new_len
            rid = f"{request_id_prefix}{len(samples)}"
            samples.append(SampleRequest(list(history), prompt_len, out_len, request_id=rid))
            shapes.append((c, new_len, recorded))
            prompt_len += recorded
            if answer is not None:
                history.append(answer)
            new_len = 0
    inputs = plan_inputs(config, target, samples)
    request_rate = config.resolved_request_rate()
    ramp_up = ramp_up_of(config)
    n = len(conversations)
    schedule = arrival_schedule(config, n)
    think = parse_think_time(config.think_time)
    think_rng = np.random.default_rng(config.seed)
    grouped: list[list[SessionTurn]] = [[] for _ in range(n)]
    requests = []
    for i, (rin, (c, new_len, recorded)) in enumerate(zip(inputs, shapes, strict=True)):
        if grouped[c] and config.lora_modules:
            # A conversation stays with one adapter (its first turn's), as a user would.
            first = grouped[c][0].scheduled.request
            rin = replace(rin, model=first.model, model_name=first.model_name)
        item = ScheduledRequest(i, rin, schedule.delays[c])
        requests.append(item)
        grouped[c].append(SessionTurn(item, new_len, recorded))
    sessions = tuple(
        ScheduledSession(
            index=c,
            session_id=conversations[c].id,
            turns=tuple(turns),
            think_times=tuple(think.draw(think_rng, len(turns) - 1)),
        )
        for c, turns in enumerate(grouped)
    )
    return assemble_plan(
        config,
        target,
        tuple(requests),
        schedule,
        request_rate,
        ramp_up,
        units=n,  # whole conversations go to a worker
        caps=[config.max_active_conversations or n],
        sessions=sessions,
        max_active_conversations=config.max_active_conversations,
        recorded_answers=config.multi_turn_use_recorded_answers,
    )


# -- the run ------------------------------------------------------------------------------


async def run_session(
    session: ScheduledSession,
    *,
    send: Callable[[RequestFuncInput, float], Any],
    finish: Callable[[RequestRecord], None],
    start: float,
    worker: int,
    recorded_answers: bool,
    slots: anyio.CapacityLimiter | None,
    counts: list[int],
) -> None:
    """Run *session* from its arrival (now): each turn is sent with ``await send(request,
    dispatched)`` and handed to *finish* as a record; the next waits for the answer and
    the think time. A failed turn stops the session (its later turns are never sent:
    ``turns_not_sent``); ``counts[0]`` counts the turns sent. *slots* holds
    ``--max-active-conversations``: the wait for one is part of the first turn's
    ``client_queue_time``."""
    import time

    from ._execute import RequestRecord

    clock = time.perf_counter
    dispatched = clock()
    scheduled = session.delay
    async with slots if slots is not None else contextlib.nullcontext():
        history: list[dict[str, Any]] = []
        history_len = 0
        for k, turn in enumerate(session.turns):
            item = turn.scheduled
            if k:
                pause = session.think_times[k - 1]
                due = clock() + pause
                scheduled = due - start
                if pause > 0:
                    await anyio.sleep(pause)
                dispatched = clock()
            request = item.request
            if not recorded_answers:
                if k == 0:
                    history = list(request.prompt[:-1])  # the system messages
                user = request.prompt[-1]
                request = replace(
                    request, prompt=[*history, user], prompt_len=history_len + turn.new_len
                )
            counts[0] += 1
            out: RequestFuncOutput = await send(request, dispatched)
            finish(
                RequestRecord(
                    index=item.index,
                    request_id=request.request_id or "",
                    scheduled=scheduled,
                    dispatched=dispatched - start,
                    output=out,
                    worker=worker,
                    timeout=request.timeout,
                    session_id=session.session_id,
                    turn=k + 1,
                )
            )
            if not out.success:
                return
            if not recorded_answers:
                history.append(request.prompt[-1])
                history.append({"role": "assistant", "content": out.generated_text})
                # The server's count of the answer; without usage, whitespace words.
                answer_len = out.output_tokens or len(out.generated_text.split())
                history_len += turn.new_len + answer_len


# -- metrics ------------------------------------------------------------------------------

_TURN_METRICS = ("ttft", "tpot", "itl", "e2el")


@attrs.frozen
class TurnStats:
    """The figures of one turn index over every session: *latency* maps
    ``"mean_ttft_ms"``, ``"median_ttft_ms"``, ``"p99_ttft_ms"`` (and tpot, itl, e2el)
    to milliseconds."""

    turn: int
    completed: int
    failed: int
    mean_input_tokens: float
    mean_output_tokens: float
    latency: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "completed": self.completed,
            "failed": self.failed,
            "mean_input_tokens": self.mean_input_tokens,
            "mean_output_tokens": self.mean_output_tokens,
            **self.latency,
        }


@attrs.frozen
class SessionMetrics:
    """What a multi-turn run measured beyond the per-request figures: conversations
    completed (every turn succeeded), failed (stopped at a failed turn) and not finished
    (interrupted), turns not sent because their conversation stopped, and each turn
    index's figures."""

    conversations: int
    completed: int
    failed: int
    not_finished: int
    turns_planned: int
    turns_not_sent: int
    per_turn: tuple[TurnStats, ...]

    def result_keys(self) -> dict[str, Any]:
        """The result JSON's multi-turn keys."""
        return {
            "conversations": self.conversations,
            "conversations_completed": self.completed,
            "conversations_failed": self.failed,
            "conversations_not_finished": self.not_finished,
            "turns_planned": self.turns_planned,
            "turns_not_sent": self.turns_not_sent,
            "per_turn": [t.to_json() for t in self.per_turn],
        }

    def report_lines(self) -> list[str]:
        """The printed section: conversations, then one row per turn index."""
        lines = ["{s:{c}^{n}}".format(s="Multi-turn conversations", n=50, c="-")]
        lines.append(f"{'Conversations completed:':<40} {self.completed}/{self.conversations}")
        if self.failed:
            lines.append(f"{'Conversations stopped at a failed turn:':<40} {self.failed}")
            lines.append(f"{'Turns not sent (conversation stopped):':<40} {self.turns_not_sent}")
        if self.not_finished:
            lines.append(f"{'Conversations not finished:':<40} {self.not_finished}")
        lines.append(
            f"{'Turn':>4} {'Done':>5} {'Fail':>4} {'In tok':>7} {'TTFT p50':>9} {'TTFT p99':>9} "
            f"{'TPOT p50':>9} {'ITL p99':>8} {'E2EL p50':>9}   (ms)"
        )
        for t in self.per_turn:
            lat = t.latency
            lines.append(
                f"{t.turn:>4} {t.completed:>5} {t.failed:>4} {t.mean_input_tokens:>7.0f} "
                f"{lat['median_ttft_ms']:>9.2f} {lat['p99_ttft_ms']:>9.2f} "
                f"{lat['median_tpot_ms']:>9.2f} {lat['p99_itl_ms']:>8.2f} "
                f"{lat['median_e2el_ms']:>9.2f}"
            )
        return lines


def session_metrics(
    plan: WorkloadPlan,
    execution: Execution,
    count_tokens: Callable[[str], int] | None,
    count_source: str,
) -> SessionMetrics:
    """Per turn index and per conversation, from *execution*'s records."""
    import warnings

    from ._metrics import calculate_metrics

    by_turn: dict[int, list[RequestRecord]] = {}
    by_session: dict[str, list[RequestRecord]] = {}
    for rec in execution.records:
        if rec.turn is None or rec.session_id is None:
            continue
        by_turn.setdefault(rec.turn, []).append(rec)
        by_session.setdefault(rec.session_id, []).append(rec)
    completed = failed = not_sent = 0
    for session in plan.sessions:
        recs = by_session.get(session.session_id, [])
        if any(not r.output.success for r in recs):
            failed += 1
            not_sent += len(session.turns) - len(recs)  # as turns_not_sent counts them
        elif len(recs) == len(session.turns):
            completed += 1
    per_turn = []
    for turn in sorted(by_turn):
        recs = by_turn[turn]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a turn whose requests all failed
            metrics, out_lens = calculate_metrics(
                [r.output for r in recs],
                execution.duration,
                count_tokens=count_tokens,
                count_source=count_source,
                selected_percentiles=(99.0,),
            )
        per_turn.append(_turn_stats(turn, recs, metrics, out_lens))
    n = len(plan.sessions)
    return SessionMetrics(
        conversations=n,
        completed=completed,
        failed=failed,
        not_finished=n - completed - failed,
        turns_planned=len(plan.requests),
        turns_not_sent=not_sent,
        per_turn=tuple(per_turn),
    )


def turns_not_sent(plan: WorkloadPlan, records: Iterable[RequestRecord]) -> int:
    """Turns never sent because an earlier turn of their conversation failed."""
    finished: dict[str, int] = {}  # conversation -> its turns that finished
    failed: set[str] = set()
    for rec in records:
        if rec.session_id is not None:
            finished[rec.session_id] = finished.get(rec.session_id, 0) + 1
            if not rec.output.success:
                failed.add(rec.session_id)
    return sum(
        len(s.turns) - finished[s.session_id] for s in plan.sessions if s.session_id in failed
    )


def _turn_stats(
    turn: int, recs: Sequence[RequestRecord], metrics: BenchmarkMetrics, out_lens: list[int]
) -> TurnStats:
    from ._report import metric_stats

    ok = [r.output for r in recs if r.output.success]
    latency = metric_stats(metrics, _TURN_METRICS, std=False)  # P99 only: see session_metrics
    return TurnStats(
        turn=turn,
        completed=metrics.completed,
        failed=metrics.failed,
        mean_input_tokens=_mean(o.prompt_len for o in ok),
        mean_output_tokens=_mean(n for n in out_lens if n),
        latency=latency,
    )


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


# -- errors -------------------------------------------------------------------------------


def _bad(path: str, why: str, hint: str | None = None) -> UsageError:
    from ._datasets import _bad_file

    return _bad_file(path, why, hint, what="invalid multi-turn dataset")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "missing or null"}
    names.update({bool: "a boolean", int: "a number", float: "a number"})
    return names.get(type(value), f"a {type(value).__name__}")
