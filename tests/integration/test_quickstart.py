"""The quickstart verb end to end on the packaged demo data (shortened with max_steps)."""
import os
import subprocess
import sys

import pytest


@pytest.mark.integration
def test_quickstart_runs_offline_and_prints_results(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "tuneforge", "quickstart", "--output", str(tmp_path / "qs"),
                           "--set", "train.max_steps=6", "--set", "runtime.progress=false"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "report:" in out and "test" in out
    assert out.count("predict:") == 2
    # The demo mixes Chinese into an English model: the coverage check must fire and extend the vocabulary.
    assert "[UNK]" in proc.stderr and "vocabulary: added" in proc.stderr
    assert (tmp_path / "qs" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "qs" / "report" / "confusion_matrix.png").is_file()
