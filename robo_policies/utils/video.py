"""An mp4 file written frame by frame (rollout videos, dataset episode views).

Frames stream into a temporary sibling file that is moved into place only by ``finish``, so a
crash or an error never leaves a truncated video at the path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import imageio
import numpy as np


class Mp4Writer:
    """Streams frames into one mp4, written to a temp file and moved into place on finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fps: float | None = None
        self._tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.mp4'}")
        self._writer: Any = None
        self._size: tuple[int, int] | None = None

    def append(self, frame: np.ndarray) -> None:
        """Write one (H, W, 3) uint8 frame; every frame must have the first one's size."""
        # H.264 in yuv420p needs even sizes: pad by replicating the last row/column.
        pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = imageio.get_writer(
                self._tmp, format="FFMPEG", fps=self.fps or 10, macro_block_size=1
            )
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:
            raise ValueError(f"render size changed from {self._size} to {frame.shape[:2]}")
        self._writer.append_data(frame)

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._tmp.unlink(missing_ok=True)
