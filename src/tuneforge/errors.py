"""User-facing errors: one line, names the file/line/field and what to do; the CLI maps them to exit code 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input (files, columns, config). Printed as one line, exit code 2."""


def closest(word: str, options: Iterable[str]) -> str:
    """' Did you mean X?' for the closest option, or '' when nothing is close."""
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""
