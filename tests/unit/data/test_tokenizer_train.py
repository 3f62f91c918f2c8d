"""Tokenizer training: the four families train, save, reload with AutoTokenizer and keep their conventions (the
three encoder families wrap a text in [CLS]/[SEP] and have a mask token; gpt has only <|endoftext|>)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from tuneforge.config.schema import CorpusConfig, TokenizerConfig
from tuneforge.data.tokenizer_train import (
    BYTE_LEVEL,
    CJK_PATTERN,
    FAMILIES,
    is_cjk,
    train_tokenizer,
)
from tuneforge.errors import UserError
from tuneforge.recipes.tokenizer import train_tokenizer_folder

SYLLABLES = ["ka", "lo", "mi", "ran", "tes", "vu", "zor", "pel", "dax", "fin", "gru", "hol", "jen", "nop", "qua",
             "sil", "tur", "wen", "yel", "bo", "cre", "dun", "esh", "fa"]
ZH = ["我爱北京天安门", "今天天气很好", "我们去公园散步", "北京是中国的首都", "他喜欢读书和写字", "天安门在北京"]
EXTRA = ["Hello world", "hello there", "HELLO again", "the café is open", "a cafe near the river", "café au lait"]
ZH_SENTENCE = "我爱北京天安门"
ENCODERS = ["wordpiece", "bpe", "unigram"]  # the masked-LM families


def corpus(n: int = 800, seed: int = 0) -> list[str]:
    """English-like sentences of pseudo-words (many distinct subwords), some Chinese and accent/case variants."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(600)})
    texts = [" ".join(rng.choices(words, k=rng.randint(5, 10))) + "." for _ in range(n)]
    return texts + ZH * 20 + EXTRA * 10


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return corpus()


@pytest.fixture(scope="module")
def saved(texts, tmp_path_factory) -> dict[str, tuple[object, object]]:
    """(trained tokenizer, the same reloaded with AutoTokenizer) per family."""
    from transformers import AutoTokenizer

    out = {}
    for kind in FAMILIES:
        tok = train_tokenizer(texts, kind, vocab_size=400, model_max_length=256)
        folder = tmp_path_factory.mktemp(kind)
        tok.save_pretrained(folder)
        assert (folder / "tokenizer.json").is_file()
        out[kind] = (tok, AutoTokenizer.from_pretrained(folder))
    return out


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


EXPECTED_SPECIALS = {
    "wordpiece": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]",
                  "unk_token": "[UNK]"},
    "bpe": {"cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "mask_token": "<mask>", "unk_token": "<unk>",
            "bos_token": "<s>", "eos_token": "</s>"},
    "unigram": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "<pad>", "mask_token": "[MASK]",
                "unk_token": "<unk>"},
    "gpt": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>", "cls_token": None, "sep_token": None, "mask_token": None},
}


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_reloaded_tokenizer_has_the_family_special_tokens(saved, kind):
    tok, loaded = saved[kind]
    specials, _ = FAMILIES[kind]
    for t in (tok, loaded):
        for role, token in EXPECTED_SPECIALS[kind].items():
            assert getattr(t, role) == token, (kind, role)
        # special tokens take the first ids, in the family's order
        assert [t.convert_tokens_to_ids(s) for s in specials] == list(range(len(specials)))
        assert t.model_max_length == 256
    if kind == "wordpiece":
        assert loaded.pad_token_id == 0
    if kind in ENCODERS:
        assert loaded.mask_token_id is not None and loaded.mask_token_id != loaded.unk_token_id


def test_gpt_encoding_adds_nothing_around_a_text(saved):
    for t in saved["gpt"]:
        assert t("hello world")["input_ids"] == ids(t, "hello world")
        assert t.eos_token_id not in ids(t, "hello world") and t.all_special_ids == [0]


@pytest.mark.parametrize("kind", ENCODERS)
def test_encoding_is_wrapped_in_cls_and_sep(saved, kind):
    tok, loaded = saved[kind]
    for t in (tok, loaded):
        enc = t("hello world")["input_ids"]
        assert enc[0] == t.cls_token_id and enc[-1] == t.sep_token_id
        assert t.cls_token_id not in enc[1:-1] and t.sep_token_id not in enc[1:-1]
        pair = t("hello", "world")["input_ids"]
        assert pair[0] == t.cls_token_id and pair[-1] == t.sep_token_id
        assert pair.count(t.sep_token_id) >= 2


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_round_trip_after_reload(saved, texts, kind):
    tok, loaded = saved[kind]
    sample = texts[:20] + ["hello world", "the cafe is open"]
    for text in sample:
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
        assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text.lower()
    zh = loaded.decode(ids(loaded, ZH_SENTENCE))
    assert zh.replace(" ", "") == ZH_SENTENCE
    # nothing of the training text is unknown
    assert loaded.unk_token_id not in ids(loaded, " ".join(sample))


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_vocab_size_is_at_most_and_close_to_the_request(texts, kind):
    for size in (300, 500):
        tok = train_tokenizer(texts, kind, vocab_size=size)
        assert 0.9 * size <= len(tok) <= size, (kind, size, len(tok))


