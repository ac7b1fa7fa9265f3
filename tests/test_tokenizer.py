"""get_model and get_tokenizer: lazy imports, modes, and clear failures. No downloads."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from anyio_llmreq import get_model, get_tokenizer
from anyio_llmreq._tokenizer import MistralTokenizerAdapter

SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "the dog sat"]


# No test here may reach the hub: see the fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("hf_offline")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) fast tokenizer saved the way hub models are."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "<s>", "</s>"])
    raw.train_from_iterator(SENTENCES, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    path = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(path)
    return path


def test_import_does_not_load_transformers_or_tqdm() -> None:
    code = (
        "import sys, anyio_llmreq, anyio_llmreq._tokenizer; "
        "print([m for m in ('transformers', 'tqdm', 'modelscope', 'mistral_common', 'gguf')"
        " if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_auto_mode_loads_a_local_tokenizer(tokenizer_dir: Path) -> None:
    tok = get_tokenizer(str(tokenizer_dir))
    ids = tok("the cat sat", add_special_tokens=False).input_ids
    assert len(ids) == 3
    assert tok.decode(ids) == "the cat sat"
    assert get_tokenizer(tokenizer_dir).encode("the dog", add_special_tokens=False) == tok.encode(
        "the dog", add_special_tokens=False
    )


def test_slow_mode_refuses_use_fast() -> None:
    with pytest.raises(
        ValueError, match=r"^Cannot use the fast tokenizer in slow tokenizer mode\.$"
    ):
        get_tokenizer("anything", tokenizer_mode="slow", use_fast=True)


def spy_auto_tokenizer(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    import transformers

    calls: list[tuple[Any, dict[str, Any]]] = []

    def from_pretrained(name: Any, **kwargs: Any) -> str:
        calls.append((name, kwargs))
        return "tokenizer"

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    return calls


def test_modes_pass_the_reference_arguments(
    tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_auto_tokenizer(monkeypatch)
    path = str(tokenizer_dir)
    assert get_tokenizer(path, tokenizer_mode="slow", revision="r") == "tokenizer"
    get_tokenizer(path, trust_remote_code=True)
    get_tokenizer(path, tokenizer_mode="unknown-mode", use_fast=True)
    assert calls == [
        (path, {"trust_remote_code": False, "revision": "r", "use_fast": False}),
        (path, {"trust_remote_code": True}),
        (path, {"trust_remote_code": False, "use_fast": True}),
    ]


def test_slow_mode_loads_a_real_tokenizer(tokenizer_dir: Path) -> None:
    # transformers 5 has no slow class for this tokenizer and falls back to the fast one.
    tok = get_tokenizer(str(tokenizer_dir), tokenizer_mode="slow")
    assert len(tok("the mat", add_special_tokens=False).input_ids) == 2


def test_a_missing_model_names_what_was_tried() -> None:
    with pytest.raises(OSError, match="nobody/no-such-model"):
        get_tokenizer("nobody/no-such-model")


def test_get_model_returns_the_name_without_modelscope() -> None:
    assert get_model("org/model") == "org/model"


def fake_modelscope(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def snapshot_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(path)

    module = types.ModuleType("modelscope")
    module.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "modelscope", module)
    monkeypatch.setenv("VLLM_USE_MODELSCOPE", "True")
    return calls


def test_modelscope_download(tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_modelscope(monkeypatch, tokenizer_dir)
    assert get_model("org/model") == str(tokenizer_dir)
    assert calls == [
        {
            "model_id": "org/model",
            "local_files_only": True,
            "ignore_file_pattern": [".*.pt", ".*.safetensors", ".*.bin"],
        }
    ]
    # get_tokenizer resolves names that are not paths through get_model.
    tok = get_tokenizer("org/model")
    assert len(tok("a dog", add_special_tokens=False).input_ids) == 2
    assert calls[-1]["model_id"] == "org/model"


def test_modelscope_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "modelscope", None)
    monkeypatch.setenv("VLLM_USE_MODELSCOPE", "true")
    with pytest.raises(ImportError, match=r"anyio-llmreq\[modelscope\]"):
        get_model("org/model")


# --- mistral ------------------------------------------------------------------------------


class FakeRaw:
    n_words, bos_id, eos_id = 100, 1, 2

    def encode(self, text: str, bos: bool, eos: bool) -> list[int]:
        ids = [10 + len(w) for w in text.split()]
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: list[int]) -> str:
        return " ".join("x" * (i - 10) for i in ids if i >= 10)


def fake_mistral_common(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    loaded: list[str] = []

    class MistralTokenizer:
        def __init__(self) -> None:
            self.instruct_tokenizer = types.SimpleNamespace(tokenizer=FakeRaw())

        @classmethod
        def from_file(cls, path: str) -> MistralTokenizer:
            loaded.append(path)
            return cls()

    names = [
        "mistral_common",
        "mistral_common.tokens",
        "mistral_common.tokens.tokenizers",
        "mistral_common.tokens.tokenizers.mistral",
    ]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules[names[-1]].MistralTokenizer = MistralTokenizer  # type: ignore[attr-defined]
    return loaded


def test_mistral_mode_without_mistral_common(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mistral_common", None)
    monkeypatch.setitem(sys.modules, "mistral_common.tokens.tokenizers.mistral", None)
    with pytest.raises(ImportError, match=r"pip install 'anyio-llmreq\[mistral\]'"):
        get_tokenizer("mistralai/Mistral-7B", tokenizer_mode="mistral")


@pytest.mark.parametrize(
    ("files", "chosen"),
    [
        (["tekken.json", "tokenizer.model.v3", "config.json"], "tekken.json"),
        (["tokenizer.model.v1", "tokenizer.model.v3", "tokenizer.json"], "tokenizer.model.v3"),
        (["tokenizer.model"], "tokenizer.model"),
    ],
)
def test_mistral_mode_picks_the_tokenizer_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[str], chosen: str
) -> None:
    loaded = fake_mistral_common(monkeypatch)
    for name in files:
        (tmp_path / name).write_text(json.dumps({}))
    tok = get_tokenizer(str(tmp_path), tokenizer_mode="mistral", trust_remote_code=True)
    assert isinstance(tok, MistralTokenizerAdapter)
    assert loaded == [str(tmp_path / chosen)]
    # A file path is loaded as it is.
    get_tokenizer(str(tmp_path / chosen), tokenizer_mode="mistral")
    assert loaded[-1] == str(tmp_path / chosen)


def test_mistral_adapter_counts_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mistral_common(monkeypatch)
    (tmp_path / "tekken.json").write_text("{}")
    tok = get_tokenizer(str(tmp_path), tokenizer_mode="mistral")
    assert tok("ab cde", add_special_tokens=False).input_ids == [12, 13]
    assert tok("ab cde")["input_ids"] == [1, 12, 13]
    assert tok(["ab", "c"], add_special_tokens=False).input_ids == [[12], [11]]
    assert tok.encode("ab") == [1, 12]
    assert tok.decode([12, 13]) == "xx xxx"
    assert (tok.vocab_size, len(tok), tok.bos_token_id, tok.eos_token_id) == (100, 100, 1, 2)


def test_mistral_mode_with_no_tokenizer_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mistral_common(monkeypatch)
    with pytest.raises(OSError, match="tekken.json"):
        get_tokenizer(str(tmp_path), tokenizer_mode="mistral")


# --- gguf ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def byte_bpe() -> Any:
    """A byte-level BPE (GPT-2 style) trained on SENTENCES, with <s> and </s> first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        vocab_size=400,
        show_progress=False,
    )
    raw.train_from_iterator(SENTENCES, trainer)
    return raw


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory, byte_bpe: Any) -> Path:
    """A real GGUF file, written by gguf's GGUFWriter: llama hyper-parameters and the
    byte-level BPE as a "gpt2" tokenizer vocabulary, no tensors."""
    import gguf

    vocab = byte_bpe.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    merges = [
        m if isinstance(m, str) else " ".join(m)
        for m in json.loads(byte_bpe.to_str())["model"]["merges"]
    ]
    path = tmp_path_factory.mktemp("gguf") / "tiny-F16.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(64)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL] * 2 + [gguf.TokenType.NORMAL] * (len(tokens) - 2)
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<s>"])
    writer.add_eos_token_id(vocab["</s>"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_file_is_real(gguf_file: Path, byte_bpe: Any) -> None:
    import gguf

    reader = gguf.GGUFReader(gguf_file)
    field = reader.fields["tokenizer.ggml.tokens"]
    assert len(field.data) == byte_bpe.get_vocab_size()
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["tokenizer.ggml.model"].contents() == "gpt2"


@pytest.mark.parametrize("big_endian", [False, True])
def test_gguf_metadata_reader_agrees_with_gguf(
    tmp_path: Path, gguf_file: Path, byte_bpe: Any, big_endian: bool
) -> None:
    """anyio_llmreq._gguf reads the metadata itself, faster than gguf.GGUFReader."""
    import mmap

    import gguf

    from anyio_llmreq._gguf import _MetadataReader

    path = gguf_file
    if big_endian:
        path = tmp_path / "big-endian.gguf"
        writer = gguf.GGUFWriter(str(path), "llama", endianess=gguf.GGUFEndian.BIG)
        writer.add_block_count(3)
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list(["a", "b", "ab", "ñ"])
        writer.add_token_types([1, 1, 1, 4])
        writer.add_token_scores([0.0, -1.5, -2.0, 3.25])
        writer.add_token_merges(["a b"])
        writer.add_bool("tokenizer.ggml.add_bos_token", True)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    expected = {
        name: field.contents()
        for name, field in gguf.GGUFReader(path).fields.items()
        if not name.startswith("GGUF.")
    }
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        assert _MetadataReader(data).read(lambda key: True) == expected


def test_gguf_file_loads_a_real_tokenizer(gguf_file: Path, byte_bpe: Any) -> None:
    # Through transformers with torch, through anyio_llmreq._gguf without it.
    tok = get_tokenizer(str(gguf_file))
    for text in [*SENTENCES, "the cat ran", " the  mat\n", "día 42 ñ"]:
        ids = tok(text, add_special_tokens=False).input_ids
        assert ids == byte_bpe.encode(text).ids
        assert tok.decode(ids) == text
    assert (tok.bos_token, tok.eos_token) == ("<s>", "</s>")
    assert (tok.bos_token_id, tok.eos_token_id) == (0, 1)
    # Control tokens are matched whole, and dropped by skip_special_tokens.
    ids = tok("<s>the cat</s>", add_special_tokens=False).input_ids
    assert (ids[0], ids[-1]) == (0, 1)
    assert tok.decode(ids, skip_special_tokens=True) == "the cat"


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """transformers' GGUF reader failing as it does without torch, installed or not."""
    import transformers

    calls: list[Any] = []

    def from_pretrained(name: Any, **kwargs: Any) -> Any:
        calls.append(name)
        # transformers 5's words when torch is missing: they do not name torch.
        raise ImportError("Could not import module 'read_gguf_metadata'.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    return calls


def test_gguf_file_loads_without_torch(gguf_file: Path, byte_bpe: Any, no_torch: list[Any]) -> None:
    from transformers import PreTrainedTokenizerFast

    tok = get_tokenizer(str(gguf_file), tokenizer_mode="slow", revision="ignored")
    assert no_torch == [str(gguf_file.parent)]
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert tok.encode("the dog sat") == byte_bpe.encode("the dog sat").ids  # no BOS flag
    assert len(tok) == byte_bpe.get_vocab_size()


SPM_SENTENCES = [*SENTENCES, "The Cat and the hat", "a mat, a cat; a dog!"]


@pytest.fixture(scope="module")
def spm_bpe() -> Any:
    """A SentencePiece-style BPE (Llama 2 / Mistral style): <unk> <s> </s>, the 256 byte
    pieces <0x00>..<0xFF>, then pieces that start with "▁" for a space, byte fallback."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    raw.decoder = decoders.Sequence(
        [
            decoders.Replace("\u2581", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    trainer = trainers.BpeTrainer(
        special_tokens=["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))],
        vocab_size=340,
        show_progress=False,
    )
    raw.train_from_iterator(SPM_SENTENCES, trainer)
    return raw


def write_gguf(
    path: Path,
    model: str,
    tokens: list[str],
    types: list[int],
    scores: list[float] | None = None,
    merges: list[str] | None = None,
    pre: str | None = None,
    meta: dict[str, str | bool] | None = None,
    **ids: int,
) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tokenizer_model(model)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if scores is not None:
        writer.add_token_scores(scores)
    if merges is not None:
        writer.add_token_merges(merges)
    if pre is not None:
        writer.add_tokenizer_pre(pre)
    for name, value in ids.items():
        writer.add_uint32(f"tokenizer.ggml.{name}", value)
    for key, item in (meta or {}).items():
        if isinstance(item, bool):
            writer.add_bool(key, item)
        else:
            writer.add_string(key, item)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def spm_gguf_file(tmp_path_factory: pytest.TempPathFactory, spm_bpe: Any) -> Path:
    """spm_bpe as a "llama" GGUF vocabulary: pieces, scores and types, no merges. As in
    SentencePiece BPE models, a later piece scores lower."""
    import gguf

    vocab = spm_bpe.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (len(tokens) - 259)
    scores = [0.0] * 259 + [-float(i) for i in range(len(tokens) - 259)]
    path = tmp_path_factory.mktemp("gguf") / "tiny-spm-Q8_0.gguf"
    ids = {"bos_token_id": 1, "eos_token_id": 2, "unknown_token_id": 0}
    return write_gguf(path, "llama", tokens, types, scores, **ids)


def test_gguf_sentencepiece_file_loads(spm_gguf_file: Path, spm_bpe: Any, no_torch: Any) -> None:
    tok = get_tokenizer(str(spm_gguf_file))
    for text in [*SPM_SENTENCES, "the cat", "hat mat sat", "two  spaces", "ünïcode ✓ 42\n"]:
        ids = tok(text, add_special_tokens=False).input_ids
        assert ids == spm_bpe.encode(text).ids, text
        assert tok.decode(ids) == text
    # As with transformers' Llama tokenizer, a leading space is not prefixed again, and
    # decoding drops one.
    ids = tok("  two", add_special_tokens=False).input_ids
    assert ids == spm_bpe.encode("  two").ids
    assert tok.decode(ids) == spm_bpe.decode(ids, skip_special_tokens=False) == " two"
    # Characters outside the vocabulary fall back to their UTF-8 bytes.
    ids = tok("✓", add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(ids)[-3:] == ["<0xE2>", "<0x9C>", "<0x93>"]
    assert (tok.bos_token, tok.eos_token, tok.unk_token) == ("<s>", "</s>", "<unk>")
    # llama.cpp adds BOS to a SentencePiece vocabulary unless the file says otherwise.
    assert tok("the cat").input_ids == [1, *spm_bpe.encode("the cat").ids]
    assert tok.decode(tok("the cat").input_ids, skip_special_tokens=True) == "the cat"


PARITY_TEXTS = [
    *SPM_SENTENCES,
    "",
    " ",
    "the  cat\n\nsat\t on  ",
    "The CAT's 12345 mats, don't they?",
    "ünïcode ✓ — 北京 🙂",
    "<s>the cat</s> a dog",
    "HTTPServer's camelCase x/y 1/2 ÀÉÎ über\r\n",
]


@pytest.mark.parametrize("pre", [None, "gpt-2", "llama-bpe", "qwen2", "gpt-4o", "tekken"])
def test_gguf_byte_level_matches_transformers_gguf_reader(
    tmp_path: Path, byte_bpe: Any, pre: str | None, no_torch: Any
) -> None:
    """What transformers builds (with torch) from the same file, built here without
    torch from its private converter: same ids."""
    import gguf

    tokens, merges = bpe_tokens_and_merges(byte_bpe)
    types = [gguf.TokenType.CONTROL] * 2 + [gguf.TokenType.NORMAL] * (len(tokens) - 2)
    path = write_gguf(
        tmp_path / "bpe.gguf", "gpt2", tokens, types, merges=merges, pre=pre, bos_token_id=0
    )
    tokenizer_dict = {
        "tokenizer_type": "gpt2",
        "tokens": tokens,
        "token_type": types,
        "merges": merges,
        **({"pre_tokenizer_type": pre} if pre else {}),
    }
    assert_same_ids_as_transformers(path, tokenizer_dict)


def test_gguf_sentencepiece_matches_transformers_gguf_reader(
    spm_gguf_file: Path, no_torch: Any
) -> None:
    import gguf

    reader = gguf.GGUFReader(spm_gguf_file)
    tokenizer_dict = {
        "tokenizer_type": "llama",
        "tokens": reader.fields["tokenizer.ggml.tokens"].contents(),
        "scores": reader.fields["tokenizer.ggml.scores"].contents(),
        "token_type": reader.fields["tokenizer.ggml.token_type"].contents(),
    }
    assert_same_ids_as_transformers(spm_gguf_file, tokenizer_dict)


def assert_same_ids_as_transformers(path: Path, tokenizer_dict: dict[str, Any]) -> None:
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (
            convert_gguf_tokenizer,
        )
    except ImportError:
        pytest.skip("this transformers has no torch-free GGUF tokenizer converter")
    reference, _ = convert_gguf_tokenizer("llama", tokenizer_dict)
    tok = get_tokenizer(str(path))
    for text in PARITY_TEXTS:
        ids = tok(text, add_special_tokens=False).input_ids
        assert ids == reference.encode(text, add_special_tokens=False).ids, text
        assert tok.decode(ids) == reference.decode(ids, skip_special_tokens=False), text


def test_gguf_unknown_pre_tokenizer_is_refused(
    tmp_path: Path, byte_bpe: Any, no_torch: Any
) -> None:
    """A split this package doesn't know would give wrong counts silently: refused, with
    the name, the known ones and what to do instead."""
    import gguf

    tokens, merges = bpe_tokens_and_merges(byte_bpe)
    types = [gguf.TokenType.CONTROL] * 2 + [gguf.TokenType.NORMAL] * (len(tokens) - 2)
    path = write_gguf(
        tmp_path / "new.gguf", "gpt2", tokens, types, merges=merges, pre="brand-new-pre"
    )
    with pytest.raises(ValueError, match=r"tokenizer\.ggml\.pre='brand-new-pre'") as info:
        get_tokenizer(str(path))
    message = str(info.value)
    assert str(path) in message
    assert "llama-bpe" in message and "qwen2" in message and "gpt-2" in message
    assert "--tokenizer" in message


def bpe_tokens_and_merges(byte_bpe: Any) -> tuple[list[str], list[str]]:
    vocab = byte_bpe.get_vocab()
    merges = json.loads(byte_bpe.to_str())["model"]["merges"]
    return (
        sorted(vocab, key=vocab.__getitem__),
        [m if isinstance(m, str) else " ".join(m) for m in merges],
    )


def test_gguf_flags_and_chat_template(tmp_path: Path, byte_bpe: Any, no_torch: Any) -> None:
    import gguf

    tokens, merges = bpe_tokens_and_merges(byte_bpe)
    types = [gguf.TokenType.CONTROL] * 2 + [gguf.TokenType.NORMAL] * (len(tokens) - 2)
    meta: dict[str, str | bool] = {
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": True,
        "tokenizer.chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    }
    path = write_gguf(
        tmp_path / "flags.gguf",
        "gpt2",
        tokens,
        types,
        merges=merges,
        meta=meta,
        bos_token_id=0,
        eos_token_id=1,
    )
    tok = get_tokenizer(str(path))
    assert tok("the cat").input_ids == [0, *byte_bpe.encode("the cat").ids, 1]
    assert tok("the cat", add_special_tokens=False).input_ids == byte_bpe.encode("the cat").ids
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "hi"


def test_gguf_embedded_tokenizer_json_wins(
    tmp_path: Path, tokenizer_dir: Path, no_torch: Any
) -> None:
    # A file that carries its whole tokenizer.json is loaded from that, whatever its
    # tokenizer.ggml.model says.
    import gguf

    embedded = (tokenizer_dir / "tokenizer.json").read_text()
    path = write_gguf(
        tmp_path / "hf.gguf",
        "bert",
        ["[UNK]", "<s>", "</s>"],
        [gguf.TokenType.NORMAL] * 3,
        meta={"tokenizer.huggingface.json": embedded},
        eos_token_id=2,
    )
    tok = get_tokenizer(str(path))
    from tokenizers import Tokenizer

    reference = Tokenizer.from_str(embedded)
    assert tok.encode("the dog sat") == reference.encode("the dog sat").ids
    assert tok.eos_token == "</s>"


def test_gguf_unknown_tokenizer_model_names_torch(tmp_path: Path, no_torch: Any) -> None:
    import gguf

    tokens = ["[PAD]", "[UNK]", "hello", "world"]
    path = write_gguf(tmp_path / "bert.gguf", "bert", tokens, [gguf.TokenType.NORMAL] * 4)
    with pytest.raises(ImportError, match=r"'bert'.*pip install torch") as info:
        get_tokenizer(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content", [b"not a gguf file at all", b"", b"GGUF", b"GGUF\x03\x00\x00\x00" + b"\xff" * 16]
)
def test_gguf_file_that_is_not_gguf(tmp_path: Path, no_torch: Any, content: bytes) -> None:
    path = tmp_path / "broken.gguf"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.gguf"):
        get_tokenizer(str(path))


def test_gguf_file_cut_short(tmp_path: Path, gguf_file: Path, no_torch: Any) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(gguf_file.read_bytes()[:600])
    with pytest.raises(ValueError, match=r"cut\.gguf"):
        get_tokenizer(str(path))


def test_gguf_without_the_gguf_package(
    gguf_file: Path, byte_bpe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Our reader needs no gguf; transformers, which does, fails over to it.
    monkeypatch.setitem(sys.modules, "gguf", None)
    tok = get_tokenizer(str(gguf_file))
    assert tok.encode("the dog sat") == byte_bpe.encode("the dog sat").ids


def test_gguf_file_loads_through_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # transformers reads the file where it can (with torch installed).
    calls = spy_auto_tokenizer(monkeypatch)
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    get_tokenizer(str(path), revision="main")
    assert calls == [
        (str(tmp_path), {"trust_remote_code": False, "revision": "main", "gguf_file": "model.gguf"})
    ]
