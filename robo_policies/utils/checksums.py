"""SHA-256 checksums of the files a run saves, so a damaged file is refused at load.

Saved policies list their weights' checksums in ``config.yaml``. Resume states
(``training_state.pt``) carry theirs in a sidecar file, ``training_state.pt.sha256``, written
after the state inside the same atomic checkpoint directory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from robo_policies.utils.errors import CheckpointError

SIDECAR_SUFFIX = ".sha256"


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksum(path: Path) -> None:
    """Record ``path``'s checksum beside it (``<name>.sha256``)."""
    Path(f"{path}{SIDECAR_SUFFIX}").write_text(sha256_of(path) + "\n")


def verify_checksum(path: Path) -> None:
    """CheckpointError unless ``path`` matches the checksum recorded beside it."""
    sidecar = Path(f"{path}{SIDECAR_SUFFIX}")
    if not sidecar.is_file():
        raise CheckpointError(f"{path}: no checksum beside it ({sidecar.name} is missing)")
    if sha256_of(path) != sidecar.read_text().strip():
        raise CheckpointError(f"{path}: checksum mismatch with {sidecar.name} (file modified or damaged)")
