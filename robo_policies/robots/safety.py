"""The safety layer between a policy and the motors: filters, a latched e-stop, a watchdog.

A command is a flat float64 array (an arm: joint position targets in rad then the gripper in
[0, 1]; a wheeled base: wheel speeds in rad/s). Before every send it passes a
``SafetyChain`` of filters, each a small, separately configured rule; every filter sees a
``SafetyContext`` (present position, the last two commands sent, the time step and the
robot's safe "hold" command) and returns a new command without touching its input.

Order matters, and this order is recommended::

    reject_non_finite -> joint_limits -> max_step -> velocity_limit -> acceleration_limit
        -> workspace_box -> wheel_speed_limit

Reject NaN first (every later filter would pass it through), clamp before limiting rates,
and check the workspace on the command that will really be sent. A filter that cannot make
a command safe by clamping (a NaN, a target outside the workspace) replaces the whole command
by the last one sent, or the hold command when nothing was sent yet: that command already
passed the chain, so it is known to be safe.

Chains are usually built from a config (YAML list) with ``build_safety_chain``::

    - {type: reject_non_finite}
    - {type: joint_limits, low: [-2, -1.6, -1.6, -1.7, -2.9, 0], high: [2, 1.6, 1.6, 1.7, 2.9, 1]}
    - {type: max_step, max_step: 0.1}
    - {type: velocity_limit, max_velocity: 2.0}

``EStop`` and ``Watchdog`` stop the robot from outside the command stream: an operator (a
stop file, a signal, a key) and a control loop that stopped sending, respectively.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import ArrayLike

from robo_policies.robots.base_kinematics import scale_to_limit
from robo_policies.robots.clock import WALL_CLOCK, Clock
from robo_policies.utils.errors import ConfigError

logger = logging.getLogger(__name__)


# -- context and filter protocol ------------------------------------------------------------


@dataclass(frozen=True)
class SafetyContext:
    """What a filter may know about the robot when it judges one command.

    Attributes:
        present: measured positions in command units, or None (e.g. a velocity-commanded base).
        last_sent: the previous command actually sent, or None before the first one.
        previous_sent: the command sent before ``last_sent``, or None.
        dt: seconds since ``last_sent`` was sent (0 before the first command). Rate limits
            assume the same step between earlier commands.
        hold: the command that keeps the robot still (an arm: its present position; a base:
            zero wheel speeds).
    """

    present: np.ndarray | None
    last_sent: np.ndarray | None
    previous_sent: np.ndarray | None
    dt: float
    hold: np.ndarray

    def __post_init__(self) -> None:
        if not (np.isfinite(self.dt) and self.dt >= 0):
            raise ValueError(f"SafetyContext.dt must be a finite number >= 0, got {self.dt!r}")

    def fallback(self) -> np.ndarray:
        """The last safe command: the last one sent if it is finite, else ``hold`` (a copy)."""
        if self.last_sent is not None and np.all(np.isfinite(self.last_sent)):
            return np.array(self.last_sent, dtype=np.float64)
        return np.array(self.hold, dtype=np.float64)


class SafetyFilter(Protocol):
    """One rule of the chain. It returns a new array and never modifies ``command``."""

    name: str

    def __call__(self, command: np.ndarray, context: SafetyContext) -> np.ndarray: ...

    def reset(self) -> None:
        """Forget any state (a new episode or connection)."""
        ...


def _limits(value: Any, key: str, *, positive: bool) -> np.ndarray:
    """A scalar or per-dimension limit as float64, with an error naming ``key``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number or a list of numbers, got {value!r}") from None
    if array.ndim > 1:
        raise ConfigError(f"{key}: expected a number or a flat list, got shape {array.shape}")
    if array.size == 0:
        raise ConfigError(f"{key}: is empty")
    if np.any(np.isnan(array)):
        raise ConfigError(f"{key}: contains NaN: {value!r}")
    if positive and np.any(array <= 0):
        raise ConfigError(f"{key}: every value must be > 0, got {value!r}")
    return array


