"""The self-describing model folder (`final/`): HF weights + tokenizer + tuneforge.json manifest, written atomically
(the manifest's fields are in `model.manifest`)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from tuneforge.model.manifest import MANIFEST, Manifest


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written folder into place; readers never see a half-written `final`."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def save_model_folder(model, tokenizer, out: Path, manifest: Manifest, extra_files: dict[str, str] | None = None) -> Path:
    """Write model + tokenizer + manifest (stamped with time, versions and git sha) into `out` atomically (via a
    temp sibling folder)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / MANIFEST).write_text(manifest.stamped().to_json(), encoding="utf-8")
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    replace_dir(tmp, out)
    return out


def claim_folder(folder: Path, kind: str, ours: bool, busy: bool = False, resume: bool = False,
                 overwrite: bool = False, replaces: bool = False) -> None:
    """The one output-folder guard (run folders, pipelines, exports): a folder that is not a TuneForge `kind`
    folder (`ours`) is never replaced; one that holds work (`busy`) only with --resume or --overwrite.
    `replaces`: the caller swaps in its result atomically (an export), so an earlier one of ours may go."""
    from tuneforge.errors import UserError

    folder = Path(folder)
    if folder.is_file():
        raise UserError(f"{folder}: is a file; give a folder path.")
    foreign = folder.is_dir() and any(folder.iterdir()) and not ours
    if foreign and (overwrite or replaces):
        flag = "--overwrite only replaces" if overwrite else "--output only replaces"
        raise UserError(f"{folder}: {flag} TuneForge {kind} folders, and this one is not a TuneForge {kind}; "
                        "choose a new folder or delete it.")
    if overwrite and folder.exists():
        shutil.rmtree(folder)
    elif busy and not resume:
        raise UserError(f"{folder}: already holds a {kind}. Pass --resume to continue it, --overwrite to replace "
                        "it, or choose another --output.")
