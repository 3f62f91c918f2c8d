"""The quickstart verb end to end on the packaged demo data (shortened with max_steps), as a real
`python -m tuneforge` process: the one fine-tune that goes through the real entry point."""
import re

import pytest

from tfi_helpers import assert_ok, run_subprocess


# slow: a real process on the real default model. Faster tests of the parts: the fine-tune through the CLI in
# process, test_finetune_cli.py; the preset, unit test_presets.py::test_preset_loads_and_has_a_launch_line; the demo
# data, unit test_demo_data.py::test_demo_reviews_are_packaged_balanced_and_bilingual; the [UNK] warning and the
# vocabulary extension, unit test_coverage.py::test_warning_names_model_and_suggests_chinese_model and
# test_vocab.py::test_extend_vocabulary_removes_unknowns.
@pytest.mark.slow
@pytest.mark.integration
def test_quickstart_runs_offline_and_prints_results(tmp_path):
    proc = run_subprocess(["quickstart", "--output", tmp_path / "qs", "--set", "train.max_steps=6",
                           "--set", "runtime.progress=false"], cwd=tmp_path, timeout=600, COLUMNS="200")
    assert_ok(proc)
    out = proc.stdout
    assert "report:" in out and "test" in out
    assert out.count("predict:") == 2
    for line in (ln for ln in out.splitlines() if ln.startswith("predict:")):  # "→ label  (negative 0.36, ...)"
        label = line.split("→ ")[1].split()[0]
        probs = {k: float(v) for k, v in re.findall(r"(negative|neutral|positive) ([0-9.]+)", line.split("→ ")[1])}
        assert set(probs) == {"negative", "neutral", "positive"}, line
        assert probs[label] == max(probs.values()) and abs(sum(probs.values()) - 1) <= 0.015, line
    # The demo mixes Chinese into an English model: the coverage check must fire and extend the vocabulary.
    assert "[UNK]" in proc.stderr and "vocabulary: added" in proc.stderr
    assert (tmp_path / "qs" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "qs" / "report" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
