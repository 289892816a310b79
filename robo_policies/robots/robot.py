"""The ``Robot`` interface every device and the MuJoCo twin implement.

A robot reads observations as a dict of arrays and takes one flat command (an arm: joint
targets in rad then the gripper in [0, 1]; a wheeled base: wheel speeds in rad/s). Every
command goes through the robot's safety chain before it reaches the hardware, and
``send_action`` returns what was actually sent, so a caller can log or learn from it.

The base class owns what must be the same on every robot: the safety chain and its context,
the latched e-stop, the watchdog that stops the robot when commands stop arriving, and the
context manager that leaves the robot in its safe state on any exit. A subclass provides
the device side: ``_connect``, ``_disconnect``, ``_read`` (observation), ``_write``
(command), ``hold_command`` and ``_make_safe`` (torque off, wheels zero).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robo_policies.robots.cameras.camera import Camera
from robo_policies.robots.cameras.fit import fit_image
from robo_policies.robots.clock import WALL_CLOCK, Clock
from robo_policies.robots.safety import EStop, SafetyChain, SafetyContext, Watchdog
from robo_policies.utils.errors import DeviceFault


class RobotError(DeviceFault):
    """A robot used the wrong way (not connected, a command of the wrong shape, ...)."""


@contextmanager
def cleanup_after(failure: BaseException | None, what: str) -> Iterator[None]:
    """Run a cleanup step (``what``) after a block that ended with ``failure`` (or None).

    The failure that ended the block is what the user must see (the port went away, say);
    the cleanup failing after it is a consequence, so its error becomes a note on the
    failure instead of replacing it. With no failure, the cleanup's error is raised."""
    try:
        yield
    except DeviceFault as cleanup:
        if failure is None:
            raise
        failure.add_note(f"then, {what} failed too: {cleanup}")


@dataclass
class SendRecord:
    """What happened to one command: kept for timing and safety statistics."""

    requested: np.ndarray
    sent: np.ndarray
    timestamp: float
    """The robot's ``clock.now()`` when the command was written."""
    events: list[str] = field(default_factory=list)
    """Safety interventions on this command (empty when it went through unchanged)."""


