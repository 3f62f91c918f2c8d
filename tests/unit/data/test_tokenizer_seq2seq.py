"""The seq2seq tokenizer family (SentencePiece-style unigram for encoder-decoders, as T5/Marian): specials in id
order, </s> appended to every text, cased, and decode(encode(s)) == s for English, German and Chinese text, also
after a save/load with AutoTokenizer; `tuneforge tokenizer train --type seq2seq` trains it."""
from __future__ import annotations

import random

import pytest

from tuneforge.config.schema import CorpusConfig, TokenizerConfig
from tuneforge.data.tokenizer_train import ALL_FAMILIES, FAMILIES, SEQ2SEQ_FAMILIES, is_cjk, train_tokenizer
from tuneforge.recipes.tokenizer import train_tokenizer_folder

EN = ["A man in a blue shirt is standing on a ladder.", "Two young, White males are outside near many bushes.",
      "Several men in hard hats are operating a giant pulley system.", "A little girl climbing into a wooden playhouse.",
      "People are fixing the roof of a house.", "Don't stop: the café opens at 9 o'clock!"]
DE = ["Ein Mann in einem blauen Hemd steht auf einer Leiter.", "Zwei junge weiße Männer sind im Freien in der Nähe "
      "vieler Büsche.", "Mehrere Männer mit Schutzhelmen bedienen ein Antriebsradsystem.", "Ein kleines Mädchen "
      "klettert in ein Spielhaus aus Holz.", "Leute reparieren das Dach eines Hauses.", "Größe: 3,5 m, „Grüße“ (ß)."]
# NFKC-stable Chinese (full-width commas would come back as ',' : the family normalises with NFKC, as data.normalize)
ZH = ["我爱北京天安门。", "今天天气很好。", "我们去公园散步吧!", "北京是中国的首都。", "他喜欢读书和写字。"]
UNSEEN = ["A girl in a blue shirt is climbing a ladder.", "Zwei Männer reparieren das Dach.", "我们爱北京。",
          "Ein Mann im Freien, der café Büsche sieht.", "people fixing  the roof"]  # a double space is kept


def corpus(seed: int = 0) -> list[str]:
    """The sentences above, and shuffled recombinations of their words, so the unigram has statistics to learn."""
    rng = random.Random(seed)
    words = " ".join(EN + DE).split()
    mixed = [" ".join(rng.sample(words, rng.randint(4, 10))) for _ in range(400)]
    return (EN + DE + ZH) * 10 + mixed


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(trained, reloaded with AutoTokenizer)."""
    from transformers import AutoTokenizer

    tok = train_tokenizer(corpus(), "seq2seq", vocab_size=300, model_max_length=128)
    folder = tmp_path_factory.mktemp("seq2seq")
    tok.save_pretrained(folder)
    return tok, AutoTokenizer.from_pretrained(folder)


def test_family_is_separate_from_the_pretraining_families():
    assert "seq2seq" not in FAMILIES and ALL_FAMILIES["seq2seq"] == SEQ2SEQ_FAMILIES["seq2seq"]


def test_specials_take_ids_0_to_3_with_their_roles(pair):
    for t in pair:
        assert [t.convert_tokens_to_ids(s) for s in ("<pad>", "</s>", "<unk>", "<s>")] == [0, 1, 2, 3]
        assert (t.pad_token, t.eos_token, t.unk_token, t.bos_token) == ("<pad>", "</s>", "<unk>", "<s>")
        assert (t.pad_token_id, t.eos_token_id, t.unk_token_id, t.bos_token_id) == (0, 1, 2, 3)
        assert t.model_max_length == 128


def test_every_text_ends_with_eos_and_nothing_else_is_added(pair):
    for t in pair:
        ids = t("A man on a ladder.")["input_ids"]
        plain = t("A man on a ladder.", add_special_tokens=False)["input_ids"]
        assert ids == plain + [t.eos_token_id] and t.eos_token_id not in plain
        assert t.bos_token_id not in ids and t.pad_token_id not in ids


@pytest.mark.parametrize("text", EN + DE + ZH + UNSEEN)
def test_round_trip_is_exact_before_and_after_reload(pair, text):
    tok, loaded = pair
    ids = tok(text)["input_ids"]
    assert loaded(text)["input_ids"] == ids
    assert tok.unk_token_id not in ids, text
    assert loaded.decode(ids, skip_special_tokens=True) == text


def test_text_target_gives_labels_ending_in_eos(pair):
    for t in pair:
        enc = t("Ein Mann steht.", text_target="A man is standing.")
        assert enc["input_ids"] == t("Ein Mann steht.")["input_ids"]
        assert enc["labels"] == t("A man is standing.")["input_ids"] and enc["labels"][-1] == t.eos_token_id
        batch = t(["Ein Mann.", "Leute reparieren das Dach eines Hauses."], text_target=["A man.", "People."],
                  padding=True)
        assert [[x for x in row if x != t.pad_token_id][-1] for row in batch["labels"]] == [t.eos_token_id] * 2


def test_cased_and_accents_kept_by_default(pair):
    tok, _ = pair
    ids = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert ids("Hemd") != ids("hemd") and ids("Männer") != ids("Manner")
    lower = train_tokenizer(corpus(), "seq2seq", vocab_size=300, lowercase=True)
    assert lower("Hemd")["input_ids"] == lower("hemd")["input_ids"]
    assert lower.init_kwargs["tuneforge_tokenizer"] == {"type": "seq2seq", "lowercase": True, "strip_accents": True}
    assert tok.init_kwargs["tuneforge_tokenizer"] == {"type": "seq2seq", "lowercase": False, "strip_accents": False}


def test_chinese_is_one_piece_per_character(pair):
    _, loaded = pair
    text = "北京是中国的首都。"
    pieces = [p.lstrip("▁") for p in loaded.convert_ids_to_tokens(loaded(text, add_special_tokens=False)["input_ids"])]
    assert [p for p in pieces if p] == list(text)
    assert all(sum(is_cjk(c) for c in p) <= 1 for p in pieces)


def test_tokenizer_train_recipe_accepts_seq2seq_and_keeps_case_unless_told(tmp_path):
    from transformers import AutoTokenizer

    src = tmp_path / "corpus.txt"
    src.write_text("\n".join(corpus()) + "\n", encoding="utf-8")
    data = CorpusConfig(corpus=[str(src)])
    info = train_tokenizer_folder(data, TokenizerConfig(type="seq2seq", vocab_size=300), tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert info["vocab_size"] == len(loaded) <= 300 and loaded.eos_token_id == 1
    assert loaded.decode(loaded("Zwei Männer im Freien.")["input_ids"], skip_special_tokens=True) == \
        "Zwei Männer im Freien."
    train_tokenizer_folder(data, TokenizerConfig(type="seq2seq", vocab_size=300, lowercase=True), tmp_path / "low")
    low = AutoTokenizer.from_pretrained(tmp_path / "low")
    assert low.decode(low("Zwei Männer.")["input_ids"], skip_special_tokens=True) == "zwei manner."  # accents follow lowercase
