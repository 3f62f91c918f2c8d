"""Translation scores (sacreBLEU BLEU/chrF, signatures, bootstrap intervals, tokenizer choice), the translation
report (Markdown + HTML + PNGs, written atomically) and the translation model card."""
from __future__ import annotations

import json

import pytest
import sacrebleu
import yaml

from tuneforge.evaluate.translation import (bleu_chrf, pick_tokenizer, quick_bleu, scored_examples, sentence_scores,
                                            token_counts)
from tuneforge.evaluate.translation_card import translation_model_card
from tuneforge.evaluate.translation_report import averaging_sentence, best_and_worst, write_translation_report
from tuneforge.model.manifest import Manifest

PNG = b"\x89PNG\r\n\x1a\n"
V = sacrebleu.__version__
# A small example scored with the sacreBLEU command line:
#   sacrebleu ref.txt -i hyp.txt -m bleu chrf -w 4 --confidence --confidence-n 200
#   BLEU|nrefs:1|bs:200|seed:12345|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0
#       = 46.4293 (μ = 44.1257 ± 23.2689)
#   chrF2|nrefs:1|bs:200|seed:12345|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0
#       = 60.1772 (μ = 59.4795 ± 12.4644)
HYPS = ["The cat sat on the mat.", "A man is riding a horse on the beach.", "Two dogs play in the snow, don't they?"]
REFS = ["The cat is sitting on the mat.", "A man rides a horse along the beach.",
        "Two dogs are playing in the snow, don't they?"]
ZH_REFS = ["一只猫坐在垫子上。", "一个男人在海滩上骑马。", "两只狗在雪地里玩耍。"]
ZH_HYPS = ["猫坐在那个垫子上。", "一个男人在沙滩上骑马。", "两只狗在雪里玩。"]


def test_identical_hypotheses_score_100_and_the_interval_holds_it():
    refs = ["A dog runs on the grass.", "Two people walk down a busy street.", "A child plays with a red ball."] * 4
    s = bleu_chrf(refs, refs, bootstrap=100)
    assert s["bleu"] == 100 and s["chrf"] == 100 and s["length_ratio"] == 1.0 and s["bp"] == 1.0
    for key in ("bleu", "chrf"):
        lo, hi = s[f"{key}_ci"]
        assert lo <= s[key] <= hi
    assert "bs:100" in s["bleu_signature"] and "seed:12345" in s["bleu_signature"] and s["sentences"] == 12


def test_known_example_equals_the_sacrebleu_command_line():
    plain = bleu_chrf(HYPS, REFS, bootstrap=0)
    assert plain["bleu"] == pytest.approx(46.4293, abs=1e-4) and plain["chrf"] == pytest.approx(60.1772, abs=1e-4)
    assert plain["bleu_signature"] == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{V}"
    assert plain["chrf_signature"] == f"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:{V}"
    assert "bleu_ci" not in plain and plain["sys_len"] == 27 and plain["ref_len"] == 28
    assert plain["length_ratio"] == pytest.approx(27 / 28, abs=1e-4)
    boot = bleu_chrf(HYPS, REFS, bootstrap=200)
    assert boot["bleu_ci"] == pytest.approx([44.1257 - 23.2689, 44.1257 + 23.2689], abs=1e-3)
    assert boot["chrf_ci"] == pytest.approx([59.4795 - 12.4644, 59.4795 + 12.4644], abs=1e-3)
    assert boot["bleu_signature"] == f"nrefs:1|bs:200|seed:12345|case:mixed|eff:no|tok:13a|smooth:exp|version:{V}"
    assert bleu_chrf(HYPS, REFS, bootstrap=200, seed=7)["bleu_ci"] != boot["bleu_ci"]
    assert quick_bleu(HYPS, REFS) == pytest.approx(46.4293, abs=1e-4)


def test_detokenised_text_is_scored_as_given():
    refs = ["Don't stop, it's fine.", "She said: \"yes\"."]
    assert bleu_chrf(list(refs), refs, bootstrap=0)["bleu"] == 100  # 13a keeps "don't" whole on both sides
    moses = ["Do n't stop , it 's fine .", "She said : \" yes \" ."]  # tokenised output is not undone for you
    assert quick_bleu(moses, refs) < 60
    assert quick_bleu(["don't stop, it's fine.", "she said: \"yes\"."], refs) < 100  # cased
    assert quick_bleu(HYPS, REFS) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)


def test_tokenizer_follows_the_reference_script():
    assert pick_tokenizer(REFS) == "13a" and pick_tokenizer(["", "123 !"]) == "13a"
    assert pick_tokenizer(ZH_REFS) == "zh" and pick_tokenizer(["猫がマットの上に座っている。"]) == "char"
    s = bleu_chrf(ZH_HYPS, ZH_REFS, bootstrap=0)
    assert s["tokenize"] == "zh" and "tok:zh" in s["bleu_signature"]
    assert s["bleu"] == pytest.approx(sacrebleu.corpus_bleu(ZH_HYPS, [ZH_REFS], tokenize="zh").score, abs=1e-4)
    assert s["bleu"] > 20 > sacrebleu.corpus_bleu(ZH_HYPS, [ZH_REFS]).score  # 13a: one "word" per sentence
    assert token_counts(ZH_REFS[:1], "zh") == [9] and token_counts(REFS[:1], "13a") == [8]


