"""The fine-tune's quick data check and its report notes (duplicates, conflicts, leakage, redacted PII)."""
from __future__ import annotations

from tuneforge.config import FinetuneConfig
from tuneforge.data.splits import Split
from tuneforge.model.manifest import RunSummary
from tuneforge.recipes.classifier_outputs import _notes
from tuneforge.recipes.finetune import _quick_check


class _Main:
    """What _quick_check uses of the session: say() on the main process."""
    is_main = True

    def say(self, msg: str) -> None:
        import sys

        print(msg, file=sys.stderr)


MAIN = _Main()


def _summary(**fields) -> RunSummary:
    return RunSummary(task="classification", run_dir="r", final="r/final", metrics={}, steps=0, **fields)


def _splits():
    train = Split("train", ["good film", "good film", "bad plot", "dull", "dull", "fine acting"],
                  ["pos", "pos", "neg", "neg", "pos", "pos"], "train.csv")
    test = Split("test", ["bad plot", "a new sentence"], ["neg", "pos"], "test.csv")
    return {"train": train, "test": test}


def test_quick_check_counts_duplicates_conflicts_and_leakage(capsys):
    cfg = FinetuneConfig.model_validate({"data": {"train": "train.csv"}})
    found = _quick_check(cfg, _splits(), MAIN)
    assert found["conflicts"] == 1  # "dull" is both neg and pos
    assert found["leakage"] == 1  # "bad plot" is in train and test
    assert found["duplicates"] >= 2  # "good film" twice, "dull" twice
    assert "data check:" in capsys.readouterr().err
    note = _notes(_splits(), _summary(data_check=found))
    assert any("1 validation/test texts also in train" in n for n in note)


def test_quick_check_off_and_clean_data_adds_no_note():
    cfg = FinetuneConfig.model_validate({"data": {"train": "train.csv", "check": False}})
    assert _quick_check(cfg, _splits(), MAIN) is None
    clean = {"train": Split("train", ["a b", "c d"], ["x", "y"], "t.csv")}
    found = _quick_check(FinetuneConfig.model_validate({"data": {"train": "t.csv"}}), clean, MAIN)
    assert found == {"duplicates": 0, "conflicts": 0, "leakage": 0}
    assert _notes(clean, _summary(data_check=found)) == []


def test_notes_list_redacted_personal_data():
    split = Split("train", ["[EMAIL] wrote"], ["x"], "t.csv", pii={"EMAIL": 1, "PHONE": 0})
    notes = _notes({"train": split}, _summary())
    assert notes == ["Personal data redacted in train (t.csv): EMAIL 1."]
