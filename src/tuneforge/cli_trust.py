"""The trust commands: `data check`, `data redact`, `baseline` and `explain`. Registered on the main app by cli.py."""
from __future__ import annotations

import typer

data_app = typer.Typer(no_args_is_help=True, help="Check a labelled data set (duplicates, leakage, conflicts, suspect labels) and redact personal data.")


def register(app: typer.Typer) -> None:
    """Attach the trust commands to the main `tuneforge` app."""
    app.add_typer(data_app, name="data")
