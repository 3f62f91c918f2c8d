"""`tuneforge translate` in process (cli.main) on the tiny MBart: same line count, empty lines kept empty, the same
text as the Translator, bad input one line with exit 2 and nothing written; the finetune flags of --task translation
reach the config, and a translation run's summary prints BLEU and chrF."""
from __future__ import annotations

import sys

import pytest
from translate_helpers import build_tiny_mbart

import tuneforge

LINES = ["a man is riding a bike .", "", "zwei kinder spielen im park", "   ", "the dog", "der hund ?"]


@pytest.fixture(scope="module")
def mbart_dir(tmp_path_factory):
    return build_tiny_mbart(tmp_path_factory.mktemp("mbart") / "tiny-mbart")


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    from tuneforge import cli

    monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
        sys.exit(0)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def _one_error_line(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_translate_keeps_every_line_in_place(mbart_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "src.txt").write_text("\n".join(LINES) + "\r\n", encoding="utf-8")  # a CRLF end is tolerated
    code, out, err = _main(monkeypatch, capsys, "translate", "--model", mbart_dir, "--input", tmp_path / "src.txt",
                           "--output", tmp_path / "out" / "hyp.txt", "--beams", "2", "--batch-size", "2",
                           "--max-length", "8", "--threads", "1")
    assert code == 0, err
    hyps = (tmp_path / "out" / "hyp.txt").read_text(encoding="utf-8").split("\n")
    assert hyps[-1] == "" and len(hyps[:-1]) == len(LINES)  # one line per input line, newline-terminated
    translator = tuneforge.load(str(mbart_dir), precision="auto")  # translate's default: bf16 on native-bf16 CPUs
    # (the default cap is per sentence, so batching would not matter either: tests/unit/generate/test_beam.py)
    want = [translator.translate([line], beams=2, max_new_tokens=8)[0] if line.strip() else "" for line in LINES]
    assert hyps[:-1] == want and all(want[i] for i in (0, 2, 4, 5))
    assert "wrote 6 lines" in out and "4 translated with beam 2 on onnxruntime" in out and "2 empty kept empty" in out
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "hyp.txt"]  # no temp file left


def test_recipe_progress_and_one_line_outputs():
    from tuneforge.recipes.translate import one_line, read_lines, translate_lines

    class Echo:  # the Translator's contract: "" for empty texts, progress(n) per finished batch of n
        def translate(self, texts, progress=None, **options):
            progress(1)
            progress(2)
            progress(1)
            return [t.upper() + "\nsecond line" if t else "" for t in texts]

    seen = []
    out = translate_lines(Echo(), ["bb", "", "a", "ccc"], progress=lambda d, t: seen.append((d, t)))
    assert out == ["BB second line", "", "A second line", "CCC second line"]
    assert seen == [(1, 4), (3, 4), (4, 4)]
    assert one_line("a\r\n b \n\nc") == "a b c" and one_line("plain") == "plain"
    assert read_lines.__doc__


def test_read_lines_splits_on_newlines_only(tmp_path):
    from tuneforge.recipes.translate import read_lines

    (tmp_path / "a.txt").write_bytes("\ufeffone\u2028still one\r\ntwo\n\nfour".encode("utf-8"))
    assert read_lines(str(tmp_path / "a.txt")) == ["one\u2028still one", "two", "", "four"]
    (tmp_path / "empty.txt").write_bytes(b"")
    assert read_lines(str(tmp_path / "empty.txt")) == []


