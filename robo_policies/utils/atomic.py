"""Atomic outputs: a file or directory appears complete at its final path, or not at all.

Writers build their output at a temporary sibling path and rename it into place only once
it is complete, so a crash, an error or Ctrl-C never leaves a half-written dataset, checkpoint
or report behind. Used by the dataset converters, policy checkpoints and evaluation reports.
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(dst: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write; move it to ``dst`` when the block succeeds.

    The temporary path (``DST.tmp-XXXXXXXX``) does not exist yet: the caller creates a file
    or a directory there. On success it replaces ``dst`` (an existing ``dst`` is moved aside
    first and deleted only after the new one is in place); on any exception, including
    KeyboardInterrupt, the temporary output is deleted and ``dst`` is left as it was.

    Raises ``FileExistsError`` up front if ``dst`` exists and ``overwrite`` is False.
    """
    dst = Path(dst)
    restore_interrupted(dst)
    if _exists(dst) and not overwrite:
        raise FileExistsError(f"{dst} already exists; pass overwrite=True to replace it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.name}.tmp-{secrets.token_hex(4)}")
    try:
        yield tmp
        if not _exists(tmp):
            raise RuntimeError(f"nothing was written at {tmp}")
        _move_into_place(tmp, dst, overwrite)
    except BaseException:
        _remove(tmp)
        raise


def _move_into_place(tmp: Path, dst: Path, overwrite: bool) -> None:
    if not _exists(dst):
        os.replace(tmp, dst)
        return
    if not overwrite:  # dst appeared while we were writing
        raise FileExistsError(f"{dst} already exists; pass overwrite=True to replace it")
    if tmp.is_file() and dst.is_file() and not dst.is_symlink():
        os.replace(tmp, dst)  # atomic replacement of one file by another
        return
    # A directory cannot be replaced in one step: move the old one aside, move the new one
    # in, and only then delete the old one (restoring it if the second move fails).
    aside = dst.with_name(f"{dst.name}.old-{secrets.token_hex(4)}")
    os.replace(dst, aside)
    try:
        os.replace(tmp, dst)
    except BaseException:
        os.replace(aside, dst)
        raise
    _remove(aside)


def restore_interrupted(dst: str | Path) -> None:
    """Put back the directory a replacement moved aside, when a kill struck between its two
    moves (``dst`` is then missing and ``DST.old-XXXXXXXX`` holds the last complete one).
    Readers that must find ``dst`` after a crash call this first."""
    dst = Path(dst)
    if _exists(dst):
        return
    aside = sorted(dst.parent.glob(f"{dst.name}.old-*")) if dst.parent.is_dir() else []
    if len(aside) == 1:
        os.replace(aside[0], dst)


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif _exists(path):
        path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, replacing any existing file."""
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text)