class Robot(ABC):
    """A robot behind one typed interface (see the module docstring).

    Args:
        name: the robot's name (its config in ``hardware/``).
        safety: filters applied before every send, with the latched e-stop (while latched,
            every send sends ``hold_command``); default: no filters, an e-stop of its own.
        watchdog_s: stop the robot when no command arrives for this long (None: no watchdog).
        period_s: the control loop's period, the ``dt`` of velocity and acceleration limits
            (None: the time since the last command, measured on ``clock``).
        clock: the time of timestamps, the watchdog and the loops that drive this robot
            (default: the wall clock; a ``FakeClock`` in tests).
        cameras: cameras by name, each read into the observation as ``<name>_image``; they are
            connected before the device, so a camera that delivers nothing stops the start
            before any torque goes on.
        camera_timeout_s: an observation whose camera frame is older than this is an error (the
            camera froze or its cable came out): the loop ends and the robot goes to its safe state.
    """

    connects_unpowered: bool = False
    """Whether ``connect(powered=False)`` can open the device to read only; robots that cannot
    are connected (and made safe at the end) as usual, and are simply sent nothing."""
    kind: str | None = None
    """The registered kind this robot was built as (``make_robot`` sets it); teleop asks the
    kind for its key bindings."""

    def __init__(self, name: str, safety: SafetyChain | None = None, watchdog_s: float | None = None,
                 period_s: float | None = None, clock: Clock = WALL_CLOCK,
                 cameras: dict[str, Camera] | None = None, camera_timeout_s: float = 0.5) -> None:
        self.name = name
        self.cameras = dict(cameras or {})
        self.camera_timeout_s = camera_timeout_s
        self.frame_ages: dict[str, list[float]] = {name: [] for name in self.cameras}
        """Per camera, the age of the frame each observation carried (s), since ``connect``."""
        self._image_sizes: dict[str, tuple[int, int]] = {}
        self.period_s = period_s
        self.clock = clock
        self.safety = safety if safety is not None else SafetyChain([], estop=EStop())
        if self.safety.estop is None:
            raise ValueError(f"{name}: the safety chain needs an e-stop")
        self.estop: EStop = self.safety.estop
        self.watchdog_s = watchdog_s
        self._watchdog: Watchdog | None = None
        self._lock = threading.RLock()
        """Serialises sends from the control loop and stops from the watchdog thread."""
        self._connected = False
        self._powered = False
        self._last_sent: np.ndarray | None = None
        self._previous_sent: np.ndarray | None = None
        self._last_send_time: float | None = None
        self.last_record: SendRecord | None = None

    # -- what a device provides -----------------------------------------------------------

    @property
    @abstractmethod
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        """Observation keys and shapes (readable before connecting)."""

    @property
    @abstractmethod
    def action_names(self) -> list[str]:
        """One name per command dimension, e.g. ``shoulder_pan.pos`` or ``left_wheel.vel``."""

    @abstractmethod
    def _connect(self) -> None:
        """Open the device (port, bus, simulation) and bring it to a ready state."""

    def _connect_unpowered(self) -> None:
        """Open the device to read it only: no torque, nothing written (``robo robot check``
        without ``move=true``); robots that can set ``connects_unpowered``."""
        raise NotImplementedError(f"{type(self).__name__} cannot connect without power")

    @abstractmethod
    def _disconnect(self) -> None:
        """Release the device; ``_make_safe`` has already run (when it was powered)."""

    @abstractmethod
    def _read(self) -> dict[str, np.ndarray]:
        """One observation from the device."""

    @abstractmethod
    def _write(self, command: np.ndarray) -> None:
        """Write a command that passed the safety chain."""

    @abstractmethod
    def hold_command(self) -> np.ndarray:
        """The command that keeps the robot still: an arm holds its present position,
        a base sends zero wheel speeds."""

    @abstractmethod
    def _make_safe(self) -> None:
        """Put the hardware in its safe state: wheels to zero, torque off where it is safe."""

    def present_position(self) -> np.ndarray | None:
        """Measured positions in command units (for step limits); None for velocity robots."""
        return None

    # -- the shared interface ---------------------------------------------------------------

    @property
    def action_features(self) -> dict[str, type]:
        """Command dimensions by name (LeRobot's convention: each is a float)."""
        return {name: float for name in self.action_names}

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def watchdog(self) -> Watchdog | None:
        """The watchdog while connected (None when off or disconnected); on a fake clock a
        test moves time and calls its ``check()``."""
        return self._watchdog

    @property
    def is_powered(self) -> bool:
        """Connected to move (torque on), not only to read."""
        return self._connected and self._powered

    def connect(self, powered: bool = True) -> None:
        """Open the device and start the watchdog; ``powered=False`` opens it to read only
        (torque stays off and every send is refused) where ``connects_unpowered``."""
        if self._connected:
            raise RobotError(f"{self.name} is already connected")
        powered = powered or not self.connects_unpowered
        try:
            for name, camera in self.cameras.items():
                camera.connect()
                self.frame_ages[name] = []
            self._connect() if powered else self._connect_unpowered()
        except BaseException:
            self._disconnect_cameras()
            raise
        self._connected, self._powered = True, powered
        self.forget_commands()
        if self.watchdog_s is not None and powered:
            self._watchdog = Watchdog(self.watchdog_s, self._on_watchdog, clock=self.clock)
            self._watchdog.start()

    def fit_cameras(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Serve each camera whose key ``<name>_image`` is in ``shapes`` at that (H, W, 3) (the
        size a policy was trained on: ``cameras.fit.fit_image``); returns those keys' shapes."""
        fitted = {}
        for name in self.cameras:
            shape = tuple(shapes.get(f"{name}_image", ()))
            if len(shape) == 3 and shape[2] == 3:
                self._image_sizes[name] = (shape[0], shape[1])
                fitted[f"{name}_image"] = shape
        return fitted

    def get_observation(self) -> dict[str, np.ndarray]:
        """The present observation, with ``timestamp`` (``clock.now()`` at the read)."""
        self._require_connected()
        observation = self._read()
        now = self.clock.now()
        for name, camera in self.cameras.items():
            frame = camera.latest(max_age_s=self.camera_timeout_s)
            size = self._image_sizes.get(name)
            observation[f"{name}_image"] = frame.image if size is None else fit_image(frame.image, size)
            self.frame_ages[name].append(now - frame.timestamp)
        observation["timestamp"] = np.float64(now)
        return observation

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Filter ``action`` through the safety chain, write it, and return what was sent."""
        self._require_connected()
        if not self._powered:
            raise RobotError(f"{self.name} is connected to read only (powered=False): nothing is sent")
        requested = self._command(action)
        with self._lock:
            now = self.clock.now()
            before = dict(self.safety.interventions)
            sent = self.safety.apply(requested, self._context(now))
            events = [name for name, count in self.safety.interventions.items()
                      if count != before.get(name, 0)]
            self._write(sent)
            self._previous_sent, self._last_sent, self._last_send_time = self._last_sent, sent.copy(), now
            self.last_record = SendRecord(requested, sent.copy(), now, events)
        if self._watchdog is not None:
            self._watchdog.feed()
        return sent.copy()

    def filtered(self, action: np.ndarray) -> tuple[np.ndarray, str | None]:
        """(what the safety chain would send for ``action`` now, its last intervention), without
        sending it: a dry run whose interventions are not counted."""
        self._require_connected()
        with self._lock:
            chain = self.safety
            kept = dict(chain.interventions), dict(chain.last_events), chain.last_event
            sent = chain.apply(self._command(action), self._context(self.clock.now()))
            event = chain.last_event
            chain.interventions, chain.last_events, chain.last_event = kept
        return sent, event

    def stop(self) -> None:
        """Send the hold command now, bypassing the chain (used on faults and at the end)."""
        if not self.is_powered:
            return
        with self._lock:
            hold = self.hold_command()
            self._write_hold(hold)
            self._previous_sent, self._last_sent = self._last_sent, hold.copy()

    def forget_commands(self) -> None:
        """Start afresh: no command sent yet and the safety chain reset (its e-stop stays)."""
        self.safety.reset()
        self._last_sent = self._previous_sent = self._last_send_time = None

    def disconnect(self) -> None:
        """Stop the watchdog, put the hardware in its safe state and release it."""
        if not self._connected:
            return
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        try:
            if self._powered:
                with self._lock:
                    self._make_safe()
        finally:
            try:
                self._disconnect()
            finally:
                self._disconnect_cameras()
                self._connected = False

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        with cleanup_after(exc, f"stopping {self.name}"):
            self.disconnect()

    @contextmanager
    def held_at_exit(self) -> Iterator[None]:
        """The block drives the robot; after it the robot holds still (``stop``), however the
        block ends. A stop that fails after the block failed is a note on the block's error."""
        try:
            yield
        except BaseException as failure:
            with cleanup_after(failure, f"holding {self.name} still"):
                self.stop()
            raise
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _command(self, action: np.ndarray) -> np.ndarray:
        """``action`` as one flat command, checked against the robot's command size."""
        command = np.asarray(action, dtype=np.float64).reshape(-1)
        if command.shape != (self.action_dim,):
            raise RobotError(f"{self.name}: action has shape {np.shape(action)}, expected "
                             f"({self.action_dim},) for {self.action_names}")
        return command

    def _context(self, now: float) -> SafetyContext:
        if self.period_s is not None:
            dt = self.period_s
        else:
            dt = now - self._last_send_time if self._last_send_time is not None else 0.0
        return SafetyContext(present=self.present_position(), last_sent=self._last_sent,
                             previous_sent=self._previous_sent, dt=dt, hold=self.hold_command())

    def _disconnect_cameras(self) -> None:
        for camera in self.cameras.values():
            camera.disconnect()

    def _write_hold(self, command: np.ndarray) -> None:
        """Write the hold command of ``stop`` (a twin applies it without advancing time)."""
        self._write(command)

    def _on_watchdog(self) -> None:
        """No command for ``watchdog_s``: the loop or its link is gone, so hold still."""
        self.stop()

    def _require_connected(self) -> None:
        if not self._connected:
            raise RobotError(f"{self.name} is not connected: call connect() or use `with robot:`")