def test_bad_input_is_one_line_exit_2_and_nothing_written(mbart_dir, tiny_model, tmp_path, monkeypatch, capsys):
    (tmp_path / "src.txt").write_text("a man\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("ok\nstra\xdfe\n".encode("latin-1"))
    base = ["translate", "--input", tmp_path / "src.txt", "--output", tmp_path / "hyp.txt"]
    cases = [
        ([*base, "--model", mbart_dir, "--beams", "0"], ["--beams 0"]),
        ([*base, "--model", mbart_dir, "--max-length", "0"], ["--max-length 0"]),
        ([*base, "--model", mbart_dir, "--precision", "int8"], ["precision 'int8'", "auto, fp32, bf16"]),
        ([*base, "--model", mbart_dir, "--decoder", "tensorrt"], ["--decoder tensorrt", "auto, torch, onnx"]),
        ([*base, "--model", tiny_model], ["bert", "not an encoder-decoder"]),
        ([*base, "--model", tmp_path / "nowhere"], ["nowhere"]),
        (["translate", "--model", mbart_dir, "--input", tmp_path / "missing.txt", "--output", tmp_path / "hyp.txt"],
         ["missing.txt", "no such file"]),
        (["translate", "--model", mbart_dir, "--input", tmp_path / "latin1.txt", "--output", tmp_path / "hyp.txt"],
         ["latin1.txt:2", "UTF-8"]),
    ]
    for args, needles in cases:
        code, _, err = _main(monkeypatch, capsys, *args)
        _one_error_line(code, err, *needles)
        assert not (tmp_path / "hyp.txt").exists()


def test_finetune_translation_flags_reach_the_config_and_scores_print(monkeypatch, capsys, tmp_path):
    from tuneforge.model.manifest import RunSummary
    from tuneforge.recipes import finetune as recipe

    seen = {}

    def fake_finetune(cfg, resume=False, overwrite=False):
        seen["cfg"] = cfg
        metrics = {"validation": {"bleu": 31.234, "chrf": 58.01, "loss": 1.9},
                   "test": {"bleu": 35.5, "chrf": 61.2, "loss": 1.8}}
        return RunSummary(task=cfg.task, run_dir=str(tmp_path), final=str(tmp_path / "final"), metrics=metrics,
                          steps=120, tokens=45000, tokens_per_s=1500.0, stop_reason="budget",
                          report=str(tmp_path / "report" / "report.html"))

    monkeypatch.setattr(recipe, "finetune", fake_finetune)
    code, out, err = _main(monkeypatch, capsys, "finetune", "--task", "translation", "--source-file", "train.en",
                           "--target-file", "train.de", "--source-lang", "en", "--target-lang", "de",
                           "--source-column", "src", "--target-column", "tgt", "--preset", "tiny", "--beams", "2",
                           "-o", tmp_path / "run")
    assert code == 0, err
    cfg = seen["cfg"]
    assert cfg.task == "translation" and cfg.model.preset == "tiny" and cfg.eval.beams == 2
    d = cfg.data
    assert (d.source_file, d.target_file, d.source_lang, d.target_lang, d.source_column, d.target_column) == \
        ("train.en", "train.de", "en", "de", "src", "tgt")
    assert "validation: BLEU 31.23 (chrF 58.01) · test: BLEU 35.50 (chrF 61.20)" in out
    assert "120 steps" in out and "stopped by budget" in out and "report:" in out
    code, _, err = _main(monkeypatch, capsys, "finetune", "--task", "translation", "--beams", "0")
    assert code == 2 and "beams" in err


def test_a_run_folder_translates_its_input_cleaned_as_training_cleaned_it(mbart_dir, tmp_path):
    """A folder whose tuneforge.json says the run normalised its text (data.normalize) gets each input cleaned the
    same way (NFKC, whitespace collapsed); a folder without that record reads the text as given."""
    import json
    import shutil

    from tuneforge.generate.translate import Translator

    plain = Translator.load(str(mbart_dir))
    assert not plain.normalize
    run = shutil.copytree(mbart_dir, tmp_path / "run-final")
    (run / "tuneforge.json").write_text(json.dumps({"task": "translation", "max_length": 64, "normalize": True}))
    cleaned = Translator.load(str(run))
    assert cleaned.normalize
    assert cleaned.source_ids(["ｔｈｅ   ｄｏｇ"]) == plain.source_ids(["the dog"]) != plain.source_ids(["ｔｈｅ   ｄｏｇ"])
