"""What ``robo camera list|snap|check`` do: find video devices and the modes they take, save
one frame, measure a camera as the control loop will see it (achieved fps, frame age,
dropped frames)."""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robo_policies.robots.cameras.camera import CameraError
from robo_policies.robots.cameras.opencv import capture_mode, device_source, import_cv2
from robo_policies.robots.cameras.registry import CameraConfig, make_camera
from robo_policies.utils.atomic import atomic_output


CANDIDATE_MODES = tuple((width, height, fps) for width, height in (
    (320, 240), (640, 480), (800, 600), (1280, 720), (1280, 960), (1920, 1080)) for fps in (15, 30, 60))
"""Common USB camera modes ``robo camera list modes=true`` tries on each device."""


@dataclass
class VideoDevice:
    """A device OpenCV was asked to open, the mode it opened in, and the modes it takes."""

    device: str
    opened: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    modes: tuple[tuple[int, int, float], ...] = ()
    """(width, height, fps) of ``CANDIDATE_MODES`` the device read back as set (when probed)."""


def find_cameras(devices: list[str] | None = None, probe_modes: bool = False) -> list[VideoDevice]:
    """Each of ``devices`` (default: every ``/dev/video*``) opened once with OpenCV: whether it
    opens and its default mode. (Many USB cameras show two nodes; the metadata node does not open.)
    ``probe_modes``: also set each of ``CANDIDATE_MODES`` and keep those the driver reads back
    unchanged (OpenCV cannot list a device's modes; a driver adjusts what it does not take)."""
    cv2 = import_cv2()
    found = []
    for device in devices if devices is not None else sorted(glob.glob("/dev/video*")):
        capture = cv2.VideoCapture(device_source(device))
        if not capture.isOpened():
            found.append(VideoDevice(device, opened=False))
            continue
        mode = capture_mode(capture)
        modes = _accepted_modes(capture) if probe_modes else ()
        found.append(VideoDevice(device, True, int(mode["width"]), int(mode["height"]), float(mode["fps"]), modes))
        capture.release()
    return found


def _accepted_modes(capture: Any) -> tuple[tuple[int, int, float], ...]:
    cv2 = import_cv2()
    accepted = []
    for width, height, fps in CANDIDATE_MODES:
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                            (cv2.CAP_PROP_FPS, fps)):
            capture.set(prop, value)
        mode = capture_mode(capture)
        if (mode["width"], mode["height"]) == (width, height) and abs(mode["fps"] - fps) <= 0.5:
            accepted.append((width, height, float(fps)))
    return tuple(accepted)


def snap(name: str, config: CameraConfig, out: str | Path) -> list[Path]:
    """Connect, take the newest frame after warm-up, save it (PNG/JPEG by suffix, atomically);
    a depth camera's depth goes beside it as ``<out stem>_depth.png`` (16-bit, millimetres).
    Returns the files written."""
    import imageio.v3 as iio

    with make_camera(name, config) as camera:
        frame = camera.latest()
    out = Path(out)
    written = [(out, frame.image, out.suffix or ".png")]
    if frame.depth is not None:
        written.append((out.with_name(f"{out.stem}_depth.png"), frame.depth, ".png"))
    for path, image, extension in written:
        with atomic_output(path, overwrite=True) as tmp:
            iio.imwrite(tmp, image, extension=extension)
    return [path for path, _, _ in written]


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