class _Filter:
    """Shared parts: a name, a config, and no state to reset."""

    config_class: ClassVar[type]
    type_name: ClassVar[str]

    def __init__(self, config: Any, name: str | None = None) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {config!r}")
        self.config = config
        self.name = name or self.type_name

    def reset(self) -> None:
        """Filters here are stateless (history comes in the context); nothing to forget."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, config={self.config!r})"


# -- filters ----------------------------------------------------------------------------------


@dataclass
class RejectNonFiniteConfig:
    """No settings: any NaN or infinity is rejected."""


class RejectNonFinite(_Filter):
    """A command with a NaN or infinity anywhere is replaced by the last safe command.

    A NaN action usually means the policy diverged; no part of it can be trusted, so no
    part of it is sent.
    """

    config_class, type_name = RejectNonFiniteConfig, "reject_non_finite"

    def __call__(self, command: np.ndarray, context: SafetyContext) -> np.ndarray:
        if np.all(np.isfinite(command)):
            return np.array(command, dtype=np.float64)
        return context.fallback()


@dataclass
class JointLimitsConfig:
    """Absolute bounds per command dimension (or one bound for all)."""

    low: ArrayLike
    high: ArrayLike

    def __post_init__(self) -> None:
        self.low = _limits(self.low, "joint_limits.low", positive=False)
        self.high = _limits(self.high, "joint_limits.high", positive=False)
        try:
            ordered = np.all(self.low <= self.high)
        except ValueError:
            raise ConfigError(f"joint_limits.low and .high have different lengths: {self.low.size} "
                             f"and {self.high.size}") from None
        if not ordered:
            raise ConfigError(f"joint_limits.low must be <= high, got low={self.low.tolist()} "
                             f"high={self.high.tolist()}")


class JointLimits(_Filter):
    """Clamps each dimension to ``[low, high]``."""

    config_class, type_name = JointLimitsConfig, "joint_limits"

    def __call__(self, command: np.ndarray, context: SafetyContext) -> np.ndarray:
        return np.clip(command, self.config.low, self.config.high)


@dataclass
class MaxStepConfig:
    """Largest distance of a target from the present position, per dimension or for all."""

    max_step: ArrayLike

    def __post_init__(self) -> None:
        self.max_step = _limits(self.max_step, "max_step.max_step", positive=True)


class MaxStep(_Filter):
    """Clamps each dimension to ``present ± max_step``.

    This bounds how far a position-controlled servo is asked to jump, whatever happened
    to the earlier commands. It needs ``context.present``: a robot without position readings
    cannot use it, and gets an error rather than an unchecked command.
    """

    config_class, type_name = MaxStepConfig, "max_step"

    def __call__(self, command: np.ndarray, context: SafetyContext) -> np.ndarray:
        if context.present is None:
            raise ConfigError(f"{self.name}: needs context.present (measured positions); "
                             "this robot gives none")
        step = self.config.max_step
        return np.clip(command, context.present - step, context.present + step)


@dataclass
class VelocityLimitConfig:
    """Largest rate of change of the command, in command units per second."""

    max_velocity: ArrayLike

    def __post_init__(self) -> None:
        self.max_velocity = _limits(self.max_velocity, "velocity_limit.max_velocity", positive=True)


class VelocityLimit(_Filter):
    """Keeps ``|command - last_sent| <= max_velocity * dt`` in every dimension.

    The first command is measured from ``present`` when there is one, else from ``hold``
    (a base at rest: its first command ramps up from zero like every later one). On a
    wheeled base, whose command is already a speed, this bounds the wheels' acceleration
    (``max_velocity`` is then in rad/s^2).
    """

    config_class, type_name = VelocityLimitConfig, "velocity_limit"

    def __call__(self, command: np.ndarray, context: SafetyContext) -> np.ndarray:
        reference = next(value for value in (context.last_sent, context.present, context.hold)
                         if value is not None)
        bound = self.config.max_velocity * context.dt
        return np.clip(command, reference - bound, reference + bound)


@dataclass
class AccelerationLimitConfig:
    """Largest change of command velocity per second, in command units per s^2."""

    max_acceleration: ArrayLike

    def __post_init__(self) -> None:
        self.max_acceleration = _limits(self.max_acceleration, "acceleration_limit.max_acceleration",
                                        positive=True)


class AccelerationLimit(_Filter):
    """Bounds the change of velocity between consecutive commands by ``max_acceleration * dt``.

    With velocities ``(last_sent - previous_sent) / dt`` and ``(command - last_sent) / dt``
    (one step ``dt`` throughout), that is ``|step - previous step| <= max_acceleration * dt**2``.
    With only one command sent so far the robot is taken to be at rest; with none, the
    command passes unchanged (``VelocityLimit`` covers the first step).
    """

    config_class, type_name = AccelerationLimitConfig, "acceleration_limit"

    def __call__(self, command: np.ndarray, context: SafetyContext) -> np.ndarray:
        last = context.last_sent
        if last is None:
            return np.array(command, dtype=np.float64)
        previous_step = last - context.previous_sent if context.previous_sent is not None else 0.0
        bound = self.config.max_acceleration * context.dt**2
        step = np.clip(command - last, previous_step - bound, previous_step + bound)
        return last + step


@dataclass
class WorkspaceBoxConfig:
    """An axis-aligned box ``[low, high]`` (x, y, z in m) the end effector must stay in."""

    low: ArrayLike
    high: ArrayLike

    def __post_init__(self) -> None:
        for key in ("low", "high"):
            value = _limits(getattr(self, key), f"workspace_box.{key}", positive=False)
            if value.shape != (3,):
                raise ConfigError(f"workspace_box.{key}: expected [x, y, z], got {getattr(self, key)!r}")
            setattr(self, key, value)
        if not np.all(self.low < self.high):
            raise ConfigError(f"workspace_box.low must be < high, got low={self.low.tolist()} "
                             f"high={self.high.tolist()}")


class WorkspaceBox(_Filter):
    """Rejects a command whose forward kinematics ``fk(command) -> xyz`` leaves the box.

    A rejected command is replaced by the last safe command, not clamped: many joint
    configurations put the end effector on the box's face, and picking one would need
    inverse kinematics and could swing other links somewhere worse. The box bounds the
    commanded target, not the path the arm takes to reach it.
    """

    config_class, type_name = WorkspaceBoxConfig, "workspace_box"

    def __init__(self, config: WorkspaceBoxConfig, fk: Callable[[np.ndarray], ArrayLike],
                 name: str | None = None) -> None:
        super().__init__(config, name)
        self.fk = fk

    def __call__(self, command: np.ndarray, context: SafetyContext) -> np.ndarray:
        xyz = np.asarray(self.fk(command), dtype=np.float64)
        inside = np.all(np.isfinite(xyz)) and np.all((xyz >= self.config.low) & (xyz <= self.config.high))
        return np.array(command, dtype=np.float64) if inside else context.fallback()


@dataclass
class WheelSpeedLimitConfig:
    """Largest wheel speed (rad/s), for all wheels or per wheel."""

    max_speed: ArrayLike

    def __post_init__(self) -> None:
        self.max_speed = _limits(self.max_speed, "wheel_speed_limit.max_speed", positive=True)


class WheelSpeedLimit(_Filter):
    """When a wheel is too fast, scales all wheels by one factor (direction of motion kept)."""

    config_class, type_name = WheelSpeedLimitConfig, "wheel_speed_limit"

    def __call__(self, command: np.ndarray, context: SafetyContext) -> np.ndarray:
        return scale_to_limit(command, self.config.max_speed)


FILTER_TYPES: dict[str, type[_Filter]] = {
    cls.type_name: cls for cls in (RejectNonFinite, JointLimits, MaxStep, VelocityLimit,
                                   AccelerationLimit, WorkspaceBox, WheelSpeedLimit)
}
"""Filter classes by the ``type`` a config spec names."""


# -- e-stop -------------------------------------------------------------------------------------


class EStop:
    """A latched emergency stop: once triggered it stays so until ``reset()``.

    Sources besides ``trigger``: a stop file (``touch /tmp/robo.estop``), checked on every
    ``is_latched``/``poll``; a POSIX signal (``install_signal``, e.g. ``kill -USR1 <pid>``);
    and keys of a teleop or keyboard loop, which calls ``on_key``. Taking the cause away
    (deleting the file) does not release it, so a robot never starts moving again on its
    own. This is a software stop; keep the hardware e-stop within reach.

    Args:
        file: the stop file to watch, or None.
        keys: keys that latch it in ``on_key`` (``"space"`` also matches ``" "``); one
            string is one key.
        clock: the time ``latched_at`` is read from (the robot's clock).
    """

    def __init__(self, file: str | Path | None = None, keys: Iterable[str] = ("space", "e"),
                 clock: Clock = WALL_CLOCK) -> None:
        self.file = Path(file) if file is not None else None
        self.clock = clock
        if isinstance(keys, str):  # one key, not its letters
            keys = (keys,)
        self.keys = frozenset(self._key_name(key) for key in keys)
        self._latched = False
        self._reason: str | None = None
        self.latched_at: float | None = None
        """``clock.now()`` when it latched: the start of the stop's latency."""
        self._previous_handlers: dict[int, Any] = {}

    @staticmethod
    def _key_name(key: str) -> str:
        return "space" if key == " " else key.lower()

    def trigger(self, reason: str) -> None:
        """Latch (a no-op when already latched: the first reason is kept)."""
        # No lock: this runs inside signal handlers, which must not wait on the main thread.
        if self._latched:
            return
        self._reason = reason
        self.latched_at = self.clock.now()
        self._latched = True
        logger.warning("E-STOP latched: %s", reason)

    def poll(self) -> bool:
        """Latch if the stop file exists; returns whether the stop is latched."""
        if not self._latched and self.file is not None and self.file.exists():
            self.trigger(f"stop file {self.file} exists")
        return self._latched

    @property
    def is_latched(self) -> bool:
        """Whether the stop is latched (checks the stop file first)."""
        return self.poll()

    @property
    def reason(self) -> str | None:
        """Why it latched, or None when it is not latched."""
        return self._reason if self._latched else None

    def on_key(self, key: str) -> bool:
        """Call with every key pressed in a teleop loop; returns whether the stop is latched."""
        if self._key_name(key) in self.keys:
            self.trigger(f"key {key!r} pressed")
        return self.is_latched

    def install_signal(self, signum: int = signal.SIGUSR1) -> None:
        """Latch when the process receives ``signum`` (call from the main thread)."""
        previous = signal.signal(signum, self._on_signal)
        self._previous_handlers.setdefault(signum, previous)

    def uninstall_signals(self) -> None:
        """Restore the handlers that ``install_signal`` replaced."""
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous)
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.trigger(f"signal {signal.Signals(signum).name}")

    def reset(self) -> None:
        """Release the stop; the only way to. A stop file still present latches it again."""
        self._latched = False
        self._reason = None
        self.latched_at = None
        self.poll()