def test_unigram_vocab_size_at_most_the_request(texts):
    tok = train_tokenizer(texts, "unigram", vocab_size=300)
    assert len(FAMILIES["unigram"][0]) < len(tok) <= 300


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_chinese_is_split_per_character(saved, kind):
    _, loaded = saved[kind]
    enc = loaded(ZH_SENTENCE, add_special_tokens=False, return_offsets_mapping=True)
    spans = [tuple(s) for s in enc["offset_mapping"]]
    for s, e in spans:  # no token spans two ideographs (byte-level: several tokens may share one)
        assert sum(is_cjk(c) for c in ZH_SENTENCE[s:e]) <= 1, (kind, s, e)
    for i in range(len(ZH_SENTENCE)):  # and every character is covered by tokens of its own
        assert (i, i + 1) in spans
    if kind not in BYTE_LEVEL:
        pieces = [p.lstrip("▁") for p in loaded.convert_ids_to_tokens(enc["input_ids"])]
        assert [p for p in pieces if p] == list(ZH_SENTENCE)


def test_without_the_cjk_split_bpe_would_merge_ideographs(texts):
    """Guards the test above: on this corpus, byte-level BPE without the CJK split merges across characters."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    offsets = tok.encode(ZH_SENTENCE).offsets
    assert any(sum(is_cjk(c) for c in ZH_SENTENCE[s:e]) > 1 for s, e in offsets)


def test_cjk_helpers():
    import re

    assert all(is_cjk(c) for c in ZH_SENTENCE)
    assert not any(is_cjk(c) for c in "abc é 。，ア한")
    assert is_cjk("\U00020000") and is_cjk("\u3400")
    # the tokenizers (Oniguruma) class uses \x{...} escapes; with them replaced by the characters it is a Python class
    pattern = re.compile(re.sub(r"\\x\{([0-9A-F]+)\}", lambda m: chr(int(m.group(1), 16)), CJK_PATTERN))
    assert all(pattern.fullmatch(c) for c in ZH_SENTENCE + "\U00020000")
    assert not pattern.search("hello é 。")


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_lowercase_on_and_off(texts, kind):
    lower = train_tokenizer(texts, kind, vocab_size=400, lowercase=True)
    cased = train_tokenizer(texts, kind, vocab_size=400, lowercase=False)
    assert ids(lower, "Hello") == ids(lower, "hello")
    assert ids(lower, "HELLO world") == ids(lower, "hello world")
    assert ids(cased, "Hello") != ids(cased, "hello")
    assert cased.decode(ids(cased, "Hello world")) == "Hello world"


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_strip_accents(texts, kind):
    strip = train_tokenizer(texts, kind, vocab_size=400, lowercase=True, strip_accents=True)
    keep = train_tokenizer(texts, kind, vocab_size=400, lowercase=True, strip_accents=False)
    auto = train_tokenizer(texts, kind, vocab_size=400, lowercase=True)  # auto: follows lowercase, as BERT
    assert ids(strip, "café") == ids(strip, "cafe")
    assert ids(auto, "café") == ids(auto, "cafe")
    assert ids(keep, "café") != ids(keep, "cafe")
    assert strip.init_kwargs["tuneforge_tokenizer"] == {"type": kind, "lowercase": True, "strip_accents": True}
    assert keep.init_kwargs["tuneforge_tokenizer"]["strip_accents"] is False
    assert auto.init_kwargs["tuneforge_tokenizer"]["strip_accents"] is True


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_train_tokenizer_folder_writes_atomically(tmp_path, texts):
    from transformers import AutoTokenizer

    src = _write(tmp_path / "corpus.txt", texts + texts[:50] + ["tiny"])  # 50 duplicates, one too short
    data = CorpusConfig(corpus=[str(src)], min_chars=5)
    out = tmp_path / "models" / "tok"
    info = train_tokenizer_folder(data, TokenizerConfig(type="wordpiece", vocab_size=300), out, model_max_length=64)
    assert info["folder"] == str(out)
    assert info["texts"] == len(set(texts))
    loaded = AutoTokenizer.from_pretrained(out)
    assert len(loaded) == info["vocab_size"] <= 300
    assert loaded.cls_token == "[CLS]" and loaded.model_max_length == 64
    assert sorted(p.name for p in out.parent.iterdir()) == ["tok"]  # no .tok.tmp / .tok.old left
    # a second run replaces the folder (another family), still leaving nothing else behind
    train_tokenizer_folder(data, TokenizerConfig(type="bpe", vocab_size=300), out)
    assert AutoTokenizer.from_pretrained(out).cls_token == "<s>"
    assert sorted(p.name for p in out.parent.iterdir()) == ["tok"]


def test_train_tokenizer_folder_empty_corpus_is_a_user_error(tmp_path):
    src = _write(tmp_path / "short.txt", ["a", "bb", "   ", "ccc"])
    out = tmp_path / "tok"
    with pytest.raises(UserError, match="no text left after cleaning"):
        train_tokenizer_folder(CorpusConfig(corpus=[str(src)], min_chars=10), TokenizerConfig(), out)
    assert not out.exists()
    assert not any(".tmp" in p.name for p in tmp_path.iterdir())


def test_train_tokenizer_folder_missing_corpus_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="missing.txt"):
        train_tokenizer_folder(CorpusConfig(corpus=[str(tmp_path / "missing.txt")]), TokenizerConfig(), tmp_path / "t")


def test_byte_level_bpe_below_its_alphabet_is_a_user_error(tmp_path):
    (tmp_path / "c.txt").write_text("some text here for a tokenizer\n" * 5, encoding="utf-8")
    data = CorpusConfig(corpus=[str(tmp_path / "c.txt")])
    with pytest.raises(UserError, match="at least 261"):
        train_tokenizer_folder(data, TokenizerConfig(type="bpe", vocab_size=200), tmp_path / "tok")
    assert not (tmp_path / "tok").exists()
