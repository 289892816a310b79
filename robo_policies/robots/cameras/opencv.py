"""USB and built-in cameras through OpenCV (``pip install "robo-policies[cameras]"``).

A camera is named by index (``"0"``) or device path (``/dev/video2``, or a video file, which
OpenCV opens the same way). The requested width, height and fps are asked for and then read
back: a camera that silently runs another mode (a common surprise with USB cameras) is an
error naming both. MJPG (``fourcc``) lets several USB cameras share a bus at 30 fps. Frames
come back RGB, rotated as mounted, after a warm-up that drops the first frames (auto-exposure
settles on them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robo_policies.robots.cameras.camera import CameraError, StreamingCamera
from robo_policies.robots.clock import WALL_CLOCK, Clock

ROTATIONS = (0, 90, 180, 270)
"""Mounting rotations, clockwise degrees."""


def import_cv2() -> Any:
    """OpenCV, or an error that says how to install it."""
    try:
        import cv2
    except ImportError as missing:
        raise CameraError('OpenCV cameras need opencv-python-headless: pip install "robo-policies[cameras]"') \
            from missing
    return cv2


def capture_mode(capture: Any) -> dict[str, float]:
    """The width, height and fps an opened ``cv2.VideoCapture`` runs at."""
    cv2 = import_cv2()
    return {"width": capture.get(cv2.CAP_PROP_FRAME_WIDTH), "height": capture.get(cv2.CAP_PROP_FRAME_HEIGHT),
            "fps": capture.get(cv2.CAP_PROP_FPS)}


def device_source(device: str) -> int | str:
    """OpenCV's source for ``device``: an index for digits, else the path as given."""
    return int(device) if device.isdigit() else device


class OpenCVCamera(StreamingCamera):
    """An OpenCV ``VideoCapture`` (see the module docstring); 0 or "" leaves a setting to the camera."""

    def __init__(self, name: str, device: str = "0", width: int = 0, height: int = 0, fps: float = 0.0,
                 fourcc: str = "", rotation: int = 0, warmup_frames: int = 5, clock: Clock = WALL_CLOCK) -> None:
        super().__init__(name, clock)
        if rotation not in ROTATIONS:
            raise CameraError(f"camera {name!r}: rotation {rotation} is not one of {ROTATIONS}")
        if fourcc and len(fourcc) != 4:
            raise CameraError(f"camera {name!r}: fourcc {fourcc!r} must be 4 characters (e.g. MJPG)")
        self.device, self.width, self.height = device, width, height
        self.requested_fps, self.fourcc, self.rotation = fps, fourcc, rotation
        self.warmup_frames = warmup_frames
        self._capture: Any = None

    def _open(self) -> float:
        cv2 = import_cv2()
        capture = cv2.VideoCapture(device_source(self.device))
        if not capture.isOpened():
            raise CameraError(f"camera {self.name!r}: OpenCV cannot open {self.device!r} (see `robo camera list`)")
        if self.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.requested_fps)):
            if value:
                capture.set(prop, value)
        actual = capture_mode(capture)
        requested = {"width": self.width, "height": self.height, "fps": self.requested_fps}
        wrong = {key: (value, actual[key]) for key, value in requested.items()
                 if value and abs(actual[key] - value) > (0.5 if key == "fps" else 0)}
        if wrong:
            capture.release()
            described = ", ".join(f"{key} {want:g} (it runs {got:g})" for key, (want, got) in wrong.items())
            raise CameraError(f"camera {self.name!r} ({self.device}) does not take {described}; "
                              f"`robo camera list` shows its modes")
        self._capture = capture
        for _ in range(self.warmup_frames):
            self._grab()
        return float(actual["fps"] or self.requested_fps)

    def _grab(self) -> np.ndarray | None:
        cv2 = import_cv2()
        ok, image = self._capture.read()
        if not ok:
            raise CameraError(f"OpenCV read no frame from {self.device!r}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.rotation:
            image = np.rot90(image, k=-self.rotation // 90)
        return np.ascontiguousarray(image)

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
