"""Camera frames read on demand: array-likes the window sampler indexes like a zarr array.

A LeRobot camera is decoded from an mp4 (:class:`~.video.VideoFrames`) or from PNG bytes in
the data parquet (:class:`PngFrames`, feature dtype ``image``); both behave as an (N, H, W, 3)
uint8 array whose ``[rows]`` decodes only those rows, so a training batch decodes only the
frames of its windows. They pickle (a spawned loader worker gets its own copy and reopens
files lazily).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from robo_policies.utils.errors import DatasetError


class LazyFrames:
    """(N, H, W, 3) uint8 frames, decoded when indexed. Subclasses implement :meth:`_read`."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, length: int, frame_shape: tuple[int, int, int]) -> None:
        self.shape = (length, *frame_shape)
        self.chunks = (1, *frame_shape)
        """One frame per chunk, as the zarr layout stores cameras (the validator reads by chunks)."""

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        """Frames at ``index`` (an int, a slice or an integer array of rows)."""
        rows = np.arange(len(self))[index]
        if np.ndim(rows) == 0:
            return self._read(np.atleast_1d(rows))[0]
        return self._read(rows.ravel()).reshape(*rows.shape, *self.shape[1:])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        frames = self[:]
        return frames if dtype is None else frames.astype(dtype)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class PngFrames(LazyFrames):
    """Frames stored as PNG bytes, one per row (LeRobot's ``image`` dtype)."""

    def __init__(self, images: list[bytes], frame_shape: tuple[int, int, int], name: str) -> None:
        super().__init__(len(images), frame_shape)
        self._images = images
        self._name = name

    def _read(self, rows: np.ndarray) -> np.ndarray:
        from PIL import Image

        frames = np.empty((len(rows), *self.shape[1:]), np.uint8)
        for out, row in enumerate(rows):
            try:
                frame = np.asarray(Image.open(io.BytesIO(self._images[row])).convert("RGB"))
            except Exception as err:  # PIL raises several types for damaged bytes
                raise DatasetError(f"{self._name}: row {row} is not a readable image ({err})") from err
            if frame.shape != self.shape[1:]:
                raise DatasetError(f"{self._name}: row {row} is {frame.shape}, the feature says {self.shape[1:]}")
            frames[out] = frame
        return frames
