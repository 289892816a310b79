"""Cameras for real robots: one non-blocking ``Camera`` interface and its backends.

``camera.py`` (the interface, its capture thread, frame age and drops), ``opencv.py`` (USB
cameras, the ``cameras`` extra), ``replay.py`` (a video file or image folder played as a
device), ``registry.py`` (``CameraConfig`` and the backends by ``type``).
"""

from robo_policies.robots.cameras.camera import Camera, CameraError, CameraStats, Frame
from robo_policies.robots.cameras.registry import CameraConfig, camera_types, make_camera, register_camera_backend

__all__ = ["Camera", "CameraConfig", "CameraError", "CameraStats", "Frame", "camera_types", "make_camera",
           "register_camera_backend"]
