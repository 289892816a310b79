"""``robo robot calibrate``: measure each motor's zero, range and direction by hand.

The robot's kind knows the procedure (``RobotKind.calibrate``; an arm's zero pose and
joint sweep are described in ``arm.py``, a base's roll in ``wheeled_base.py``). What is the
same for every kind lives here: the previous file is read (an arm keeps its drive
directions), and the result is written atomically (``save_calibration``) to the config's
calibration file next to ``robot.yaml`` and printed. Steps that wait for the user go
through ``prompt`` (``terminal_prompt``); a bus robot samples its ticks while it waits, so a test can
move its fake servos from inside ``prompt``.
"""

from __future__ import annotations

from pathlib import Path

from robo_policies.robots.bus_setup import Prompt, terminal_prompt
from robo_policies.robots.config import RobotConfig, text_table
from robo_policies.robots.motors import CalibrationError, MotorCalibration, load_calibration, save_calibration
from robo_policies.robots.registry import robot_kind


def calibrate_robot(config: RobotConfig, port: str | None = None,
                    prompt: Prompt = terminal_prompt) -> dict[str, MotorCalibration]:
    """Run the procedure of ``config``'s kind, save the calibration file and return it."""
    path = config.directory / config.calibration
    calibration = robot_kind(config.kind).calibrate(config, port, prompt, _previous_calibration(path))
    save_calibration(path, calibration)
    print(calibration_table(calibration))
    print(f"wrote {path}")
    return calibration


def calibration_table(calibration: dict[str, MotorCalibration]) -> str:
    """One row per motor: homing offset, range and direction (ticks)."""
    return text_table(("motor", "homing_offset", "range_min", "range_max", "drive_direction"),
                      [(name, str(c.homing_offset), str(c.range_min), str(c.range_max), f"{c.drive_direction:+d}")
                       for name, c in calibration.items()])


def _previous_calibration(path: Path) -> dict[str, MotorCalibration]:
    """The existing file's calibration, to keep its drive directions; {} if none or unreadable."""
    if not path.is_file():
        return {}
    try:
        return load_calibration(path)
    except CalibrationError as err:
        print(f"ignoring the unreadable {path}: {err}")
        return {}
