"""The ``Camera`` interface: the latest frame, captured by a background thread.

A control loop must never wait for a camera: a USB camera delivers a frame every 33 ms at
30 fps, and a read that blocks until the next one would eat most of a 50 Hz period. So each
camera captures in a thread of its own from ``connect()`` to ``disconnect()``, and ``latest()``
returns at once the newest frame with the time it was captured. What users of robot cameras
get bitten by is made visible: a frame's age (how old the image the policy sees really is),
frames the camera should have delivered at its fps but did not, and a camera that silently
froze (``latest(max_age_s=...)`` raises instead of handing out an old image).

``Camera`` keeps the newest frame and its bookkeeping; ``StreamingCamera`` adds the capture
thread a device needs. A device backend provides ``_open`` (reach the device, return the fps
it runs at), ``_grab`` (block until the next image and return it as ``(H, W, 3) uint8`` RGB,
or None when the device has no more to give) and ``_close``. A simulated camera
(``rendered.RenderedCamera``) has no thread: its frames are made when the simulation asks.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from robo_policies.robots.clock import WALL_CLOCK, Clock
from robo_policies.utils.errors import DeviceFault

LATE_FACTOR = 1.5
"""A gap longer than this many frame periods between two captures counts the missing frames as dropped."""


class CameraError(DeviceFault):
    """A camera that cannot be opened, delivers nothing, or delivers frames too old to use."""


@dataclass(frozen=True)
class Frame:
    """One captured image."""

    image: np.ndarray
    """``(H, W, 3) uint8``, RGB."""
    timestamp: float
    """The camera's ``clock.now()`` when the image arrived."""
    index: int
    """Images captured since ``connect()`` (0 for the first)."""
    depth: np.ndarray | None = None
    """A depth camera's ``(H, W) uint16`` millimetres, aligned to ``image`` (0: no reading)."""


@dataclass(frozen=True)
class CameraStats:
    """What a camera delivered since ``connect()``."""

    frames: int
    dropped: int
    """Frames the camera should have delivered at its fps but did not (gaps between captures)."""
    fps: float
    """The rate the camera said it runs at."""


class Camera(ABC):
    """A camera read without blocking (see the module docstring).

    Args:
        name: what the camera is called on its robot (``front``, ``wrist``); every error names it.
        clock: the time of frame timestamps and ages (the robot's clock).
    """

    def __init__(self, name: str, clock: Clock = WALL_CLOCK) -> None:
        self.name = name
        self.clock = clock
        self.fps = 0.0
        self._latest: Frame | None = None
        self._frames = 0
        self._dropped = 0
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """Between ``connect()`` and ``disconnect()``."""

    @abstractmethod
    def connect(self, first_frame_timeout_s: float = 5.0) -> None:
        """Start delivering frames (a device waits for its first one)."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop delivering frames and release what the camera holds; safe to call twice."""

    def wait_for_frame(self, timeout_s: float, after: int = -1) -> Frame:
        """The first frame whose index is above ``after``, waiting up to ``timeout_s`` of wall time."""
        with self._new_frame:
            arrived = self._new_frame.wait_for(
                lambda: self._failure is not None or (self._latest is not None and self._latest.index > after),
                timeout=timeout_s)
            self._raise_failure()
            if not arrived:
                raise CameraError(f"camera {self.name!r} delivered no frame within {timeout_s:g} s")
            assert self._latest is not None
            return self._latest

    def latest(self, max_age_s: float | None = None) -> Frame:
        """The newest frame, at once. With ``max_age_s``, a frame older than that is an error:
        the camera stalled, and acting on what it saw then is not safe."""
        with self._lock:
            self._raise_failure()
            frame = self._latest
        if frame is None:
            raise CameraError(f"camera {self.name!r} has no frame yet (connect() it first)")
        age = self.clock.now() - frame.timestamp
        if max_age_s is not None and age > max_age_s:
            raise CameraError(f"camera {self.name!r} stalled: its newest frame is {age:.3f} s old "
                              f"(limit {max_age_s:g} s)")
        return frame

    def stats(self) -> CameraStats:
        with self._lock:
            return CameraStats(frames=self._frames, dropped=self._dropped, fps=self.fps)

    def __enter__(self) -> Camera:
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.disconnect()

    # -- frames in -------------------------------------------------------------------------

    def _store(self, image: np.ndarray, depth: np.ndarray | None = None) -> None:
        now = self.clock.now()
        with self._new_frame:
            previous = self._latest
            if previous is not None and self.fps > 0:
                gap = (now - previous.timestamp) * self.fps
                if gap > LATE_FACTOR:
                    self._dropped += int(round(gap)) - 1
            self._latest = Frame(image=image, timestamp=now, index=self._frames, depth=depth)
            self._frames += 1
            self._new_frame.notify_all()

    def _raise_failure(self) -> None:
        if isinstance(self._failure, CameraError):  # already says which camera and what
            raise CameraError(str(self._failure)) from self._failure
        if self._failure is not None:
            raise CameraError(f"camera {self.name!r} failed: {self._failure}") from self._failure


class StreamingCamera(Camera):
    """A device camera: a thread captures from ``connect()`` to ``disconnect()`` (see the
    module docstring for what a backend provides)."""

    def __init__(self, name: str, clock: Clock = WALL_CLOCK) -> None:
        super().__init__(name, clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _open(self) -> float:
        """Reach the device; return the frames per second it delivers."""

    @abstractmethod
    def _grab(self) -> np.ndarray | tuple[np.ndarray, np.ndarray] | None:
        """Block until the next image; ``(H, W, 3) uint8`` RGB (with its ``Frame.depth`` for
        a depth camera: ``(image, depth)``), or None when there are no more."""

    @abstractmethod
    def _close(self) -> None:
        """Release the device (called once, from ``disconnect``)."""

    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    def connect(self, first_frame_timeout_s: float = 5.0) -> None:
        """Open the camera, start capturing and wait for the first frame (a camera that opens
        but never delivers is an error here, before anything depends on it)."""
        if self.is_connected:
            raise CameraError(f"camera {self.name!r} is already connected")
        self.fps = float(self._open())
        self._stop.clear()
        self._thread = threading.Thread(target=self._capture_loop, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        try:
            self.wait_for_frame(first_frame_timeout_s)
        except CameraError:
            self.disconnect()
            raise

    def disconnect(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        self._close()

    def _capture_loop(self) -> None:
        while not self._stop.is_set():
            try:
                grabbed = self._grab()
            except Exception as failure:  # the device went away: readers get it, named
                with self._new_frame:
                    self._failure = failure
                    self._new_frame.notify_all()
                return
            if grabbed is None:  # a recording that ended: frames simply stop, like a frozen camera
                return
            image, depth = grabbed if isinstance(grabbed, tuple) else (grabbed, None)
            self._store(image, depth)
