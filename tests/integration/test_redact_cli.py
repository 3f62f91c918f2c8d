"""`tuneforge data redact IN OUT --text-column text`: the CLI (in process, through its `main`) on a small CSV."""
from __future__ import annotations

import csv

from tfi_helpers import assert_ok, assert_user_error, run_cli, write_csv

ROWS = [
    ("write to ann@example.com or call 13812345678", "a"),
    ("no personal data here, version 2.10.3.1 ", "b"),
    ("身份证 11010519491231002X，卡号 4111 1111 1111 1111", "a"),
    ("see https://example.com/x from 192.168.0.7", "b"),
]


def test_redact_csv(tmp_path):
    write_csv(tmp_path / "in.csv", ROWS)
    proc = run_cli(["data", "redact", "in.csv", "out.csv", "--text-column", "text"], cwd=tmp_path, timeout=120)
    assert_ok(proc)
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["text", "label"]
    assert [r[0] for r in rows[1:]] == ["write to [EMAIL] or call [PHONE]", ROWS[1][0], "身份证 [CN_ID]，卡号 [CARD]",
                                        "see [URL] from [IP]"]
    assert [r[1] for r in rows[1:]] == ["a", "b", "a", "b"]
    counts = {k: v for k, v in (line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2) if k.isupper()}
    assert counts == {"URL": "1", "EMAIL": "1", "IBAN": "0", "CN_ID": "1", "CARD": "1", "IP": "1", "PHONE": "1"}
    assert "rows: 4, changed: 3" in proc.stdout


def test_missing_column_is_one_line_exit_2(tmp_path):
    write_csv(tmp_path / "in.csv", ROWS)
    proc = run_cli(["data", "redact", "in.csv", "out.csv", "--text-column", "body"], cwd=tmp_path, timeout=120)
    assert_user_error(proc, "in.csv", "body")
    assert not (tmp_path / "out.csv").exists()
