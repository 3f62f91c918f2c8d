"""Whole-word masking: word starts per token (tokenizer words, Chinese words by jieba), the `auto` rule, and the
masks the pretraining data gets from them (all tokens of a word together, 15% of tokens, reproducible)."""
from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
import torch

from tuneforge.data import words
from tuneforge.data.masking import IGNORE, Masker
from tuneforge.data.pack import BlockBatches, PackedCorpus, build_token_stream
from tuneforge.data.tokenizer_train import train_tokenizer
from tuneforge.errors import UserError

jieba = pytest.importorskip("jieba")
jieba.setLogLevel(60)

ZH_WORDS = ["我们", "喜欢", "北京", "天安门", "外卖", "味道", "不错", "送餐", "速度", "快递", "包装", "服务"]
EN_WORDS = ["the", "delivery", "was", "quick", "and", "food", "tasted", "great", "packaging", "broken"]
SPECIALS = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]


def sentencepiece_tokenizer(pieces: list[str]):
    """An XLM-R-like tokenizer: Unigram over Metaspace words (split at spaces only, so a Chinese clause is one
    word), every piece equally likely, so the longest pieces win."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = [(t, 0.0) for t in SPECIALS] + [(p, -1.0) for p in dict.fromkeys(pieces)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=1))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


@pytest.fixture(scope="module")
def sp_tok():
    chars = sorted({c for w in ZH_WORDS + ["太慢了"] for c in w})
    # "天安" + "门": one jieba word, two tokens; "慢了" spans two jieba words (太慢 / 了)
    return sentencepiece_tokenizer(["▁", *chars, "天安", "外卖", "慢了", "▁hello", "▁world", "o", "▁OK", "OK"])


def flags_for(tok, text: str) -> tuple[list[str], list[int]]:
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return tok.convert_ids_to_tokens(enc["input_ids"]), words.word_starts(enc["offset_mapping"], enc.word_ids(), text)


def grouped(tokens: list[str], flags: list[int]) -> list[str]:
    out: list[str] = []
    for t, f in zip(tokens, flags, strict=True):
        out.append(t) if f or not out else out.__setitem__(-1, out[-1] + t)
    return out


def test_sentencepiece_clause_is_split_into_jieba_words(sp_tok):
    tokens, flags = flags_for(sp_tok, "我们喜欢北京天安门")
    assert tokens == ["▁", "我", "们", "喜", "欢", "北", "京", "天安", "门"]
    # the tokenizer alone sees one word (no spaces): the old rule masked whole clauses
    assert sp_tok("我们喜欢北京天安门", add_special_tokens=False).word_ids() == [0] * 9
    assert grouped(tokens, flags) == ["▁我们", "喜欢", "北京", "天安门"]


def test_piece_spanning_two_jieba_words_stays_whole(sp_tok):
    tokens, flags = flags_for(sp_tok, "快递太慢了")  # jieba: 快递 / 太慢 / 了; "慢了" is one piece
    assert tokens == ["▁", "快", "递", "太", "慢了"]
    assert grouped(tokens, flags) == ["▁快递", "太慢了"]


def test_latin_words_keep_the_tokenizers_grouping_next_to_chinese(sp_tok):
    tokens, flags = flags_for(sp_tok, "hello 外卖不错 hello 天安门OK")
    assert tokens == ["▁hello", "▁", "外卖", "不", "错", "▁hello", "▁", "天安", "门", "OK"]
    # a lone "▁" joins the word after it; "OK" glued to Chinese is a word of its own (jieba), though the
    # tokenizer saw "天安门OK" as one word
    assert grouped(tokens, flags) == ["▁hello", "▁外卖", "不错", "▁hello", "▁天安门", "OK"]


def test_wordpiece_groups_characters_and_keeps_hash_pieces():
    texts = [" ".join(random.Random(i).choices(EN_WORDS, k=8)) for i in range(60)] + ["我们喜欢北京天安门"] * 3
    tok = train_tokenizer(texts, "wordpiece", vocab_size=90, min_frequency=2)  # small: English words split in ##
    text = "the packaging 我们喜欢北京天安门 delivery"
    tokens, flags = flags_for(tok, text)
    assert any(t.startswith("##") for t in tokens)
    expected = [0 if t.startswith("##") else 1 for t in tokens]
    for continued in ("们", "欢", "京", "安", "门"):  # BERT makes each Han character a word; jieba regroups them
        expected[tokens.index(continued)] = 0
    assert flags == expected


def test_text_without_chinese_never_calls_jieba(monkeypatch, sp_tok):
    monkeypatch.setattr(words, "jieba_starts", lambda text: pytest.fail("jieba called"))
    tokens, flags = flags_for(sp_tok, "hello world")
    assert flags == [1, 1]


def test_missing_jieba_is_a_user_error_with_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)  # import jieba → ImportError
    with pytest.raises(UserError, match="pip install jieba"):
        words.jieba_starts("我们")


def test_jieba_loads_quietly(capfd):
    jieba.dt.initialized = False  # force the dictionary load that prints "Building prefix dict..." by default
    jieba.setLogLevel(20)
    assert words.jieba_starts("我们喜欢北京") == [0, 2, 4]
    assert jieba.dt.initialized
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("texts, on", [
    (["The delivery was quick and the food tasted great."] * 50, False),
    (["Ordered from 老王 again, the noodles were great and arrived hot."] * 50, False),  # a Chinese name: 4%
    (["快递太慢了，包装也破了。"] * 10 + ["The delivery was quick."] * 20, True),  # demo-like: a third Chinese rows
    (["東京タワーに行きました。とても楽しかったです。"] * 10, False),  # Japanese: kana, jieba does not apply
    ([], False),
])
def test_auto_rule(texts, on):
    chosen, reason = words.auto_whole_word(texts)
    assert chosen is on
    assert reason.startswith("true:" if on else "false:")


def test_auto_threshold_is_five_percent_of_letters():
    assert words.auto_whole_word(["a" * 95 + "中" * 5])[0] is True
    assert words.auto_whole_word(["a" * 96 + "中" * 4])[0] is False


def zh_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(ZH_WORDS, k=rng.randint(4, 9))) for _ in range(n)]


def jieba_word_of_tokens(tok, text: str) -> list[int]:
    """For each token, the index of the jieba word its first character falls in (computed from jieba directly)."""
    ends = np.cumsum([len(w) for w in jieba.lcut(text)])
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return [int(np.searchsorted(ends, s, side="right")) for s, _ in enc["offset_mapping"]]


@pytest.fixture(scope="module")
def zh_batches(sp_tok, tmp_path_factory):
    """Masked-LM batches over a packed stream of Chinese sentences, as pretraining builds them."""
    texts = zh_sentences(1500)
    folder = tmp_path_factory.mktemp("ww") / "stream"
    build_token_stream(iter(texts), sp_tok, folder, whole_word=True)
    corpus = PackedCorpus.open(folder, 64, sp_tok.cls_token_id)
    masker = Masker(len(sp_tok), sp_tok.all_special_ids, sp_tok.mask_token_id, 0.15, whole_word=True)
    return texts, folder, BlockBatches(corpus, np.arange(corpus.n_blocks), masker, seed=5)


def test_jieba_words_are_masked_together_at_15_percent_of_tokens(sp_tok, zh_batches):
    texts, folder, data = zh_batches
    # the expected word of every stream token, from jieba and the offsets (independent of words.word_starts)
    word_key, base = [], 0
    for text in texts:
        word_key += [base + w for w in jieba_word_of_tokens(sp_tok, text)] + [-1]  # -1: the [SEP]
        base += 1000
    word_key = np.asarray(word_key)
    body = data.corpus.body
    batch = data.collate(np.arange(len(data)), epoch=0)
    labels = batch["labels"][:, 1:].reshape(-1).numpy()  # drop [CLS]: the rest is the stream, block after block
    keys = word_key[:len(labels)]
    selected = labels != IGNORE
    regular = keys >= 0
    assert not selected[~regular].any()
    # every jieba word that lies inside one block is masked whole or not at all
    block_of = np.arange(len(labels)) // body
    partial = multi = 0
    for key in np.unique(keys[regular]):
        where = np.nonzero(keys == key)[0]
        if len(set(block_of[where])) > 1:
            continue
        multi += len(where) > 1
        partial += 0 < selected[where].sum() < len(where)
    assert multi > 2000 and partial == 0
    # ...and no larger unit: neighbouring words are drawn independently (one in, one out: 2 × 0.15 × 0.85)
    change = (keys[1:] != keys[:-1]) & (keys[1:] // 1000 == keys[:-1] // 1000) & regular[1:] & regular[:-1]
    change &= block_of[1:] == block_of[:-1]
    assert change.sum() > 5000
    assert abs((selected[1:] != selected[:-1])[change].mean() - 0.255) < 0.03
    rate = selected[regular].mean()
    assert abs(rate - 0.15) < 0.015, rate  # the token rate stays 15%: each word drawn with probability 0.15
    inputs = batch["input_ids"][:, 1:].reshape(-1).numpy()
    assert abs((inputs[selected] == sp_tok.mask_token_id).mean() - 0.8) < 0.03


def test_whole_word_off_splits_the_same_words(sp_tok, zh_batches):
    """The control: token-level masking on the same stream masks parts of words."""
    texts, folder, data = zh_batches
    flags = torch.from_numpy(np.fromfile(folder / "word_start.bin", dtype=np.uint8)[:data.corpus.body * 40].copy())
    ids = torch.from_numpy(np.fromfile(folder / "tokens.bin", dtype=json.loads(
        (folder / "meta.json").read_text())["dtype"])[:len(flags)].astype(np.int64)).reshape(40, -1)
    flags = flags.reshape(40, -1)
    token_level = Masker(len(sp_tok), sp_tok.all_special_ids, sp_tok.mask_token_id, 0.15)
    _, labels = token_level(ids, torch.Generator().manual_seed(0), flags)
    word = torch.cumsum(flags.long(), dim=1)
    sel = labels != IGNORE
    split_words = sum(len(set(sel[r][word[r] == w].tolist())) > 1 for r in range(40) for w in word[r].unique())
    assert split_words > 50


def test_masks_are_reproducible_per_seed(sp_tok, zh_batches):
    _, _, data = zh_batches
    index = np.arange(16)
    a, b = data.collate(index, epoch=1), data.collate(index.copy(), epoch=1)
    assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["input_ids"], b["input_ids"])
    other = BlockBatches(data.corpus, data.blocks, data.masker, seed=6).collate(index, epoch=1)
    assert not torch.equal(a["labels"], other["labels"])


def _pretrain_config(tmp_path, corpus: list[str], *overrides: str):
    from tuneforge.config import PretrainConfig, load_config

    return load_config(None, PretrainConfig, list(overrides),
                       {"output": str(tmp_path / "run"), "data": {"corpus": corpus}, "model": {"preset": "tiny"}})


def test_auto_is_resolved_from_the_first_texts_of_every_source(tmp_path):
    from tuneforge.recipes.pretrain_data import resolve_whole_word

    en, zh = tmp_path / "en.txt", tmp_path / "zh.txt"
    en.write_text("the delivery was quick and the food tasted great\n" * 2000, encoding="utf-8")
    zh.write_text("\n".join(zh_sentences(200)), encoding="utf-8")
    cfg = _pretrain_config(tmp_path, [str(en), str(zh)])
    assert cfg.mlm.whole_word == "auto"
    resolved, why = resolve_whole_word(cfg, [en, zh])  # 2,000 English lines first: Chinese is still seen
    assert resolved.mlm.whole_word is True and why["mlm.whole_word"].startswith("true: ")
    resolved, why = resolve_whole_word(cfg, [en])
    assert resolved.mlm.whole_word is False and why["mlm.whole_word"].startswith("false: ")
    for fixed in ("mlm.whole_word=false", "mlm.whole_word=true", "objective=clm"):
        cfg = _pretrain_config(tmp_path, [str(zh)], fixed)
        assert resolve_whole_word(cfg, [zh]) == (cfg, {})  # set by the user (or a resumed config.yaml), or clm


# slow: a pretraining run (~10 s). The same logic, fast: test_auto_is_resolved_from_the_first_texts_of_every_source
# (the rule), test_wordpiece_groups_characters_and_keeps_hash_pieces (the stream's word starts).
@pytest.mark.slow
def test_pretrain_on_chinese_masks_jieba_words(tmp_path, capsys):
    """The recipe end to end on Chinese lines: auto turns whole-word masking on, prints and records it."""
    import yaml

    from tuneforge.recipes.pretrain import pretrain

    zh = tmp_path / "zh.txt"
    zh.write_text("\n".join(zh_sentences(300)), encoding="utf-8")
    summary = pretrain(_pretrain_config(
        tmp_path, [str(zh)], "tokenizer.vocab_size=200", "data.block_size=32", "train.max_steps=2",
        "train.batch_size=4", "eval.every_steps=2", "runtime.progress=false", "runtime.threads=1",
        "runtime.device=cpu"))
    assert summary.steps == 2
    assert "auto: mlm.whole_word = true: 100% of the corpus's letters are Han" in capsys.readouterr().err
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["mlm"]["whole_word"] is True
    cache = json.loads((tmp_path / "run" / "corpus.json").read_text())["cache"]
    flags = np.fromfile(f"{cache}/word_start.bin", dtype=np.uint8)
    # the trained WordPiece tokenizer splits every Han character; jieba words of 2-3 characters regroup them
    assert 0.3 < 1 - flags.mean() < 0.6
