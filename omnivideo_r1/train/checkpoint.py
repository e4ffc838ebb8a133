"""Atomic, resumable checkpoints: weights (safetensors), optimizer, scheduler, RNG, data position and stage.

A checkpoint is written into `<dir>.tmp` and renamed to `<dir>` only when complete, so a run killed at any moment
(SIGKILL included) leaves either the previous checkpoint or the new one, never half of one. `latest_checkpoint`
ignores leftovers of interrupted writes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

from safetensors import SafetensorError

from ..errors import CheckpointError

STEP_DIR = re.compile(r"^step_(\d+)$")
TRAINER_STATE = "trainer_state.json"


def checkpoint_dir(out_dir: str, step: int) -> str:
    return os.path.join(out_dir, "checkpoints", f"step_{step:06d}")


def latest_checkpoint(out_dir: str) -> str | None:
    """The newest complete checkpoint under out_dir/checkpoints, or None."""
    root = os.path.join(out_dir, "checkpoints")
    if not os.path.isdir(root):
        return None
    steps = []
    for name in os.listdir(root):
        match = STEP_DIR.match(name)
        if match and os.path.exists(os.path.join(root, name, TRAINER_STATE)):
            steps.append((int(match.group(1)), name))
    return os.path.join(root, max(steps)[1]) if steps else None


def save_checkpoint(accelerator, out_dir: str, step: int, trainer_state: dict[str, Any], keep: int) -> str | None:
    """Save the accelerate state (model, optimizer, scheduler, RNG of every process) plus our trainer state.

    All processes must call this (accelerate gathers sharded states); only the main process renames and prunes.
    """
    final = checkpoint_dir(out_dir, step)
    tmp = final + ".tmp"
    if accelerator.is_main_process and os.path.exists(tmp):
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp, safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(os.path.join(tmp, TRAINER_STATE), "w", encoding="utf-8") as fh:
            json.dump(trainer_state, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
        _prune(out_dir, keep)
    accelerator.wait_for_everyone()
    return final


def read_trainer_state(path: str) -> dict[str, Any]:
    """Our trainer state (step, data position, stage, ...) of the step checkpoint `path`, checked."""
    state_file = os.path.join(path, TRAINER_STATE)
    if not os.path.exists(state_file):
        raise FileNotFoundError(f"{path}: not a complete checkpoint (no {TRAINER_STATE}); pick another or start fresh")
    try:
        with open(state_file, encoding="utf-8") as fh:
            state = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{state_file}: not valid JSON ({exc}); {_FIX}") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{state_file}: no integer 'step' in the trainer state; {_FIX}")
    return state


_FIX = "delete this checkpoint folder to use an earlier one, or start without it"


def load_checkpoint(accelerator, path: str) -> dict[str, Any]:
    """Restore the accelerate state and return our trainer state (step, data position, stage, ...)."""
    state = read_trainer_state(path)
    try:
        accelerator.load_state(path)
    # Truncated or garbage files (SafetensorError, pickle/OS errors) or a model whose shapes changed (RuntimeError).
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, EOFError) as exc:
        raise CheckpointError(f"{path}: cannot restore the saved state ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); {_FIX}") from exc
    return state


def _prune(out_dir: str, keep: int) -> None:
    root = os.path.join(out_dir, "checkpoints")
    complete = sorted(n for n in os.listdir(root) if STEP_DIR.match(n))
    for name in complete[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
