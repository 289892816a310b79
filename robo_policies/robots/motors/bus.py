"""The motor bus: the servos on one serial port, addressed by name, in SI units.

A robot talks to its servos through one ``MotorBus``. It reads joint positions in rad and
wheel speeds in rad/s and writes goals in the same units, by motor name. The bus turns them
into register values with each motor's calibration (``calibration.py``), moves them in one
sync read or sync write per call, retries when a status packet is missing or corrupt, and
reports servo hardware faults (overload, overheating, input voltage, ...) by motor.

Vendors subclass ``MotorBus`` (``dynamixel.py``, ``feetech.py``) with their control table,
their models and one attempt at each bus transaction (ping, read, write, sync read, sync
write). Retries, units, checks and error messages live here, once for both vendors.

The transport is a serial port named by its path: a USB adapter (``/dev/ttyUSB0``) or the
pseudo-terminal of a fake servo bus in tests, so the real driver runs down to the port.

Typical use (an arm in position mode)::

    bus = FeetechMotorBus("/dev/ttyACM0", motors, load_calibration(path))
    with bus:                          # connect(); disconnect() turns torque off
        bus.apply_operating_modes()    # each motor to its configured mode, safely
        bus.enable_torque()
        q = bus.read_positions()       # rad, in motor order
        sent = bus.write_goal_positions(q + 0.1)   # returns the clamped goals sent
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable, Iterator, Literal, Mapping, Sequence, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from robo_policies.robots.motors.calibration import MotorCalibration

try:  # a serial adapter unplugged mid-run fails pyserial's termios calls with termios.error
    import termios

    PORT_ERRORS: tuple[type[BaseException], ...] = (OSError, termios.error)
except ImportError:  # no termios (Windows): pyserial raises SerialException, an OSError
    PORT_ERRORS = (OSError,)
"""What a port that went away raises (``serial.SerialException`` is an ``OSError``;
``termios.error`` is not)."""
from robo_policies.utils.errors import ConfigError, DeviceFault

MotorMode = Literal["position", "velocity"]
MOTOR_MODES: tuple[str, ...] = ("position", "velocity")
MAX_MOTOR_ID = 252
"""Ids 253 and up are reserved (254 is broadcast) on both vendors' buses."""
SETTING_WRITE_SETTLE_S = 0.05
"""Time a servo gets to store an id or baud rate change (EEPROM) before we talk to it again."""
COMM_WATCHDOG = "comm_watchdog"
"""The register of a servo's communication watchdog, in the control tables of vendors whose
servos have one (see ``MotorBus``)."""

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Motor:
    """One servo on the bus: what the robot calls it, its bus id, model and control mode."""

    name: str
    id: int
    model: str
    """e.g. ``xl430-w250`` (Dynamixel) or ``sts3215`` (Feetech)."""
    mode: MotorMode = "position"
    """``position`` for joints, ``velocity`` for wheels."""


@dataclass(frozen=True)
class Register:
    """Where a value lives in a servo's control table and how it is encoded on the wire.

    Values are little-endian. Negative values are two's complement on Dynamixel and
    sign-magnitude on Feetech (magnitude in the bits below ``sign_bit``, sign in that bit).
    """

    address: int
    size: int
    """Bytes."""
    encoding: Literal["unsigned", "twos_complement", "sign_magnitude"] = "unsigned"
    sign_bit: int = 15
    """The sign bit of a ``sign_magnitude`` register."""

    def limits(self) -> tuple[int, int]:
        """The lowest and the highest value the register holds."""
        bits = 8 * self.size
        if self.encoding == "unsigned":
            return 0, 2**bits - 1
        if self.encoding == "twos_complement":
            return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return -(2**self.sign_bit - 1), 2**self.sign_bit - 1

    def encode(self, value: int) -> bytes:
        """``value`` as the register's bytes; ValueError when it does not fit (it never wraps)."""
        value = int(value)
        low, high = self.limits()
        if not low <= value <= high:
            raise ValueError(f"{value} does not fit a {self.size}-byte {self.encoding} register "
                             f"({low}..{high})")
        if self.encoding == "sign_magnitude":
            raw = abs(value) | ((1 << self.sign_bit) if value < 0 else 0)
        else:
            raw = value % 2 ** (8 * self.size)
        return raw.to_bytes(self.size, "little")

    def decode(self, data: bytes) -> int:
        """The value held in the register's bytes."""
        raw = int.from_bytes(bytes(data), "little")
        if self.encoding == "twos_complement" and raw >= 2 ** (8 * self.size - 1):
            return raw - 2 ** (8 * self.size)
        if self.encoding == "sign_magnitude":
            magnitude = raw & ((1 << self.sign_bit) - 1)
            return -magnitude if raw & (1 << self.sign_bit) else magnitude
        return raw


