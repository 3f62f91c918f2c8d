"""Run folders shared by every training recipe: refuse to clobber, resume from the newest checkpoint."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tuneforge.errors import UserError
from tuneforge.train.checkpoint import latest_checkpoint, load_checkpoint
from tuneforge.train.loop import LoopState


def say(accelerator, msg: str) -> None:
    if accelerator.is_main_process:
        print(msg, file=sys.stderr, flush=True)


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    if overwrite and run_dir.exists():
        if any(run_dir.iterdir()) and not any((run_dir / n).exists() for n in ("config.yaml", "checkpoints", "final")):
            raise UserError(f"{run_dir}: --overwrite only replaces TuneForge run folders, and this one is not "
                            "(no config.yaml, checkpoints/ or final/). Choose another --output.")
        shutil.rmtree(run_dir)
    busy = (run_dir / "final").exists() or (run_dir / "checkpoints").exists()
    if busy and not resume:
        raise UserError(f"{run_dir}: already holds a run. Pass --resume to continue it, --overwrite to replace it, "
                        "or choose another --output.")
    if resume and not latest_checkpoint(run_dir) and (run_dir / "final").exists():
        raise UserError(f"{run_dir}: the run already finished (final/ exists); nothing to resume.")


def resume_state(accelerator, run_dir: Path) -> LoopState:
    ckpt = latest_checkpoint(run_dir)
    if not ckpt:
        say(accelerator, f"no complete checkpoint in {run_dir}; starting from the beginning")
        return LoopState()
    state = LoopState(**load_checkpoint(accelerator, ckpt))
    say(accelerator, f"resuming from {ckpt} (step {state.step})")
    return state
