"""Camera backends by name: what ``type:`` in a camera's config means.

One typed ``CameraConfig`` serves every backend (a robot.yaml's ``cameras:`` entries and the
``robo camera`` commands); a backend registers a builder that turns it into a ``Camera``. A new
backend (a network stream, another SDK) is one module that calls ``register_camera_backend``.
The twin's cameras are not built from a config: the twin renders its task's cameras
(``rendered.RenderedCamera``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from robo_policies.robots.cameras.camera import Camera
from robo_policies.robots.clock import WALL_CLOCK, Clock
from robo_policies.utils.registry import Registry


@dataclass
class CameraConfig:
    """One camera on a robot."""

    type: str = "opencv"
    """Backend: ``opencv`` (USB/built-in cameras), ``realsense`` (Intel RealSense, the
    ``realsense`` extra) or ``replay`` (a video file or image folder)."""
    device: str = "0"
    """opencv: an index ("0") or a path (/dev/video2); realsense: the serial number ("" or "0":
    the only one connected); replay: the video file or image folder."""
    width: int = 0
    """Frame width to ask for (0: the camera's own)."""
    height: int = 0
    """Frame height to ask for (0: the camera's own)."""
    fps: float = 0.0
    """Frames per second to ask for (0: the camera's own; a replayed folder needs one)."""
    fourcc: str = ""
    """opencv: pixel format to ask for, e.g. MJPG (several USB cameras at 30 fps on one bus)."""
    rotation: int = 0
    """opencv: how the camera is mounted, clockwise degrees (0, 90, 180, 270)."""
    warmup_frames: int = 5
    """opencv: frames dropped after opening while exposure settles."""
    loop: bool = False
    """replay: start over at the end instead of stopping (a stopped replay is a stalled camera)."""
    depth: bool = False
    """realsense: also read depth, aligned to the colour image (``Frame.depth``, millimetres)."""


Builder = Callable[[str, CameraConfig, Clock], Camera]

_BACKENDS: Registry[Builder] = Registry("camera type", "types", builtin_modules=(
    "robo_policies.robots.cameras.registry",))


def register_camera_backend(name: str, builder: Builder) -> Builder:
    """Make ``type: <name>`` build cameras with ``builder(camera name, config, clock)``."""
    return _BACKENDS.add(name, builder)


def camera_types() -> list[str]:
    return _BACKENDS.names()


def make_camera(name: str, config: CameraConfig, clock: Clock = WALL_CLOCK) -> Camera:
    """The camera ``name`` as ``config`` describes it (not connected yet)."""
    return _BACKENDS.get(config.type)(name, config, clock)


def _opencv(name: str, config: CameraConfig, clock: Clock) -> Camera:
    from robo_policies.robots.cameras.opencv import OpenCVCamera

    return OpenCVCamera(name, config.device, config.width, config.height, config.fps, config.fourcc,
                        config.rotation, config.warmup_frames, clock)


def _realsense(name: str, config: CameraConfig, clock: Clock) -> Camera:
    from robo_policies.robots.cameras.realsense import RealSenseCamera

    serial = "" if config.device in ("", "0") else config.device
    return RealSenseCamera(name, serial, config.width, config.height, config.fps, config.depth, clock)


def _replay(name: str, config: CameraConfig, clock: Clock) -> Camera:
    from robo_policies.robots.cameras.replay import ReplayCamera

    return ReplayCamera(name, config.device, config.fps, config.loop, clock)


register_camera_backend("opencv", _opencv)
register_camera_backend("realsense", _realsense)
register_camera_backend("replay", _replay)