def test_sentence_scores_and_best_worst_lists():
    scores = sentence_scores(HYPS + REFS[:1], REFS + REFS[:1])
    assert scores[-1] == 100 and all(0 < s < 100 for s in scores[:-1])
    ex = scored_examples(["s1", "s2", "s3"], REFS, HYPS, rows=[4, 9, 12])
    assert [e["row"] for e in ex] == [4, 9, 12] and ex[0]["hypothesis"] == HYPS[0] and ex[0]["score"] == scores[0]
    best, worst = best_and_worst(ex, k=2)
    assert len(best) == 2 and len(worst) == 1 and not {e["row"] for e in best} & {e["row"] for e in worst}
    assert best[0]["score"] >= best[1]["score"] >= worst[0]["score"]
    with pytest.raises(ValueError):
        bleu_chrf(HYPS, REFS[:2])


def _history() -> list[dict]:
    train = [{"step": s, "loss": 5.0 / s, "lr": 1e-3, "tokens_per_s": 900.0} for s in range(1, 31)]
    val = [{"step": s, "split": "validation", "loss": 6.0 / s, "bleu": 3.0 * s ** 0.5, "train_seconds": 20.0 * s}
           for s in (10, 20, 30)]
    return sorted(train + val, key=lambda r: r["step"])


def _view(hyps, refs, sources) -> dict:
    scores = {"validation": {**bleu_chrf(hyps, refs, bootstrap=50), "loss": 1.234},
              "test": bleu_chrf(hyps, refs, bootstrap=50)}
    return {"title": "TuneForge translation: en → xx", "scores": scores, "history": _history(),
            "examples": scored_examples(sources, refs, hyps), "examples_split": "test",
            "facts": [("model", "from scratch, preset mini"), ("optimizer steps", "30 (stopped by max_steps)")],
            "averaging": {"checkpoints": 5, "metric": "bleu", "best_single": 30.1, "average": 31.0, "kept": "average"},
            "decoding": {"beams": 4, "length_penalty": 1.0, "max_new_tokens": None, "no_repeat_ngram": 0},
            "notes": ["2 training pairs were left out (empty target)."]}


def _pngs_ok(folder):
    for name in ("loss_curve.png", "bleu_curve.png", "lengths.png"):
        assert (folder / name).read_bytes()[:8] == PNG


def test_report_is_written_atomically_with_scores_and_signatures(tmp_path):
    sources = ["Die Katze <b>sitzt</b> auf der Matte.", "Ein Mann reitet | am Strand.", "Zwei Hunde spielen."]
    view = _view(HYPS, REFS, sources)
    md_path, html_path = write_translation_report(tmp_path / "report", view)
    md, page = md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")
    test = view["scores"]["test"]
    for text in (md, page):
        assert f"BLEU {test['bleu']:.1f} (95% CI {test['bleu_ci'][0]:.1f}–{test['bleu_ci'][1]:.1f})" in text
        assert test["bleu_signature"] in text and test["chrf_signature"] in text
        assert "last 5 checkpoints were averaged" in text and "Beam search with 4 beams" in text
        assert "1.2340" in text and "bleu_curve.png" in text and "from scratch, preset mini" in text
    assert "&lt;b&gt;sitzt&lt;/b&gt;" in page and "<b>sitzt" not in page  # data is escaped in the HTML
    assert "reitet \\| am Strand" in md
    _pngs_ok(md_path.parent)
    saved = json.loads((md_path.parent / "metrics.json").read_text(encoding="utf-8"))
    assert saved["scores"]["test"]["bleu"] == test["bleu"] and saved["headline_split"] == "test"
    assert not [p.name for p in md_path.parent.iterdir() if ".tmp" in p.name]  # atomic: no temp file left


def test_chinese_report_uses_zh_and_renders(tmp_path):
    view = _view(ZH_HYPS, ZH_REFS, ["A cat sits on the mat.", "A man rides on the beach.", "Two dogs play."])
    view["averaging"] = None
    md_path, _ = write_translation_report(tmp_path, view)
    md = md_path.read_text(encoding="utf-8")
    assert "tok:zh" in md and "一只猫坐在垫子上。" in md and "No checkpoint averaging" in md
    _pngs_ok(tmp_path)


def test_averaging_sentence_says_what_was_kept():
    text = averaging_sentence({"checkpoints": 3, "metric": "loss", "best_single": 2.1, "average": 2.3,
                               "kept": "best single checkpoint"})
    assert "last 3 checkpoints" in text and "best single checkpoint was kept" in text


def test_model_card_front_matter_and_scores():
    scores = {"validation": bleu_chrf(HYPS, REFS, bootstrap=0), "test": bleu_chrf(HYPS, REFS, bootstrap=50)}
    manifest = Manifest(task="translation", max_length=128, training={"steps": 30},
                        data={"train": {"source": "data/train.en + data/train.de", "rows": 29000, "sha256": "ab"},
                              "test": {"source": "data/test_2016_flickr.en", "rows": 3, "sha256": "cd"}})
    card = translation_model_card(manifest, scores, config_yaml="task: translation\n", source_lang="en",
                                  target_lang="de", preset="mini", averaging=None,
                                  decoding={"beams": 4, "length_penalty": 1.0, "max_new_tokens": None})
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["pipeline_tag"] == "translation" and front["language"] == ["en", "de"]
    assert "base_model" not in front
    metrics = front["model-index"][0]["results"][0]["metrics"]
    assert [(m["type"], m["value"]) for m in metrics] == [("bleu", 46.43), ("chrf", 60.18)]
    assert scores["test"]["bleu_signature"] in card and "trained from scratch (preset `mini`" in card
    assert "translates en → de" in card and "Trained from scratch on 29,000 pairs" in card
    assert "AutoModelForSeq2SeqLM" in card and "num_beams=4" in card and "task: translation" in card
