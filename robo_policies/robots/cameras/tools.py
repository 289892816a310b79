"""What ``robo camera list|snap|check`` do: find video devices, save one frame, measure a
camera as the control loop will see it (achieved fps, frame age, dropped frames)."""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robo_policies.robots.cameras.camera import CameraError
from robo_policies.robots.cameras.opencv import capture_mode, device_source, import_cv2
from robo_policies.robots.cameras.registry import CameraConfig, make_camera
from robo_policies.utils.atomic import atomic_output


@dataclass
class VideoDevice:
    """A device OpenCV was asked to open, and the mode it opened in."""

    device: str
    opened: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0


def find_cameras(devices: list[str] | None = None) -> list[VideoDevice]:
    """Each of ``devices`` (default: every ``/dev/video*``) opened once with OpenCV: whether it
    opens and its default mode. (Many USB cameras show two nodes; the metadata node does not open.)"""
    cv2 = import_cv2()
    found = []
    for device in devices if devices is not None else sorted(glob.glob("/dev/video*")):
        capture = cv2.VideoCapture(device_source(device))
        if not capture.isOpened():
            found.append(VideoDevice(device, opened=False))
            continue
        mode = capture_mode(capture)
        found.append(VideoDevice(device, True, int(mode["width"]), int(mode["height"]), float(mode["fps"])))
        capture.release()
    return found


def snap(name: str, config: CameraConfig, out: str | Path) -> np.ndarray:
    """Connect, take the newest frame after warm-up, save it (PNG/JPEG by suffix, atomically)."""
    import imageio.v3 as iio

    with make_camera(name, config) as camera:
        image = camera.latest().image
    out = Path(out)
    with atomic_output(out, overwrite=True) as tmp:
        iio.imwrite(tmp, image, extension=out.suffix or ".png")
    return image


@dataclass
class CameraReport:
    """One camera measured over ``seconds`` of reads at the control loop's rate."""

    name: str
    fps_configured: float
    fps_achieved: float
    frames: int
    dropped: int
    frame_age_ms_p50: float
    frame_age_ms_p99: float
    read_ms_p99: float
    """How long ``latest()`` took: what the control loop pays per camera."""
    shape: tuple[int, ...]


def check_camera(name: str, config: CameraConfig, seconds: float = 3.0, read_hz: float = 50.0) -> CameraReport:
    """Read camera ``name`` at ``read_hz`` for ``seconds`` as a control loop would (wall time)."""
    with make_camera(name, config) as camera:
        first = camera.latest()
        ages, reads = [], []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            before = time.perf_counter()
            frame = camera.latest()
            reads.append(time.perf_counter() - before)
            ages.append(camera.clock.now() - frame.timestamp)
            time.sleep(1.0 / read_hz)
        last = camera.latest()
        elapsed = last.timestamp - first.timestamp
        stats = camera.stats()
    if last.index == first.index:
        raise CameraError(f"camera {name!r} delivered one frame in {seconds:g} s and then stopped")
    return CameraReport(
        name=name, fps_configured=stats.fps, fps_achieved=round((last.index - first.index) / elapsed, 2),
        frames=stats.frames, dropped=stats.dropped,
        frame_age_ms_p50=round(1000 * float(np.percentile(ages, 50)), 2),
        frame_age_ms_p99=round(1000 * float(np.percentile(ages, 99)), 2),
        read_ms_p99=round(1000 * float(np.percentile(reads, 99)), 3), shape=tuple(last.image.shape))
