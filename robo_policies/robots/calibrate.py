"""``robo robot calibrate``: measure each motor's zero, range and direction by hand.

With torque off the user moves the robot while the bus reads raw encoder ticks:

* an arm: every joint to its zero pose (the twin's zero: upper arm vertical, forearm
  forward, tool down, wrist roll centred) with the gripper fully open, which gives the
  homing offsets; then every joint through its whole range while the ticks are sampled,
  which gives ``range_min`` / ``range_max``. The gripper's open end must be its low-tick
  end (``range_min`` = open, ``range_max`` = closed, as ``arm.py`` maps the closure).
  Drive directions are kept from the previous file (1 for a new one): a joint mounted
  mirrored is set to -1 in the file once.
* a base: the wheels turn freely, so zero and range are trivial (tick 0, the whole turn);
  the user rolls the base along a known motion (a differential drive forward, an omni base
  counter-clockwise in place) and each wheel's direction follows from the sign of its travel.

The result is written atomically (``save_calibration``) to the config's calibration file
next to ``robot.yaml``. Steps that wait for the user go through ``prompt`` (``input``);
ticks are sampled while it waits, so a test can move its fake servos from inside ``prompt``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from robo_policies.robots.bus_setup import Prompt
from robo_policies.robots.config import RobotConfig, text_table
from robo_policies.robots.factory import make_motor_bus
from robo_policies.robots.motors import CalibrationError, MotorBus, MotorCalibration, load_calibration, save_calibration

SAMPLE_PERIOD_S = 0.02
"""How often ticks are read while the user moves the robot."""
MIN_JOINT_TRAVEL = 50
"""Ticks (about 4 degrees on a 4096-tick encoder) a joint must move to have a range."""
MIN_WHEEL_TRAVEL = 200
"""Ticks a wheel must turn for its direction to count."""

ZERO_POSE = ("Move every joint to its zero pose (upper arm vertical, forearm pointing forward, tool "
             "pointing down, wrist roll centred) and open the gripper fully; then press Enter. ")
SWEEP = ("Move every joint slowly through its whole range, and the gripper from fully open to fully "
         "closed; press Enter when done. ")
WHEEL_MOTION = {
    "diffdrive": "Roll the base straight forward by hand, about one wheel turn; then press Enter. ",
    "omni": ("Turn the base counter-clockwise (seen from above) in place by hand, about a quarter "
             "turn; then press Enter. "),
}


def calibrate_robot(config: RobotConfig, port: str | None = None, prompt: Prompt = input) -> dict[str, MotorCalibration]:
    """Run the procedure for ``config``'s robot, save the calibration file and return it."""
    path = config.directory / config.calibration
    previous = _previous_calibration(path)
    bus = make_motor_bus(config, port, calibrated=False)
    bus.connect()
    try:
        bus.disable_torque()
        print(f"torque is off on every motor of {config.name}: move it by hand")
        if config.kind == "arm":
            calibration = _calibrate_arm(bus, prompt, previous)
        else:
            calibration = _calibrate_wheels(bus, WHEEL_MOTION[config.kind], prompt)
    finally:
        bus.disconnect()
    save_calibration(path, calibration)
    print(calibration_table(calibration))
    print(f"wrote {path}")
    return calibration


def calibration_table(calibration: dict[str, MotorCalibration]) -> str:
    """One row per motor: homing offset, range and direction (ticks)."""
    return text_table(("motor", "homing_offset", "range_min", "range_max", "drive_direction"),
                      [(name, str(c.homing_offset), str(c.range_min), str(c.range_max), f"{c.drive_direction:+d}")
                       for name, c in calibration.items()])


def _calibrate_arm(bus: MotorBus, prompt: Prompt, previous: dict[str, MotorCalibration]) -> dict[str, MotorCalibration]:
    zero = _sample_while(bus, prompt, ZERO_POSE)[-1]
    print("recording the range of every joint ...")
    sweep = _sample_while(bus, prompt, SWEEP)
    names = list(bus.motors)
    calibration = {}
    for index, name in enumerate(names):
        ticks = sweep[:, index]
        revolution = _ticks_per_revolution(bus, name)
        if np.any(np.abs(np.diff(ticks)) > revolution // 2):
            raise CalibrationError(f"motor {name!r} crossed its encoder's wrap (tick {revolution - 1} -> 0) while "
                                   "moving through its range, so the range is not one interval of ticks: remount "
                                   "the servo horn so the joint's zero pose reads near the middle of the turn")
        low, high = min(int(ticks.min()), int(zero[index])), max(int(ticks.max()), int(zero[index]))
        if high - low < MIN_JOINT_TRAVEL:
            raise CalibrationError(f"motor {name!r} moved only {high - low} ticks: move every joint through "
                                   "its whole range")
        if index == len(names) - 1 and zero[index] - low > high - zero[index]:
            raise CalibrationError(f"the gripper {name!r} opens towards high encoder ticks (open {zero[index]}, "
                                   f"range {low}..{high}), but range_min must be its open end: remount its servo "
                                   "horn mirrored, or check that it was fully open in the zero pose")
        direction = previous[name].drive_direction if name in previous else 1
        calibration[name] = MotorCalibration(int(zero[index]), low, high, direction)
    return calibration


def _calibrate_wheels(bus: MotorBus, motion: str, prompt: Prompt) -> dict[str, MotorCalibration]:
    print("recording the wheels' travel ...")
    sweep = _sample_while(bus, prompt, motion)
    calibration = {}
    for index, name in enumerate(bus.motors):
        revolution = _ticks_per_revolution(bus, name)
        half = revolution // 2
        travel = int(np.sum((np.diff(sweep[:, index]) + half) % revolution - half))  # unwrapped
        if abs(travel) < MIN_WHEEL_TRAVEL:
            raise CalibrationError(f"wheel {name!r} turned only {abs(travel)} ticks: {motion.split(';')[0]}")
        calibration[name] = MotorCalibration(0, 0, revolution - 1, 1 if travel > 0 else -1)
    return calibration


def _sample_while(bus: MotorBus, prompt: Prompt, message: str) -> np.ndarray:
    """Raw positions (samples, motors) read every ``SAMPLE_PERIOD_S`` until ``prompt`` returns."""
    failure: list[BaseException] = []

    def ask() -> None:
        try:
            prompt(message)
        except EOFError:
            failure.append(RuntimeError("standard input closed: robo robot calibrate is interactive"))
        except BaseException as err:  # handed to the sampling thread, which raises it
            failure.append(err)

    waiting = threading.Thread(target=ask, name="calibrate-prompt", daemon=True)
    samples = [bus.read("present_position")]
    waiting.start()
    while waiting.is_alive():
        waiting.join(SAMPLE_PERIOD_S)
        samples.append(bus.read("present_position"))
    if failure:
        raise failure[0]
    return np.stack(samples)


def _ticks_per_revolution(bus: MotorBus, name: str) -> int:
    return bus.models[bus.motors[name].model].ticks_per_revolution


def _previous_calibration(path: Path) -> dict[str, MotorCalibration]:
    """The existing file's calibration, to keep its drive directions; {} if none or unreadable."""
    if not path.is_file():
        return {}
    try:
        return load_calibration(path)
    except CalibrationError as err:
        print(f"ignoring the unreadable {path}: {err}")
        return {}
