"""Cameras for real robots: one non-blocking ``Camera`` interface and its backends.

``camera.py`` (the interface, the capture thread of devices, frame age and drops),
``opencv.py`` (USB cameras, the ``cameras`` extra), ``realsense.py`` (Intel RealSense colour
and depth, the ``realsense`` extra), ``replay.py`` (a video file or image folder played as a
device), ``rendered.py`` (the MuJoCo twin's cameras), ``registry.py`` (``CameraConfig`` and
the backends by ``type``), ``tools.py`` (what ``robo camera`` does).
"""

from robo_policies.robots.cameras.camera import Camera, CameraError, CameraStats, Frame
from robo_policies.robots.cameras.registry import CameraConfig, camera_types, make_camera, register_camera_backend

__all__ = ["Camera", "CameraConfig", "CameraError", "CameraStats", "Frame", "camera_types", "make_camera",
           "register_camera_backend"]
