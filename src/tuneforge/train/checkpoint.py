"""Checkpoints: full training state via Accelerate, written to a temp folder and renamed when complete."""
from __future__ import annotations

import json
import logging
import re
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

STATE_FILE = "loop_state.json"  # written last: its presence marks a complete checkpoint
_STEP = re.compile(r"^step-(\d+)$")


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(run_dir)
    found = [(int(m.group(1)), p) for p in root.glob("step-*") if (m := _STEP.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(accelerator, run_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Every process calls this (Accelerate saves per-process RNG state); the main process finalises."""
    root = checkpoints_dir(run_dir)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    # Tied MLM decoder/embedding weights are saved once; Accelerate warns about that on every save.
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: Path) -> dict:
    accelerator.load_state(str(path))
    return json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))


def save_best(model, run_dir: Path, step: int) -> None:
    """The best weights so far, kept apart from the rolling checkpoints; the step is stored in the file. `model`
    is a module, or a state dict (under FSDP: the full one, gathered from the shards)."""
    best = checkpoints_dir(run_dir) / "best"
    best.mkdir(parents=True, exist_ok=True)
    tmp = best / ".model.safetensors.tmp"
    weights = model if isinstance(model, dict) else model.state_dict()
    state = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    save_file(_untie(state), str(tmp), metadata={"step": str(step)})
    tmp.replace(best / "model.safetensors")


def _best_path(run_dir: Path, step: int | None) -> Path | None:
    """The best-weights file — only if it holds the weights saved at `step` (a crash between saving them and the
    step's checkpoint can leave a newer file than the resumed state knows about); None otherwise."""
    from safetensors import safe_open

    path = checkpoints_dir(run_dir) / "best" / "model.safetensors"
    if not path.is_file():
        return None
    if step is not None:
        with safe_open(str(path), framework="pt") as fh:
            if (fh.metadata() or {}).get("step") != str(step):
                return None
    return path


def read_best(run_dir: Path, step: int | None = None) -> dict[str, torch.Tensor] | None:
    """The best weights as a state dict (see `_best_path`); None when there are none for `step`."""
    path = _best_path(run_dir, step)
    return load_file(str(path)) if path is not None else None


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}


def load_best(model, run_dir: Path, step: int | None = None) -> bool:
    """Load the best weights into `model` (see `_best_path`); False when there are none for `step`.

    Read with plain file reads straight into the parameters' memory: no state dict beside the model (a 470 MB
    transient for multilingual-e5-small through `load_file`) and no memory map whose pages count in this process's
    RSS. Strict as `load_state_dict`: the file's keys, shapes and dtypes must be the model's."""
    import json as _json

    import sys

    path = _best_path(run_dir, step)
    if path is None:
        return False
    target = {k: v for k, v in model.state_dict().items()}
    if sys.byteorder != "little" or any(v.dtype not in _SAFETENSORS_DTYPES.values() for v in target.values()):
        model.load_state_dict(load_file(str(path)), strict=True)  # safetensors is little-endian; rare dtypes
        return True
    with path.open("rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
        header.pop("__metadata__", None)
        if set(header) != set(target):
            missing, unexpected = sorted(set(target) - set(header)), sorted(set(header) - set(target))
            raise RuntimeError(f"{path}: the best weights do not fit the model (missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]})")
        start = 8 + size
        with torch.no_grad():
            for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                tensor = target[name]
                if _SAFETENSORS_DTYPES.get(info["dtype"]) != tensor.dtype or list(tensor.shape) != info["shape"]:
                    raise RuntimeError(f"{path}: '{name}' is {info['dtype']} {info['shape']} in the file, "
                                       f"{tensor.dtype} {list(tensor.shape)} in the model")
                begin, end = info["data_offsets"]
                fh.seek(start + begin)
                if tensor.is_contiguous() and tensor.device.type == "cpu" and tensor.numel():
                    view = tensor.view(-1).view(torch.uint8).numpy()
                    if fh.readinto(memoryview(view)) != end - begin:
                        raise RuntimeError(f"{path}: truncated at '{name}'")
                else:  # another device or layout: through a temporary copy
                    data = bytearray(fh.read(end - begin))
                    tensor.copy_(torch.frombuffer(data, dtype=tensor.dtype).reshape(tensor.shape)
                                 if data else torch.empty(tensor.shape, dtype=tensor.dtype))
    return True


def load_best_sharded(accelerator, model, run_dir: Path, step: int | None = None) -> bool:
    """FSDP: the main process reads the best weights and every rank takes its shard of them (all ranks call this)."""
    from accelerate.utils import broadcast_object_list
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    state = (read_best(run_dir, step) if accelerator.is_main_process else None) or {}
    found = broadcast_object_list([bool(state)])[0]
    if found:
        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    return found


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage (tied embeddings); clone the repeats.
    seen, out = set(), {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out
