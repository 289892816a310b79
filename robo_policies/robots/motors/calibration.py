"""Motor calibration: where each joint's zero is, which way it turns and how far it may go.

A servo reports its position in encoder ticks of its own frame. A calibration maps ticks to
the robot's joint frame in SI units:

    angle = drive_direction * (ticks - homing_offset) * 2 pi / ticks_per_revolution

and keeps readings and goals inside ``[range_min, range_max]`` ticks, the range measured
when the robot was calibrated, so a goal can never drive a joint past where it was seen to
go. Velocities only need the direction: ``rad/s = drive_direction * raw * velocity_unit``.

Calibrations are stored as one JSON object per robot (motor name -> the four integers),
next to the robot's config, and written atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping

from robo_policies.utils.atomic import atomic_write_text
from robo_policies.utils.errors import ConfigError

CALIBRATION_KEYS = ("homing_offset", "range_min", "range_max", "drive_direction")


class CalibrationError(ConfigError):
    """A calibration file that cannot be used; the message names the file, motor and key."""


@dataclass(frozen=True)
class MotorCalibration:
    """One motor's calibration, all in encoder ticks."""

    homing_offset: int
    """Ticks at which the joint angle is zero."""
    range_min: int
    """Lowest tick the joint may reach."""
    range_max: int
    """Highest tick the joint may reach."""
    drive_direction: int = 1
    """+1 when the joint turns with the encoder, -1 when the motor is mounted the other way."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not hasattr(value, "__index__"):
                raise ValueError(f"{field.name!r} must be an integer number of ticks, got {value!r}")
            object.__setattr__(self, field.name, int(value))  # numpy ints -> int, for JSON
        if self.drive_direction not in (1, -1):
            raise ValueError(f"'drive_direction' must be 1 or -1, got {self.drive_direction!r}")
        if self.range_min > self.range_max:
            raise ValueError(f"'range_min' ({self.range_min}) is above 'range_max' ({self.range_max})")

    @classmethod
    def full_turn(cls, ticks_per_revolution: int) -> MotorCalibration:
        """The calibration of an uncalibrated motor: zero at tick 0, the whole turn allowed."""
        return cls(homing_offset=0, range_min=0, range_max=ticks_per_revolution - 1)

    def clamp(self, ticks: int) -> int:
        return min(max(int(ticks), self.range_min), self.range_max)

    def ticks_to_radians(self, ticks: int, ticks_per_revolution: int, clamp: bool = True) -> float:
        """Joint angle (rad) of an encoder reading; clamped to the range unless ``clamp`` is off."""
        if clamp:
            ticks = self.clamp(ticks)
        return self.drive_direction * (int(ticks) - self.homing_offset) * 2 * math.pi / ticks_per_revolution

    def radians_to_ticks(self, radians: float, ticks_per_revolution: int, clamp: bool = True) -> int:
        """Encoder goal (ticks, rounded) for a joint angle; clamped to the range unless ``clamp`` is off."""
        ticks = self.homing_offset + round(self.drive_direction * radians * ticks_per_revolution / (2 * math.pi))
        return self.clamp(ticks) if clamp else ticks

    def raw_to_rad_per_s(self, raw: int, velocity_unit: float) -> float:
        """Joint speed (rad/s) of a velocity register value (``velocity_unit``: rad/s per unit)."""
        return self.drive_direction * int(raw) * velocity_unit

    def rad_per_s_to_raw(self, rad_per_s: float, velocity_unit: float) -> int:
        """Velocity register value (rounded) for a joint speed in rad/s."""
        return round(self.drive_direction * rad_per_s / velocity_unit)


def save_calibration(path: str | Path, calibration: Mapping[str, MotorCalibration]) -> None:
    """Write ``calibration`` (motor name -> calibration) to ``path`` as JSON, atomically."""
    text = json.dumps({name: asdict(motor) for name, motor in calibration.items()}, indent=2)
    atomic_write_text(path, text + "\n")


def load_calibration(path: str | Path) -> dict[str, MotorCalibration]:
    """Read a calibration file written by ``save_calibration``.

    Raises ``CalibrationError`` naming the file, the motor and the bad key or value when the
    file is not valid JSON or an entry is malformed (``FileNotFoundError`` when it is absent).
    """
    path = Path(path)
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CalibrationError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}): "
                               f"{err.msg}") from err
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: expected an object mapping motor names to calibrations, "
                               f"got {type(data).__name__}")
    calibration = {}
    for name, entry in data.items():
        where = f"{path}: motor {name!r}"
        if not isinstance(entry, dict):
            raise CalibrationError(f"{where}: expected an object with keys {list(CALIBRATION_KEYS)}, "
                                   f"got {entry!r}")
        missing = [key for key in CALIBRATION_KEYS if key not in entry]
        unknown = [key for key in entry if key not in CALIBRATION_KEYS]
        if missing:
            raise CalibrationError(f"{where}: missing key(s) {missing}")
        if unknown:
            raise CalibrationError(f"{where}: unknown key(s) {unknown}; expected {list(CALIBRATION_KEYS)}")
        try:
            calibration[name] = MotorCalibration(**entry)
        except ValueError as err:
            raise CalibrationError(f"{where}: {err}") from err
    return calibration
