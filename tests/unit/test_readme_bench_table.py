"""The README's benchmark table is rendered from benchmarks/results/*.json; this fails when they drift."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_benchmark_table_matches_results():
    spec = importlib.util.spec_from_file_location("bench_table", ROOT / "benchmarks" / "table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    rendered = table.render()
    assert rendered in (ROOT / "README.md").read_text(encoding="utf-8"), (
        "README benchmark table is stale: run `python benchmarks/table.py --write`")
    assert "sst2_defaults_full.json" in rendered
