"""Library loggers held quiet for a stretch of work, where TuneForge says the one line that matters itself."""
from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def quieted(name: str | None = None, level: int = logging.ERROR):
    """Raise logger `name` (None: the root logger) to `level` inside the block; its own level comes back after."""
    log = logging.getLogger(name)
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)
