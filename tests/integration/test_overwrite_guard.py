"""--overwrite only ever deletes TuneForge run folders, never a user's data folder."""
import os
import subprocess
import sys

from conftest import make_rows, write_csv


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, tiny_model):
    data = tmp_path / "data"
    data.mkdir()
    train = write_csv(data / "train.csv", make_rows(40, 1))
    proc = subprocess.run([sys.executable, "-m", "tuneforge", "finetune", "--train", str(train), "--model",
                           str(tiny_model), "--output", str(data), "--overwrite"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "300"},
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "--overwrite only replaces" in proc.stderr
    assert train.is_file()  # nothing lost
