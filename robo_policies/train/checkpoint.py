"""Training checkpoints: a saved policy plus the state needed to resume training exactly.

``<run>/checkpoints/step_000500/`` holds the policy files (``model.safetensors``,
``ema.safetensors``, ``config.yaml``) and ``training_state.pt`` (with its checksum; optimiser, learning-rate
schedule, EMA, step and random-number-generator states). Each directory is written at a
temporary path and renamed into place; ``<run>/checkpoints/last`` names the newest complete
one and is itself replaced atomically, so a kill at any moment leaves a usable checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from robo_policies.utils.atomic import atomic_output, atomic_write_text
from robo_policies.utils.checksums import verify_checksum, write_checksum
from robo_policies.policy import Policy

STATE_FILE = "training_state.pt"
LAST_POINTER = "last"


def save_checkpoint(
    run_dir: Path,
    step: int,
    policy: Policy,
    ema: Policy,
    state: dict[str, Any],
    keep: int,
    metadata: dict[str, Any],
) -> Path:
    """Write checkpoint ``step`` atomically, point ``last`` at it and keep the newest ``keep``."""
    checkpoints = run_dir / "checkpoints"
    directory = checkpoints / f"step_{step:07d}"
    with atomic_output(directory, overwrite=True) as tmp:
        policy.save(tmp, ema=ema, metadata=metadata)
        torch.save(state, tmp / STATE_FILE)
        write_checksum(tmp / STATE_FILE)
    atomic_write_text(checkpoints / LAST_POINTER, directory.name + "\n")
    for old in sorted(checkpoints.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return directory


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None if it has none."""
    pointer = run_dir / "checkpoints" / LAST_POINTER
    if not pointer.is_file():
        return None
    directory = pointer.parent / pointer.read_text().strip()
    if not (directory / STATE_FILE).is_file():
        raise FileNotFoundError(f"{pointer} names {directory}, which has no {STATE_FILE}")
    return directory


def load_training_state(directory: Path) -> dict[str, Any]:
    """The resume state of a checkpoint, checked against its checksum and loaded without
    executing pickled code."""
    verify_checksum(directory / STATE_FILE)
    return torch.load(directory / STATE_FILE, weights_only=True)