@dataclass(frozen=True)
class ModelSpec:
    """What the bus needs to know about one servo model."""

    model_number: int
    """What the servo reports when pinged."""
    ticks_per_revolution: int
    velocity_unit: float
    """rad/s per unit of the velocity registers."""


class MotorBusError(DeviceFault):
    """A bus operation failed; the message names the port, motors, register and cause."""

    def __init__(self, message: str, *, port: str, register: str | None = None,
                 motor_ids: Sequence[int] = (), cause: str = "") -> None:
        super().__init__(message)
        self.port = port
        self.register = register
        self.motor_ids = list(motor_ids)
        self.cause = cause
        """The SDK's or the servo's own words, when there are any."""


class MotorCommunicationError(MotorBusError):
    """No valid status packet came back (missing or corrupt), even after all retries."""


class MotorHardwareError(MotorBusError):
    """A servo reported a hardware fault (overload, overheating, input voltage, ...)."""

    def __init__(self, message: str, *, faults: dict[str, list[str]], **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.faults = faults
        """Motor name (or ``id N``) -> the faults it reported."""


class MotorHardwareWarning(UserWarning):
    """A servo reported a hardware fault and the bus was told to warn, not raise."""


class FailedAttempt(Exception):
    """One transaction got no usable status packet (missing or corrupt): worth a retry.

    Raised by the vendor methods, caught by ``MotorBus``, never seen by its callers.
    """

    def __init__(self, reason: str, motor_ids: Sequence[int] = (),
                 received: Mapping[int, tuple[bytes, int]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.motor_ids = list(motor_ids)
        """The motors whose status packets failed, when known."""
        self.received = dict(received or {})
        """A sync read's valid replies, from the other motors: id -> (register bytes, error byte)."""


def reply_bytes(data: Sequence[int], register: Register, motor_id: int) -> bytes:
    """A reply's data bytes, checked: a reply of the wrong length is as good as corrupt."""
    if len(data) != register.size:
        raise FailedAttempt(f"status packet carried {len(data)} data bytes, expected {register.size}", [motor_id])
    return bytes(data)


def port_error_text(err: BaseException) -> str:
    """What a port error says; a ``termios.error`` holds only (errno, text): shown as an OSError is."""
    if not isinstance(err, OSError) and len(err.args) == 2:
        return f"[Errno {err.args[0]}] {err.args[1]}"
    return str(err)


class MotorBus(ABC):
    """Servos on one serial port (see the module docstring).

    Args:
        port: the serial port, e.g. ``/dev/ttyUSB0``.
        motors: the servos, in the order every array in and out of the bus follows.
        calibration: motor name -> calibration, for every motor; None: uncalibrated (angles
            counted from encoder tick 0, the whole turn allowed).
        baudrate: the bus speed in bit/s.
        retries: how many times a read or write is repeated after a missing or corrupt
            status packet before it raises ``MotorCommunicationError``.
        hardware_errors: ``"warn"`` (``MotorHardwareWarning``, the data is still returned)
            or ``"raise"`` (``MotorHardwareError``) when a servo reports a fault.
        latency_timer_ms: the USB adapter's latency timer; the bus waits twice this plus the
            packet's transfer time and 2 ms for a status packet (as the vendor SDKs do; 16 ms
            is the Linux FTDI default, 1 ms makes failures cheaper once the adapter is set so).
        comm_watchdog_ms: arm the servos' own communication watchdog, where they have one
            (``comm_watchdog`` in the control table): with torque on, a servo that receives
            no instruction for this long stops by itself, so a crashed, frozen or unplugged
            host cannot leave a wheel driving. Rounded up to the register's unit; None: not armed.
        clock: seconds on which the bus measures its silences (``time.monotonic``; a test's
            ``FakeClock.now``, the time its fake servos keep).

    The watchdog is armed (0 first, which clears a tripped one, then the window) whenever
    torque is enabled and disarmed by a disconnect that turns torque off. A tripped servo
    refuses goals until cleared, and sync writes get no reply to say so: goals sent half a
    window or more after the last goals (the loop stalled, a policy took long to answer) are
    preceded by a read of the watchdogs, and the tripped ones are cleared and re-armed.
    """

    control_table: ClassVar[dict[str, Register]]
    """Register name -> register. Both vendors name the registers the bus uses alike:
    ``id``, ``baud_rate``, ``operating_mode``, ``torque_enable``, ``goal_position``,
    ``goal_velocity``, ``present_position``, ``present_velocity``."""
    models: ClassVar[dict[str, ModelSpec]]
    operating_mode_values: ClassVar[dict[str, int]]
    """``position`` / ``velocity`` -> the value of the ``operating_mode`` register."""
    baudrate_values: ClassVar[dict[int, int]]
    """Baud rate in bit/s -> the value of the ``baud_rate`` register."""
    comm_watchdog_unit_ms: ClassVar[float] = 0.0
    """Time unit of the ``comm_watchdog`` register, for vendors whose control table has one."""

    def __init__(self, port: str, motors: Sequence[Motor],
                 calibration: Mapping[str, MotorCalibration] | None = None, *,
                 baudrate: int = 1_000_000, retries: int = 3,
                 hardware_errors: Literal["warn", "raise"] = "warn",
                 latency_timer_ms: float = 16.0, comm_watchdog_ms: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.motors: dict[str, Motor] = {}
        for motor in motors:
            self._check_motor(motor)
            self.motors[motor.name] = motor
        self._name_by_id = {motor.id: motor.name for motor in self.motors.values()}
        if calibration is None:
            calibration = {name: MotorCalibration.full_turn(self._spec(name).ticks_per_revolution)
                           for name in self.motors}
        missing = [name for name in self.motors if name not in calibration]
        unknown = [name for name in calibration if name not in self.motors]
        if missing or unknown:
            raise ConfigError(f"calibration does not match the motors: missing {missing}, unknown {unknown}")
        self.calibration: dict[str, MotorCalibration] = dict(calibration)
        if baudrate not in self.baudrate_values:
            raise ConfigError(f"unsupported baud rate {baudrate}; supported: {sorted(self.baudrate_values)}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if hardware_errors not in ("warn", "raise"):
            raise ValueError(f"hardware_errors must be 'warn' or 'raise', got {hardware_errors!r}")
        self.baudrate = baudrate
        self.retries = retries
        self.hardware_errors = hardware_errors
        self.latency_timer_ms = latency_timer_ms
        self.retry_count = 0
        """Transactions repeated after a missing or corrupt status packet, since construction
        (a sync read's repeat asks only the motors that did not answer)."""
        self.comm_watchdog_units = self._comm_watchdog_units(comm_watchdog_ms)
        """The value armed in each servo's ``comm_watchdog`` register; None: not armed."""
        self.clock = clock
        self._untripped_at: dict[int, float] = {}
        """Motor id -> ``clock()`` when its watchdog was last known not to have tripped (armed,
        read, or goals sent to it less than half a window after that)."""
        self._modes: dict[str, str | None] = {}
        self._connected = False
        self._lock = threading.RLock()
        """One transaction at a time on the wire, even when threads share the bus."""

    def _comm_watchdog_units(self, comm_watchdog_ms: float | None) -> int | None:
        if comm_watchdog_ms is None or COMM_WATCHDOG not in self.control_table:
            return None
        longest_ms = self.control_table[COMM_WATCHDOG].limits()[1] * self.comm_watchdog_unit_ms
        if not 0 < comm_watchdog_ms <= longest_ms:
            raise ConfigError(f"comm_watchdog_ms must be in (0, {longest_ms:g}] on {type(self).__name__}, "
                              f"got {comm_watchdog_ms}")
        return math.ceil(comm_watchdog_ms / self.comm_watchdog_unit_ms)

    @property
    def comm_watchdog_s(self) -> float | None:
        """How long an armed servo waits for an instruction before it stops; None: not armed
        (the servos have no watchdog, or none was asked for)."""
        if self.comm_watchdog_units is None:
            return None
        return self.comm_watchdog_units * self.comm_watchdog_unit_ms / 1000.0

    def _check_motor(self, motor: Motor) -> None:
        if motor.name in self.motors:
            raise ConfigError(f"two motors are named {motor.name!r}")
        if not 0 <= motor.id <= MAX_MOTOR_ID:
            raise ConfigError(f"motor {motor.name!r}: id {motor.id} is outside 0..{MAX_MOTOR_ID}")
        if any(other.id == motor.id for other in self.motors.values()):
            raise ConfigError(f"motor {motor.name!r}: id {motor.id} is already used")
        if motor.model not in self.models:
            raise ConfigError(f"motor {motor.name!r}: unknown model {motor.model!r}; "
                             f"{type(self).__name__} knows {sorted(self.models)}")
        if motor.mode not in MOTOR_MODES:
            raise ConfigError(f"motor {motor.name!r}: mode must be one of {MOTOR_MODES}, got {motor.mode!r}")

    # -- what a vendor provides: one attempt at each transaction ---------------------------
    # Each raises FailedAttempt when the status packet is missing or corrupt. Replies carry
    # the status packet's error byte, which ``_describe_status_error`` explains.

    @abstractmethod
    def _open_port(self) -> None:
        """Open ``self.port`` at ``self.baudrate``; MotorBusError when it cannot be opened."""

    @abstractmethod
    def _close_port(self) -> None:
        """Close the port opened by ``_open_port``."""

    @abstractmethod
    def _discard_input(self) -> None:
        """Drop bytes waiting on the port (a late reply to an earlier, failed attempt)."""

    @abstractmethod
    def _ping_once(self, motor_id: int) -> int:
        """The model number of the servo at ``motor_id``."""

    @abstractmethod
    def _read_once(self, register: Register, motor_id: int) -> tuple[bytes, int]:
        """(register bytes, status error byte)."""

    @abstractmethod
    def _write_once(self, register: Register, motor_id: int, data: bytes) -> int:
        """The status error byte."""

    @abstractmethod
    def _write_without_reply(self, register: Register, motor_id: int, data: bytes) -> None:
        """Send a write and do not wait for its status packet."""

    @abstractmethod
    def _sync_read_once(self, register: Register, motor_ids: Sequence[int]) -> dict[int, tuple[bytes, int]]:
        """One instruction, one reply per motor: id -> (register bytes, status error byte).
        When some replies fail, the FailedAttempt names those motors and carries the others'."""

    @abstractmethod
    def _sync_write_once(self, register: Register, data_by_id: Mapping[int, bytes]) -> None:
        """One instruction to all motors; servos do not reply to it."""

    @abstractmethod
    def _describe_status_error(self, motor_id: int, error: int) -> tuple[str, list[str]]:
        """(why the servo rejected the instruction or "", the hardware faults it reports)."""

    def _set_eeprom_lock(self, motor_id: int, locked: bool) -> None:
        """Vendors whose servos only keep EEPROM writes while unlocked override this."""

    # -- connection ------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Open the port, check that every motor answers as its configured model, and read
        the motors' operating modes (nothing is written)."""
        with self._lock:
            if self._connected:
                raise MotorBusError(f"{self.port}: already connected", port=self.port)
            self._open_port()
            self._connected = True
            try:
                for motor in self.motors.values():
                    self._check_model(motor)
                self._modes = self._read_operating_modes()
            except BaseException:
                self._close_port()
                self._connected = False
                raise

    def disconnect(self, disable_torque: bool = True) -> None:
        """Turn torque off and disarm the communication watchdogs (unless told not to), and
        close the port, even if that fails."""
        with self._lock:
            if not self._connected:
                return
            try:
                if disable_torque:
                    self.disable_torque()
                    if self.comm_watchdog_units is not None:  # another program may drive them next
                        self._write_each(COMM_WATCHDOG, 0, list(self.motors))
            finally:
                self._close_port()
                self._connected = False

    def __enter__(self) -> MotorBus:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    def _check_model(self, motor: Motor) -> None:
        try:
            model_number = self._retrying("ping of", None, [motor.id], lambda: self._ping_once(motor.id))
        except MotorCommunicationError as silent:  # the last reason says: silent, or garbled
            raise MotorBusError(
                f"motor {motor.name!r} (id {motor.id}) does not answer on {self.port} at {self.baudrate} "
                f"bit/s ({silent.cause}): check power, wiring, its id and baud rate (scan() lists the ids "
                "that answer)", port=self.port, motor_ids=[motor.id], cause=silent.cause) from silent
        expected = self.models[motor.model].model_number
        if model_number != expected:
            found = [name for name, spec in self.models.items() if spec.model_number == model_number]
            raise MotorBusError(
                f"motor {motor.name!r} (id {motor.id}) on {self.port} reports model number {model_number}"
                f"{' (' + found[0] + ')' if found else ''}, but is configured as {motor.model} ({expected})",
                port=self.port, motor_ids=[motor.id])

    # -- SI reads and goals -------------------------------------------------------------------

    def read_positions(self, names: Sequence[str] | None = None) -> np.ndarray:
        """Joint angles in rad (one sync read), clamped to the calibrated range for motors
        configured for position mode (wheels turn freely and are not clamped)."""
        names = self._names(names)
        ticks = self._sync_read("present_position", names)
        return np.array([self.calibration[name].ticks_to_radians(
            tick, self._spec(name).ticks_per_revolution, clamp=self.motors[name].mode == "position")
            for name, tick in zip(names, ticks)], dtype=np.float64)

    def read_velocities(self, names: Sequence[str] | None = None) -> np.ndarray:
        """Joint or wheel speeds in rad/s (one sync read)."""
        names = self._names(names)
        raw = self._sync_read("present_velocity", names)
        return np.array([self.calibration[name].raw_to_rad_per_s(value, self._spec(name).velocity_unit)
                         for name, value in zip(names, raw)], dtype=np.float64)

    def write_goal_positions(self, values: ArrayLike, names: Sequence[str] | None = None) -> np.ndarray:
        """Send joint goals in rad (one sync write) and return the goals actually sent: clamped
        to the calibrated range and rounded to whole ticks. The motors must be in position mode."""
        names = self._names(names)
        goals = self._values(values, names)
        self._require_mode(names, "position")
        ticks = [self.calibration[name].radians_to_ticks(goal, self._spec(name).ticks_per_revolution)
                 for name, goal in zip(names, goals)]
        self._send_goals("goal_position", names, ticks)
        return np.array([self.calibration[name].ticks_to_radians(tick, self._spec(name).ticks_per_revolution)
                         for name, tick in zip(names, ticks)], dtype=np.float64)

    def write_goal_velocities(self, values: ArrayLike, names: Sequence[str] | None = None) -> np.ndarray:
        """Send speeds in rad/s (one sync write) and return the speeds actually sent (rounded
        to whole register units). The motors must be in velocity mode. Speed limits are the
        robot's safety chain's job; a value the register cannot hold raises ValueError."""
        names = self._names(names)
        speeds = self._values(values, names)
        self._require_mode(names, "velocity")
        raw = [self.calibration[name].rad_per_s_to_raw(speed, self._spec(name).velocity_unit)
               for name, speed in zip(names, speeds)]
        self._send_goals("goal_velocity", names, raw)
        return np.array([self.calibration[name].raw_to_rad_per_s(value, self._spec(name).velocity_unit)
                         for name, value in zip(names, raw)], dtype=np.float64)

    # -- torque and operating modes -----------------------------------------------------------

    def enable_torque(self, names: Sequence[str] | None = None) -> None:
        """Torque on (one confirmed write per motor), each servo's communication watchdog
        armed first (it only watches while torque is on)."""
        names = self._names(names)
        with self._lock:
            self._arm_comm_watchdogs(names)
            for name in names:
                self._write_by_id("torque_enable", self.motors[name].id, 1)

    def disable_torque(self, names: Sequence[str] | None = None) -> None:
        """Torque off. Every motor is tried even when one fails, so one bad motor never
        leaves the others powered; the first failure is raised afterwards."""
        self._write_each("torque_enable", 0, self._names(names))

    @contextmanager
    def torque_disabled(self, names: Sequence[str] | None = None) -> Iterator[None]:
        """Torque off inside the block (to move joints by hand, to change settings) and on
        again after it, also when the block raises."""
        self.disable_torque(names)
        try:
            yield
        finally:
            self.enable_torque(names)

    @property
    def operating_modes(self) -> dict[str, str | None]:
        """Each motor's mode as last read or set (None: a mode this bus does not drive)."""
        return dict(self._modes)

    def set_operating_mode(self, name: str, mode: MotorMode) -> None:
        """Switch one motor to position or velocity control, safely.

        Servos only accept a mode change with torque off, and would jump to a stale goal when
        torque comes back. So: torque off, write the mode and read it back, make the goal
        "stay where you are" (goal velocity 0, and in position mode goal = present position),
        then torque back on if it was on. On any failure torque stays off.
        """
        if mode not in self.operating_mode_values:
            raise ValueError(f"mode must be one of {list(self.operating_mode_values)}, got {mode!r}")
        motor_id = self.motors[self._names([name])[0]].id
        with self._lock:
            torque_was_on = self._read_by_id("torque_enable", motor_id) != 0
            self._write_by_id("torque_enable", motor_id, 0)
            self._write_by_id("operating_mode", motor_id, self.operating_mode_values[mode])
            found = self._read_by_id("operating_mode", motor_id)
            if found != self.operating_mode_values[mode]:
                raise MotorBusError(f"motor {name!r} (id {motor_id}) on {self.port} kept operating mode "
                                    f"{found} after being set to {mode}", port=self.port,
                                    register="operating_mode", motor_ids=[motor_id])
            self._modes[name] = mode
            self._write_by_id("goal_velocity", motor_id, 0)
            if mode == "position":
                self._write_by_id("goal_position", motor_id, self._read_by_id("present_position", motor_id))
            if torque_was_on:
                self._write_by_id("torque_enable", motor_id, 1)

    def apply_operating_modes(self) -> None:
        """Bring every motor to its configured mode (``Motor.mode``); motors already there
        are left alone."""
        for name, motor in self.motors.items():
            if self._modes.get(name) != motor.mode:
                self.set_operating_mode(name, motor.mode)

    def _read_operating_modes(self) -> dict[str, str | None]:
        mode_names = {value: mode for mode, value in self.operating_mode_values.items()}
        names = list(self.motors)
        return {name: mode_names.get(value) for name, value in zip(names, self._sync_read("operating_mode", names))}

    def _require_mode(self, names: Sequence[str], mode: str) -> None:
        wrong = {name: self._modes.get(name) for name in names if self._modes.get(name) != mode}
        if wrong:
            raise MotorBusError(f"{self.port}: motors {wrong} are not in {mode} mode; call "
                                "set_operating_mode() or apply_operating_modes() first", port=self.port,
                                register="operating_mode", motor_ids=[self.motors[n].id for n in wrong])

    # -- the servos' communication watchdog (see the class docstring) ---------------------------

    def _arm_comm_watchdogs(self, names: Sequence[str]) -> None:
        """Arm each motor's watchdog, clearing a tripped one first (only a 0 clears it)."""
        if self.comm_watchdog_units is None:
            return
        with self._lock:
            for name in names:
                motor_id = self.motors[name].id
                self._write_by_id(COMM_WATCHDOG, motor_id, 0)
                self._write_by_id(COMM_WATCHDOG, motor_id, self.comm_watchdog_units)
                self._untripped_at[motor_id] = self.clock()

    def _send_goals(self, register_name: str, names: Sequence[str], values: Sequence[int]) -> None:
        """Sync-write goals, after clearing and re-arming any watchdog that may have tripped."""
        with self._lock:
            now = self.clock()
            self._rearm_tripped_comm_watchdogs(names, now)
            self._sync_write(register_name, names, values)
            if self.comm_watchdog_units is not None:
                self._untripped_at.update((self.motors[name].id, now) for name in names)

    def _rearm_tripped_comm_watchdogs(self, names: Sequence[str], now: float) -> None:
        """Read the watchdogs of the motors not known untripped for half a window or more and
        clear and re-arm those that tripped: they would refuse the goals without a word.
        Reads do not count: they reach a tripped servo without clearing it."""
        if self.comm_watchdog_s is None:
            return
        stale = [name for name in names
                 if now - self._untripped_at.get(self.motors[name].id, now) >= self.comm_watchdog_s / 2]
        if not stale:
            return
        tripped = [name for name, value in zip(stale, self._sync_read(COMM_WATCHDOG, stale)) if value < 0]
        if tripped:
            logger.warning("%s: motors %s had stopped on their own (no instruction for over %.0f ms); "
                           "their communication watchdogs are re-armed", self.port, tripped,
                           1000 * self.comm_watchdog_s)
            self._arm_comm_watchdogs(tripped)

    # -- setup: finding servos, ids and baud rates ----------------------------------------------

    def ping(self, motor_id: int, retries: int = 0) -> int | None:
        """The model number of the servo at ``motor_id``, or None when none answers.

        One attempt by default: during a scan, silence is the usual answer."""
        try:
            return self._retrying("ping of", None, [motor_id], lambda: self._ping_once(motor_id), retries=retries)
        except MotorCommunicationError:
            return None

    def scan(self, motor_ids: Iterable[int] = range(MAX_MOTOR_ID + 1)) -> list[int]:
        """The ids in ``motor_ids`` that answer a ping (for setup commands)."""
        return [motor_id for motor_id in motor_ids if self.ping(motor_id) is not None]

    def set_id(self, old_id: int, new_id: int) -> None:
        """Give the servo at ``old_id`` the id ``new_id`` (stored in its EEPROM).

        The servo's reply to an id change may come from either id, so it is not waited
        for: a ping at the new id confirms the change."""
        if not 0 <= new_id <= MAX_MOTOR_ID:
            raise ValueError(f"new id {new_id} is outside 0..{MAX_MOTOR_ID}")
        with self._lock:
            if self.ping(old_id, retries=self.retries) is None:
                raise MotorBusError(f"no servo answers at id {old_id} on {self.port}", port=self.port,
                                    motor_ids=[old_id])
            if self.ping(new_id, retries=self.retries) is not None:
                raise MotorBusError(f"id {new_id} is already taken on {self.port}", port=self.port,
                                    motor_ids=[new_id])
            self._write_by_id("torque_enable", old_id, 0)
            self._set_eeprom_lock(old_id, locked=False)
            self._write_setting(old_id, "id", new_id)
            if self.ping(new_id, retries=self.retries) is None:
                raise MotorBusError(f"the servo at id {old_id} on {self.port} does not answer at its new "
                                    f"id {new_id}", port=self.port, register="id", motor_ids=[old_id, new_id])
            self._set_eeprom_lock(new_id, locked=True)

    def set_baudrate(self, baudrate: int, motor_ids: Sequence[int] | None = None) -> None:
        """Move the servos (default: every configured motor) and then this port to ``baudrate``."""
        if baudrate not in self.baudrate_values:
            raise ValueError(f"unsupported baud rate {baudrate}; supported: {sorted(self.baudrate_values)}")
        motor_ids = list(motor_ids) if motor_ids is not None else [m.id for m in self.motors.values()]
        with self._lock:
            for motor_id in motor_ids:
                self._write_by_id("torque_enable", motor_id, 0)
                self._set_eeprom_lock(motor_id, locked=False)
                self._write_setting(motor_id, "baud_rate", self.baudrate_values[baudrate])
            self._close_port()
            self.baudrate = baudrate
            self._open_port()
            silent = [motor_id for motor_id in motor_ids if self.ping(motor_id, retries=self.retries) is None]
            if silent:
                raise MotorBusError(f"ids {silent} do not answer on {self.port} at their new baud rate "
                                    f"{baudrate}", port=self.port, register="baud_rate", motor_ids=silent)
            for motor_id in motor_ids:
                self._set_eeprom_lock(motor_id, locked=True)

    # -- raw register access ---------------------------------------------------------------------

    def read(self, register_name: str, names: Sequence[str] | None = None) -> np.ndarray:
        """Raw register values (signs decoded, no calibration), one sync read."""
        names = self._names(names)
        return np.array(self._sync_read(register_name, names), dtype=np.int64)

    def write(self, register_name: str, values: ArrayLike, names: Sequence[str] | None = None) -> None:
        """Write raw register values, one confirmed write per motor (``values``: one per name,
        or one for all)."""
        names = self._names(names)
        values = self._values(values, names)
        if not np.all(values == np.round(values)):
            raise ValueError(f"raw register values must be whole numbers, got {values.tolist()}")
        with self._lock:
            for name, value in zip(names, values):
                self._write_by_id(register_name, self.motors[name].id, int(value))

    # -- internals: retries, status checks, names ---------------------------------------------------

    def _retrying(self, action: str, register: str | None, motor_ids: Sequence[int],
                  attempt: Callable[[], T], retries: int | None = None) -> T:
        """Run ``attempt`` (one transaction), repeating it after a missing or corrupt status packet."""
        retries = self.retries if retries is None else retries
        with self._lock:
            if not self._connected:
                raise MotorBusError(f"{self.port}: not connected; call connect() first", port=self.port)
            for attempt_number in range(retries + 1):
                if attempt_number:
                    self.retry_count += 1
                try:
                    self._discard_input()
                    return attempt()
                except FailedAttempt as failure:
                    last_failure = failure
                except PORT_ERRORS as err:  # the adapter went away: retrying will not help
                    raise MotorBusError(f"{action} {self._describe(motor_ids)} on {self.port} failed: the port "
                                        f"failed ({port_error_text(err)}); is the adapter still plugged in?",
                                        port=self.port, register=register, motor_ids=motor_ids,
                                        cause=port_error_text(err)) from err
            failed_ids = last_failure.motor_ids or list(motor_ids)
            raise MotorCommunicationError(
                f"{action} {self._describe(failed_ids)} on {self.port} failed after {retries + 1} attempts: "
                f"{last_failure.reason}", port=self.port, register=register, motor_ids=failed_ids,
                cause=last_failure.reason)

    def _check_status(self, action: str, register_name: str, errors: Mapping[int, int]) -> None:
        """Raise on instructions a servo rejected; raise or warn on hardware faults."""
        faults: dict[int, list[str]] = {}
        for motor_id, error in errors.items():
            if not error:
                continue
            rejection, hardware = self._describe_status_error(motor_id, error)
            if rejection:
                raise MotorBusError(f"{self._describe([motor_id])} on {self.port} rejected the {action} of "
                                    f"{register_name!r}: {rejection}", port=self.port, register=register_name,
                                    motor_ids=[motor_id], cause=rejection)
            if hardware:
                faults[motor_id] = hardware
        if not faults:
            return
        details = "; ".join(f"{self._describe([motor_id])}: {', '.join(names)}" for motor_id, names in faults.items())
        message = f"hardware error on {self.port} during the {action} of {register_name!r}: {details}"
        if self.hardware_errors == "raise":
            by_name = {self._name_by_id.get(motor_id, f"id {motor_id}"): names
                       for motor_id, names in faults.items()}
            raise MotorHardwareError(message, faults=by_name, port=self.port, register=register_name,
                                     motor_ids=list(faults), cause=details)
        warnings.warn(message, MotorHardwareWarning, stacklevel=4)

    def _sync_read(self, register_name: str, names: Sequence[str]) -> list[int]:
        """One sync read; a retry asks only the motors whose reply was missing or corrupt, so
        a lost packet costs one short transaction, not the whole read again."""
        register = self._register(register_name)
        if not names:
            return []
        ids = [self.motors[name].id for name in names]
        replies: dict[int, tuple[bytes, int]] = {}

        def attempt() -> dict[int, tuple[bytes, int]]:
            try:
                replies.update(self._sync_read_once(register, [i for i in ids if i not in replies]))
            except FailedAttempt as failure:
                replies.update(failure.received)
                raise
            return replies

        with self._lock:  # checking a status may take another transaction (Dynamixel alerts)
            self._retrying(f"sync read of {register_name!r} from", register_name, ids, attempt)
            self._check_status("sync read", register_name, {i: error for i, (_, error) in replies.items()})
        return [register.decode(replies[motor_id][0]) for motor_id in ids]

    def _sync_write(self, register_name: str, names: Sequence[str], values: Sequence[int]) -> None:
        register = self._register(register_name)
        if not names:
            return
        ids = [self.motors[name].id for name in names]
        data_by_id = {motor_id: self._encode(register_name, motor_id, value) for motor_id, value in zip(ids, values)}
        self._retrying(f"sync write of {register_name!r} to", register_name, list(data_by_id),
                       lambda: self._sync_write_once(register, data_by_id))

    def _read_by_id(self, register_name: str, motor_id: int) -> int:
        register = self._register(register_name)
        with self._lock:
            data, error = self._retrying(f"read of {register_name!r} from", register_name, [motor_id],
                                         lambda: self._read_once(register, motor_id))
            self._check_status("read", register_name, {motor_id: error})
        return register.decode(data)

    def _write_by_id(self, register_name: str, motor_id: int, value: int) -> None:
        register = self._register(register_name)
        data = self._encode(register_name, motor_id, value)
        with self._lock:
            error = self._retrying(f"write of {register_name!r} to", register_name, [motor_id],
                                   lambda: self._write_once(register, motor_id, data))
            self._check_status("write", register_name, {motor_id: error})

    def _write_each(self, register_name: str, value: int, names: Sequence[str]) -> None:
        """One confirmed write of ``value`` per motor, each tried even when one fails; the
        first failure is raised afterwards."""
        first_error: MotorBusError | None = None
        with self._lock:
            for name in names:
                try:
                    self._write_by_id(register_name, self.motors[name].id, value)
                except MotorBusError as err:
                    first_error = first_error or err
        if first_error is not None:
            raise first_error

    def _write_setting(self, motor_id: int, register_name: str, value: int) -> None:
        """Write a setting that changes how the servo answers (its id or baud rate): the reply
        may come from the new id or at the new rate, so it is not waited for but dropped."""
        register = self._register(register_name)
        data = self._encode(register_name, motor_id, value)
        with self._lock:
            self._retrying(f"write of {register_name!r} to", register_name, [motor_id],
                           lambda: self._write_without_reply(register, motor_id, data), retries=0)
            time.sleep(SETTING_WRITE_SETTLE_S)
            self._discard_input()

    def _encode(self, register_name: str, motor_id: int, value: int) -> bytes:
        try:
            return self._register(register_name).encode(value)
        except ValueError as err:
            raise ValueError(f"{register_name!r} of {self._describe([motor_id])}: {err}") from err

    def _register(self, register_name: str) -> Register:
        if register_name not in self.control_table:
            raise ValueError(f"unknown register {register_name!r}; {type(self).__name__} knows "
                             f"{sorted(self.control_table)}")
        return self.control_table[register_name]

    def _spec(self, name: str) -> ModelSpec:
        return self.models[self.motors[name].model]

    def _names(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return list(self.motors)
        names = [names] if isinstance(names, str) else list(names)
        unknown = [name for name in names if name not in self.motors]
        if unknown:
            raise ValueError(f"unknown motor(s) {unknown}; the motors on {self.port} are {list(self.motors)}")
        return names

    @staticmethod
    def _values(values: ArrayLike, names: Sequence[str]) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 0:
            array = np.full(len(names), float(array))
        if array.shape != (len(names),):
            raise ValueError(f"got {array.shape[0] if array.ndim == 1 else array.shape} values for "
                             f"{len(names)} motors {list(names)}")
        if not np.all(np.isfinite(array)):
            bad = [name for name, value in zip(names, array) if not np.isfinite(value)]
            raise ValueError(f"values for {bad} are not finite: {array.tolist()}")
        return array

    def _label(self, motor_id: int) -> str:
        """``'elbow' (id 3)``, or ``id 9`` for a servo that is not one of the configured motors."""
        name = self._name_by_id.get(motor_id)
        return f"{name!r} (id {motor_id})" if name is not None else f"id {motor_id}"

    def _describe(self, motor_ids: Sequence[int]) -> str:
        return ("motor " if len(motor_ids) == 1 else "motors ") + ", ".join(map(self._label, motor_ids))
