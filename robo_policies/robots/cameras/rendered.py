"""A simulated camera: the MuJoCo twin's cameras, rendered when the twin is observed.

The twin's cameras are the ones its image task renders (the same MJCF cameras, size and
renderer settings), so a policy sees in ``robo deploy sim=true`` exactly what it saw in
``robo eval``. They go through the robot's camera path like a device's: frame timestamps on
the robot's clock, frame ages in ``deploy.json``, the stall timeout. There is no capture
thread: a frame is rendered when ``capture()`` is called, so a twin run stays reproducible,
and none is ever dropped (the camera has no rate of its own: ``fps`` stays 0).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from robo_policies.robots.cameras.camera import Camera, CameraError, Frame
from robo_policies.robots.clock import WALL_CLOCK, Clock


class RenderedCamera(Camera):
    """Camera ``name`` whose frames ``render()`` makes on demand.

    Args:
        render: returns the present image, ``(H, W, 3) uint8`` RGB.
    """

    def __init__(self, name: str, render: Callable[[], np.ndarray], clock: Clock = WALL_CLOCK) -> None:
        super().__init__(name, clock)
        self._render = render
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, first_frame_timeout_s: float = 5.0) -> None:
        """Ready to capture; the first frame is rendered by the first ``capture()``."""
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def capture(self) -> Frame:
        """Render the present scene as the newest frame."""
        if not self._connected:
            raise CameraError(f"camera {self.name!r} is not connected")
        self._store(self._render())
        return self.latest()
