"""The quickstart verb end to end on the packaged demo data (shortened with max_steps), as a real
`python -m tuneforge` process: the one fine-tune that goes through the real entry point."""
import json
import re

import pytest
import yaml

from tfi_helpers import assert_ok, run_subprocess


# slow: a real process on the automatically chosen model, multilingual-e5-small, converted into the test's empty
# cache first. Faster tests of the parts: the fine-tune through the CLI in process, test_finetune_cli.py; the preset,
# unit test_presets.py::test_preset_loads_and_has_a_launch_line; the demo data, unit test_demo_data.py::test_demo_
# reviews_are_packaged_balanced_and_bilingual; the choice on the demo, unit test_choose.py::test_the_bilingual_demo_
# picks_the_multilingual_model.
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
    # The demo mixes Chinese into English: auto picks the multilingual model, whose tokenizer covers both, so there
    # is no [UNK] warning and no vocabulary extension; config.yaml records the concrete choice and why.
    assert "model: multilingual-e5-small (auto: " in proc.stderr and "Han (Chinese)" in proc.stderr
    assert "warning:" not in proc.stderr and "vocabulary: added" not in proc.stderr
    config = yaml.safe_load((tmp_path / "qs" / "config.yaml").read_text(encoding="utf-8"))
    assert config["model"]["name"] == "multilingual-e5-small" and "Han (Chinese)" in config["model"]["auto_reason"]
    manifest = json.loads((tmp_path / "qs" / "final" / "tuneforge.json").read_text(encoding="utf-8"))
    assert manifest["base_model"] == "multilingual-e5-small"
    assert manifest["vocab_added"] == 0 and manifest["coverage"]["unk_rate"] < 0.01
    assert (tmp_path / "qs" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "qs" / "report" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
