"""The bundled demo data set ships with the package and has the promised shape."""
import csv
import importlib.resources
import re


def test_demo_reviews_are_packaged_balanced_and_bilingual():
    folder = importlib.resources.files("tuneforge.resources.demo")
    assert (folder / "README.md").is_file()
    with (folder / "reviews.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 300
    labels = {r["label"] for r in rows}
    assert labels == {"negative", "neutral", "positive"}
    counts = [sum(r["label"] == name for r in rows) for name in sorted(labels)]
    assert max(counts) - min(counts) <= 10
    chinese = sum(bool(re.search(r"[\u4e00-\u9fff]", r["text"])) for r in rows)
    assert 0.15 * len(rows) < chinese < 0.5 * len(rows)
    assert len({r["text"] for r in rows}) == len(rows)
