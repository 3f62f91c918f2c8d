"""--overwrite only ever deletes TuneForge run folders, never a user's data folder."""
from tfi_helpers import assert_user_error, make_rows, run_cli, write_csv


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, tiny_model):
    data = tmp_path / "data"
    data.mkdir()
    train = write_csv(data / "train.csv", make_rows(40, 1))
    (data / "notes.txt").write_text("mine", encoding="utf-8")
    proc = run_cli(["finetune", "--train", train, "--model", tiny_model, "--output", data, "--overwrite"],
                   cwd=tmp_path)
    assert_user_error(proc, "--overwrite only replaces", str(data))
    assert train.read_text(encoding="utf-8").splitlines()[0] == "text,label"  # nothing lost
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt", "train.csv"]
    assert (data / "notes.txt").read_text(encoding="utf-8") == "mine"
