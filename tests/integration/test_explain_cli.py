"""`tuneforge explain` through the CLI on the fine-tuned toy model: terminal lines, the HTML view, one-line errors."""
from __future__ import annotations

import shutil

import pytest

from tfi_helpers import assert_ok, assert_user_error, run_cli, trained_run

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the suite shares two cores


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    return trained_run(tmp_path_factory, tiny_model)


def test_explain_prints_and_writes_html(trained, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("the hotel was poor\n\nugly broken delivery\n", encoding="utf-8")
    out = tmp_path / "tmp" / "explain.html"
    proc = run_cli(["explain", "--model", trained["final"], "--text", "this phone is superb and the app is excellent",
                    "--text", "the service was awful", "--file", texts, "--steps", "32", "--output", out],
                   cwd=tmp_path, **ONE_THREAD)
    assert_ok(proc)
    lines = proc.stdout.splitlines()
    labels = [ln.split("→ ")[1].split(" ")[0] for ln in lines if "→ " in ln]
    assert labels == ["positive", "negative", "negative", "negative"], proc.stdout  # blank file line skipped
    assert "this phone is superb and the app is excellent" in lines
    assert "top: superb" in proc.stdout or "top: excellent" in proc.stdout, proc.stdout
    assert f"html: {out}" in proc.stdout
    page = out.read_text(encoding="utf-8")
    assert page.count("<section>") == 4
    for token in ("superb", "excellent", "awful", "poor", "delivery"):
        assert f">{token}</span>" in page, token
    assert "completeness gap" in page and "predicted <b>positive</b>" in page
    assert [p.name for p in out.parent.iterdir()] == ["explain.html"]  # atomic: no temp file left


def test_pieces_and_target(trained, tmp_path):
    out = tmp_path / "pieces.html"
    proc = run_cli(["explain", "--model", trained["final"], "--text", "great xyzzy", "--target", "negative",
                    "--pieces", "--steps", "8", "--output", out], cwd=tmp_path, **ONE_THREAD)
    assert_ok(proc)
    assert "explaining negative" in proc.stdout
    page = out.read_text(encoding="utf-8")
    assert ">##y</span>" in page and ">x</span>" in page  # word pieces, not merged words
    assert "explaining <b>negative</b>" in page


def test_onnx_folder_is_refused(trained, tmp_path):
    """An export folder: config + tokenizer + model.onnx, no PyTorch weights (a stand-in graph file is enough)."""
    folder = tmp_path / "exported"
    shutil.copytree(trained["final"], folder)
    (folder / "model.safetensors").unlink()
    (folder / "model.onnx").write_bytes(b"onnx")
    proc = run_cli(["explain", "--model", folder, "--text", "good"], cwd=tmp_path)
    assert_user_error(proc, "ONNX", "runs/x/final")
    assert not (tmp_path / "explain.html").exists()


@pytest.mark.parametrize("case", ["missing", "encoder", "target", "no-text"])
def test_one_line_errors(trained, tiny_model, tmp_path, case):
    args = {"missing": ["--model", tmp_path / "nope", "--text", "good"],
            "encoder": ["--model", tiny_model, "--text", "good"],
            "target": ["--model", trained["final"], "--text", "good", "--target", "postive"],
            "no-text": ["--model", trained["final"]]}[case]
    needles = {"missing": ["does not exist"], "encoder": ["classification head"],
               "target": ["--target 'postive'", "negative, positive", "Did you mean 'positive'"],
               "no-text": ["--text", "--file"]}[case]
    proc = run_cli(["explain", *args], cwd=tmp_path, **ONE_THREAD)
    assert_user_error(proc, *needles)
    assert not (tmp_path / "explain.html").exists()