# -- chain ----------------------------------------------------------------------------------------


class SafetyChain:
    """Filters applied in order before every send, with a count of their interventions.

    Args:
        filters: the filters, in order; names must be unique.
        estop: when given and latched, ``apply`` returns ``context.hold`` for every command.

    Attributes:
        interventions: per filter name (and ``"estop"``), how many commands it changed.
        last_events: per filter name, a one-line description of its last intervention.
        last_event: the most recent of those, for a status line.
    """

    def __init__(self, filters: Sequence[SafetyFilter], estop: EStop | None = None) -> None:
        names = [f.name for f in filters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"safety filter names must be unique; repeated: {duplicates} "
                             "(give each a 'name')")
        if estop is not None and "estop" in names:
            raise ConfigError("the filter name 'estop' is taken by the e-stop")
        self.filters = list(filters)
        self.estop = estop
        self.reset()

    def reset(self) -> None:
        """Reset every filter and the counts. The e-stop stays as it is: only its own
        ``reset`` releases it."""
        for f in self.filters:
            f.reset()
        self.interventions: dict[str, int] = {f.name: 0 for f in self.filters}
        if self.estop is not None:
            self.interventions["estop"] = 0
        self.last_events: dict[str, str] = {}
        self.last_event: str | None = None

    def _record(self, name: str, event: str) -> None:
        self.interventions[name] += 1
        self.last_events[name] = event
        self.last_event = f"{name}: {event}"
        logger.debug("safety %s: %s", name, event)

    def apply(self, command: ArrayLike, context: SafetyContext) -> np.ndarray:
        """The command to send in place of ``command`` (a new array)."""
        current = np.array(command, dtype=np.float64)
        if current.shape != np.shape(context.hold):
            raise ValueError(f"command has shape {current.shape}, the robot's hold command "
                             f"{np.shape(context.hold)}")
        if self.estop is not None and self.estop.is_latched:
            self._record("estop", f"latched ({self.estop.reason}); holding")
            return np.array(context.hold, dtype=np.float64)
        for f in self.filters:
            filtered = f(current, context)
            if not np.array_equal(filtered, current, equal_nan=True):
                self._record(f.name, _describe_change(current, filtered))
            current = filtered
        return current


