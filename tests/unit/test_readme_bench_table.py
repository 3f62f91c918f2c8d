"""The README's benchmark table is rendered from benchmarks/results/*.json; this fails when they drift.

The renderer is a command, `python -m benchmarks.table --check`, run here as a user or CI would run it: tests import
nothing from benchmarks/ (and benchmarks/ nothing from tests/), so the check goes through the command line.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_benchmark_table_matches_results():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.table", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # stale: run `python -m benchmarks.table --write`
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- bench-table -->" in readme and "sst2_defaults_full.json" in readme
