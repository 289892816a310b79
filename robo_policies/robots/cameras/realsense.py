"""Intel RealSense depth cameras (D405/D435/D455...) through ``pyrealsense2``
(``pip install "robo-policies[realsense]"``; the library needs libusb-1.0 on the machine).

A camera is named by its serial number (``device: "123456789012"``; empty: the only one
connected); ``robo camera list`` prints the serials it finds. The colour stream comes back
RGB at the asked width, height and fps (0: the camera's default); with ``depth: true`` the
depth stream is enabled too, aligned to the colour image, and each ``Frame.depth`` carries it
in millimetres. Depth is read and saved (``robo camera snap``) but not yet a policy input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robo_policies.robots.cameras.camera import CameraError, StreamingCamera
from robo_policies.robots.clock import WALL_CLOCK, Clock

FRAME_TIMEOUT_MS = 2000
"""How long one read waits for the camera before it counts as gone."""


def import_realsense() -> Any:
    """``pyrealsense2``, or an error that says how to install it."""
    try:
        import pyrealsense2
    except ImportError as missing:
        raise CameraError(f'RealSense cameras need pyrealsense2: pip install "robo-policies[realsense]" '
                          f'(and libusb-1.0 on the machine) ({missing})') from missing
    return pyrealsense2


def realsense_serials() -> list[tuple[str, str]]:
    """(serial number, product name) of every RealSense connected."""
    rs = import_realsense()
    return [(device.get_info(rs.camera_info.serial_number), device.get_info(rs.camera_info.name))
            for device in rs.context().query_devices()]


class RealSenseCamera(StreamingCamera):
    """A RealSense's colour stream, and its depth aligned to it with ``depth`` (see the module
    docstring); 0 or "" leaves a setting to the camera."""

    def __init__(self, name: str, serial: str = "", width: int = 0, height: int = 0, fps: float = 0.0,
                 depth: bool = False, clock: Clock = WALL_CLOCK) -> None:
        super().__init__(name, clock)
        self.serial, self.width, self.height, self.requested_fps = serial, width, height, fps
        self.depth = depth
        self._pipeline: Any = None
        self._align: Any = None
        self._depth_to_mm = 1.0

    def _open(self) -> float:
        rs = import_realsense()
        config = rs.config()
        if self.serial:
            config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, int(self.requested_fps))
        if self.depth:
            config.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, int(self.requested_fps))
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(config)
        except RuntimeError as refused:
            where = f"serial {self.serial}" if self.serial else "any connected RealSense"
            raise CameraError(f"camera {self.name!r}: RealSense ({where}) does not start "
                              f"{self.width}x{self.height} at {self.requested_fps:g} fps: {refused} "
                              f"(`robo camera list` shows the serials)") from refused
        self._pipeline = pipeline
        if self.depth:
            self._align = rs.align(rs.stream.color)
            self._depth_to_mm = 1000.0 * profile.get_device().first_depth_sensor().get_depth_scale()
        return float(profile.get_stream(rs.stream.color).as_video_stream_profile().fps())

    def _grab(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        try:
            frames = self._pipeline.wait_for_frames(FRAME_TIMEOUT_MS)
        except RuntimeError as silent:
            raise CameraError(f"camera {self.name!r}: RealSense sent no frame within "
                              f"{FRAME_TIMEOUT_MS} ms ({silent})") from silent
        if self._align is not None:
            frames = self._align.process(frames)
        image = np.array(frames.get_color_frame().get_data(), dtype=np.uint8)  # a copy: the SDK reuses its buffer
        if not self.depth:
            return image
        raw = np.asarray(frames.get_depth_frame().get_data(), dtype=np.float32)
        return image, np.clip(np.round(raw * self._depth_to_mm), 0, np.iinfo(np.uint16).max).astype(np.uint16)

    def _close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = self._align = None
