"""A camera that plays a video file or a folder of images at its frame rate.

For tests and offline checks: it behaves like a device (frames arrive one by one, paced in
wall time, from a thread), so the control loop, recording and stall handling run against it
unchanged. When the recording ends the frames stop, as a frozen camera's would, unless
``loop`` starts it over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from robo_policies.robots.cameras.camera import CameraError, StreamingCamera
from robo_policies.robots.clock import WALL_CLOCK, Clock

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class ReplayCamera(StreamingCamera):
    """Plays ``path`` (a video file, or a folder of images in name order) at ``fps``
    (0: the video's own rate; a folder needs one)."""

    def __init__(self, name: str, path: str | Path, fps: float = 0.0, loop: bool = False,
                 clock: Clock = WALL_CLOCK) -> None:
        super().__init__(name, clock)
        self.path = Path(path)
        self.requested_fps = fps
        self.loop = loop
        self._frames_iter: Iterator[np.ndarray] | None = None
        self._next_due = 0.0

    def _open(self) -> float:
        import imageio.v3 as iio

        if not self.path.exists():
            raise CameraError(f"camera {self.name!r}: {self.path} does not exist (replay needs a video file "
                              f"or a folder of {', '.join(IMAGE_SUFFIXES)} images)")
        fps = self.requested_fps
        if not fps and self.path.is_dir():
            raise CameraError(f"camera {self.name!r}: a folder of images has no frame rate; set fps")
        if not fps:
            fps = float(iio.immeta(self.path).get("fps") or 0.0)
            if fps <= 0:
                raise CameraError(f"camera {self.name!r}: {self.path} does not say its frame rate; set fps")
        self._frames_iter = self._recording()
        self._next_due = time.perf_counter()
        return fps

    def _recording(self) -> Iterator[np.ndarray]:
        import imageio.v3 as iio

        while True:
            if self.path.is_dir():
                files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if not files:
                    raise CameraError(f"camera {self.name!r}: {self.path} holds no images")
                yield from (iio.imread(file) for file in files)
            else:
                yield from iio.imiter(self.path)
            if not self.loop:
                return

    def _grab(self) -> np.ndarray | None:
        assert self._frames_iter is not None
        image = next(self._frames_iter, None)
        if image is None:
            return None
        delay = self._next_due - time.perf_counter()  # a device delivers on its own clock
        if delay > 0:
            time.sleep(delay)
        self._next_due = max(self._next_due, time.perf_counter()) + 1.0 / self.fps  # late: no catch-up burst
        return _as_rgb(image, self.name)

    def _close(self) -> None:
        self._frames_iter = None


def _as_rgb(image: np.ndarray, name: str) -> np.ndarray:
    """``(H, W, 3) uint8``: greyscale is repeated, an alpha channel dropped."""
    if image.dtype != np.uint8:
        raise CameraError(f"camera {name!r}: frames must be 8-bit, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise CameraError(f"camera {name!r}: a frame of shape {image.shape} is not an (H, W, 3) image")
    return np.ascontiguousarray(image[:, :, :3])