def _describe_change(before: np.ndarray, after: np.ndarray) -> str:
    changed = np.flatnonzero(~((before == after) | (np.isnan(before) & np.isnan(after))))
    shown = ", ".join(f"[{i}] {before[i]:.4g}->{after[i]:.4g}" for i in changed[:4])
    return shown + (f" (+{len(changed) - 4} more)" if len(changed) > 4 else "")


def build_safety_chain(specs: Sequence[Mapping[str, Any]], *,
                       fk: Callable[[np.ndarray], ArrayLike] | None = None,
                       dim: int | None = None, estop: EStop | None = None) -> SafetyChain:
    """A chain from config specs, e.g. ``[{"type": "joint_limits", "low": [...], "high": [...]}]``.

    Each spec names its filter's ``type`` (a key of ``FILTER_TYPES``), optionally a unique
    ``name`` and otherwise exactly the fields of that filter's config. ``fk`` is the
    forward kinematics a ``workspace_box`` needs; ``dim``, when given, checks that per-
    dimension limits have one value per command dimension. Errors name the spec and key.
    """
    filters: list[SafetyFilter] = []
    for index, spec in enumerate(specs):
        where = f"safety spec #{index}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping with a 'type' key, got {spec!r}")
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in FILTER_TYPES:
            raise ConfigError(f"{where}: unknown or missing 'type' {kind!r}; known types: "
                             f"{', '.join(sorted(FILTER_TYPES))}")
        cls = FILTER_TYPES[kind]
        where = f"{where} ({kind})"
        fields = [f.name for f in dataclasses.fields(cls.config_class)]
        unknown = sorted(set(spec) - set(fields) - {"type", "name"})
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: "
                             f"{', '.join(['type', 'name', *fields])}")
        missing = [key for key in fields if key not in spec]
        if missing:
            raise ConfigError(f"{where}: missing key {missing[0]!r}")
        try:
            config = cls.config_class(**{key: spec[key] for key in fields})
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        if dim is not None:
            for key in fields:
                value = getattr(config, key)
                if kind != "workspace_box" and np.ndim(value) == 1 and np.size(value) not in (1, dim):
                    raise ConfigError(f"{where}: {key!r} has {np.size(value)} values, the command {dim}")
        name = spec.get("name")
        if name is not None and not (isinstance(name, str) and name):
            raise ConfigError(f"{where}: 'name' must be a non-empty string, got {name!r}")
        if cls is WorkspaceBox:
            if fk is None:
                raise ConfigError(f"{where}: needs forward kinematics: pass fk= to build_safety_chain")
            filters.append(WorkspaceBox(config, fk, name))
        else:
            filters.append(cls(config, name))
    return SafetyChain(filters, estop=estop)


