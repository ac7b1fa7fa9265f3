"""get_model and get_tokenizer: lazy imports, modes, and clear failures. No downloads."""

from __future__ import annotations

import importlib.util
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


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("VLLM_USE_MODELSCOPE", raising=False)


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


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


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


@pytest.mark.skipif(not _has_torch(), reason="transformers reads GGUF files only with torch")
def test_gguf_file_loads_a_real_tokenizer(gguf_file: Path, byte_bpe: Any) -> None:
    tok = get_tokenizer(str(gguf_file))
    for text in [*SENTENCES, "the cat ran"]:
        ids = tok(text, add_special_tokens=False).input_ids
        assert ids == byte_bpe.encode(text).ids
        assert tok.decode(ids) == text
    assert (tok.bos_token, tok.eos_token) == ("<s>", "</s>")


@pytest.mark.skipif(_has_torch(), reason="torch is installed")
def test_gguf_file_without_torch_names_torch(gguf_file: Path) -> None:
    # transformers/integrations/gguf/reader.py imports torch at the top, and
    # AutoTokenizer.from_pretrained(..., gguf_file=...) reads the file's metadata with it.
    with pytest.raises(ImportError, match=r"pip install torch") as info:
        get_tokenizer(str(gguf_file))
    assert str(gguf_file) in str(info.value)


def test_gguf_without_the_gguf_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gguf", None)
    path = tmp_path / "model-Q4_K_M.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(ImportError, match=r"pip install gguf") as info:
        get_tokenizer(str(path))
    assert str(path) in str(info.value)


def test_gguf_file_loads_through_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gguf", types.ModuleType("gguf"))
    calls = spy_auto_tokenizer(monkeypatch)
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    get_tokenizer(str(path), revision="main")
    assert calls == [
        (str(tmp_path), {"trust_remote_code": False, "revision": "main", "gguf_file": "model.gguf"})
    ]