# -- watchdog -------------------------------------------------------------------------------------


class Watchdog:
    """Calls ``on_expire`` once when ``feed()`` has not been called for ``timeout_s``.

    ``check()`` fires it when the timeout has passed on ``clock``; a daemon thread calls it
    every ``period_s`` (default ``timeout_s / 20``) of wall time, so on the wall clock it
    fires between ``timeout_s`` and ``timeout_s + period_s`` after the last feed, plus thread
    wake-up latency. On a fake clock a test calls ``check()`` itself after moving time. The
    next ``feed()`` re-arms it. The robot uses it to stop (wheels to zero, arm holding) when
    the control loop or its link stops sending commands. ``on_expire`` runs on the thread
    that fired; an exception in it is logged, not raised.
    """

    def __init__(self, timeout_s: float, on_expire: Callable[[], None],
                 period_s: float | None = None, clock: Clock = WALL_CLOCK) -> None:
        if not (np.isfinite(timeout_s) and timeout_s > 0):
            raise ConfigError(f"timeout_s must be positive, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.period_s = float(period_s) if period_s is not None else self.timeout_s / 20
        if not self.period_s > 0:
            raise ConfigError(f"period_s must be positive, got {period_s!r}")
        self.on_expire = on_expire
        self.clock = clock
        self._lock = threading.Lock()
        self._firing = threading.Lock()
        """Held through a check and its ``on_expire``: whoever checks next sees its effect."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_feed = clock.now()
        self._expired = False
        self.expired_at: float | None = None
        """``clock.now()`` when it last expired (None if it never did)."""

    @property
    def expired(self) -> bool:
        """Whether it has fired since the last feed."""
        return self._expired

    @property
    def last_feed(self) -> float:
        """``clock.now()`` of the last feed (or of ``start``)."""
        return self._last_feed

    def feed(self) -> None:
        """A command went out: restart the countdown and re-arm."""
        with self._lock:
            self._last_feed = self.clock.now()
            self._expired = False

    def check(self) -> bool:
        """Fire now if ``timeout_s`` has passed since the last feed and it has not fired since
        (nor been stopped); returns whether this call fired it."""
        with self._firing:
            with self._lock:
                now = self.clock.now()
                fire = (not self._expired and not self._stop.is_set()
                        and now - self._last_feed >= self.timeout_s)
                if fire:
                    self._expired, self.expired_at = True, now
            if fire:
                logger.warning("watchdog: no feed for %.3f s", now - self._last_feed)
                try:
                    self.on_expire()
                except Exception:
                    logger.exception("watchdog on_expire failed")
        return fire

    def start(self) -> None:
        """Start the countdown (from now) and the thread that checks it."""
        if self._thread is not None:
            raise RuntimeError("watchdog already started")
        self.feed()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="robo-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it does not fire afterwards)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def __enter__(self) -> Watchdog:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.check()
