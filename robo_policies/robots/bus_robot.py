"""Robots whose motors are servos on one ``MotorBus``: what the arm and the wheeled bases share.

``BusRobot`` connects the bus, puts each motor in its operating mode and turns torque on (off
again when it disconnects). ``BusRobotKind`` is the part of a robot kind that follows from
the bus: the bus built from the config with its calibration; ``robo robot calibrate``'s
frame (torque off, raw ticks sampled while the user moves the robot by hand, the kind's
``measure`` turning the samples into a calibration); and ``robo robot check``'s look at the
servos (every motor answers, each joint inside its calibrated range, the goal registers
after the hold command).
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from robo_policies.robots.bus_setup import Prompt
from robo_policies.robots.check import CheckResult
from robo_policies.robots.clock import WALL_CLOCK, Clock
from robo_policies.robots.config import RobotConfig, text_table
from robo_policies.robots.motors import (CalibrationError, Motor, MotorBus, MotorCalibration, load_calibration,
                                         motor_bus_class)
from robo_policies.robots.motors.bus import MotorMode
from robo_policies.robots.registry import RobotKind
from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import ConfigError

SAMPLE_PERIOD_S = 0.02
"""How often ticks are read while the user moves the robot during calibration."""
GOAL_TOLERANCE_TICKS = 2
"""How far a holding goal register may be from the present position (encoder noise)."""
MIN_COMM_WATCHDOG_MS = 100.0
COMM_WATCHDOG_PERIODS = 3
"""The servos' communication watchdog waits this many command periods (at least
``MIN_COMM_WATCHDOG_MS``) unless the config's ``bus.comm_watchdog_ms`` says otherwise."""
RANGE_MARGIN_RAD = 0.05
"""How far outside its calibrated range a joint may stand when torque goes on (its hold is
clamped into the range, so this is the most a connect can move it)."""


class BusRobot(Robot):
    """A robot whose motors are the servos of ``bus``, in command order.

    Args:
        name: the robot's name.
        bus: its servos, not yet connected; each motor's mode (position or velocity) is set
            on connect.
        **robot_kwargs: safety chain, watchdog, period and clock (see ``Robot``).
    """

    connects_unpowered = True

    def __init__(self, name: str, bus: MotorBus, **robot_kwargs: Any) -> None:
        super().__init__(name, **robot_kwargs)
        self.bus = bus

    def _connect(self) -> None:
        self.bus.connect()
        require_joints_in_range(self.bus)  # before torque: a wrong calibration must not move the arm
        self.bus.apply_operating_modes()  # position: each goal set to where it stands; velocity: 0
        self.bus.enable_torque()

    def _connect_unpowered(self) -> None:
        self.bus.connect()  # reads only: modes, goals and torque are left as they are

    def _disconnect(self) -> None:
        self.bus.disconnect(disable_torque=True)


def require_joints_in_range(bus: MotorBus) -> None:
    """CalibrationError, with torque still off, when a joint stands outside its calibrated
    range by more than ``RANGE_MARGIN_RAD``: the calibration does not match these motors (or
    the joint was moved past it), and holding it would drive it into range."""
    ticks = bus.read("present_position")
    outside = []
    for (name, motor), tick in zip(bus.motors.items(), ticks):
        calibration = bus.calibration[name]
        beyond = max(calibration.range_min - tick, tick - calibration.range_max, 0)
        margin = RANGE_MARGIN_RAD / (2 * np.pi) * ticks_per_revolution(bus, name)
        if motor.mode == "position" and beyond > margin:
            outside.append(f"{name} at tick {tick}, range {calibration.range_min}..{calibration.range_max}")
    if outside:
        raise CalibrationError(f"{bus.port}: joints outside their calibrated range ({'; '.join(outside)}): the "
                               "calibration does not match these motors; recalibrate, or move the joints into "
                               "range by hand. Torque stays off")


class BusRobotKind(RobotKind):
    """A kind whose robots are ``BusRobot``s with every motor in ``motor_mode``."""

    motor_mode: ClassVar[MotorMode]
    calibration_required: ClassVar[bool]
    """Whether ``robo robot check`` fails without a calibration file (a joint's zero matters,
    a wheel's does not)."""

    def make_bus(self, config: RobotConfig, port: str | None = None, calibrated: bool = True, *,
                 period_s: float | None = None, clock: Clock = WALL_CLOCK) -> MotorBus:
        """The robot's bus (not connected), with its calibration when the file exists and
        ``calibrated`` is set (calibrating reads raw ticks and must not depend on an old
        file); ``port`` replaces the configured one. ``period_s`` and ``clock``: the command
        loop's, which the servos' communication watchdog follows (``bus.comm_watchdog_ms``)."""
        motors = [Motor(name, motor.id, motor.model, self.motor_mode) for name, motor in config.motors.items()]
        calibration_path = config.directory / config.calibration
        if calibrated and self.calibration_required and not calibration_path.is_file():
            # A joint's zero decides where a goal position sends it: no torque without it.
            raise ConfigError(f"{calibration_path} is missing: run `robo robot calibrate robot={config.name}` "
                              "before anything is powered or moved")
        calibration = load_calibration(calibration_path) if calibrated and calibration_path.is_file() else None
        watchdog_ms = config.bus.comm_watchdog_ms
        if watchdog_ms is None:
            watchdog_ms = max(MIN_COMM_WATCHDOG_MS, COMM_WATCHDOG_PERIODS * 1000.0 * (period_s or 0.0))
        bus_class = motor_bus_class(config.bus.vendor)
        return bus_class(port or config.bus.port, motors, calibration, baudrate=config.bus.baudrate,
                         comm_watchdog_ms=watchdog_ms or None, clock=clock.now)

    # -- robo robot calibrate ------------------------------------------------------------------

    def calibrate(self, config: RobotConfig, port: str | None, prompt: Prompt,
                  previous: dict[str, MotorCalibration]) -> dict[str, MotorCalibration]:
        bus = self.make_bus(config, port, calibrated=False)
        bus.connect()
        try:
            bus.disable_torque()
            print(f"torque is off on every motor of {config.name}: move it by hand")
            return self.measure(bus, prompt, previous)
        finally:
            bus.disconnect()

    @abstractmethod
    def measure(self, bus: MotorBus, prompt: Prompt,
                previous: dict[str, MotorCalibration]) -> dict[str, MotorCalibration]:
        """The calibration, from raw ticks read while the user moves the robot (torque off)."""

    # -- robo robot check ------------------------------------------------------------------------

    def check_setup(self, config: RobotConfig) -> list[CheckResult]:
        path = config.directory / config.calibration
        if path.is_file():
            return [CheckResult("calibration", "PASS", str(path))]
        if self.calibration_required:
            return [CheckResult("calibration", "FAIL", f"{path} is missing: run "
                                f"`robo robot calibrate robot={config.name}`")]
        return [CheckResult("calibration", "WARN", f"{path} is missing: every wheel turns with its encoder "
                            f"(`robo robot calibrate robot={config.name}` measures it)")]

    def describe_connection(self, robot: Robot) -> str:
        bus = _bus_of(robot)
        return f"{len(bus.motors)} motors answer on {bus.port} at {bus.baudrate} bit/s"

    def check_connected(self, robot: Robot) -> list[CheckResult]:
        """Prints every motor's reading; the range check."""
        bus = _bus_of(robot)
        ticks = bus.read("present_position")
        positions, velocities = bus.read_positions(), bus.read_velocities()
        rows, outside = [], []
        for index, (name, motor) in enumerate(bus.motors.items()):
            calibration = bus.calibration[name]
            if motor.mode == "position":
                inside = calibration.range_min <= ticks[index] <= calibration.range_max
                in_range = "yes" if inside else f"NO ({calibration.range_min}..{calibration.range_max})"
                if not inside:
                    outside.append(f"{name} at tick {ticks[index]}, range {calibration.range_min}..{calibration.range_max}")
            else:
                in_range = "- (wheel)"
            rows.append((name, str(motor.id), motor.model, str(ticks[index]), f"{positions[index]:+.3f}",
                         f"{velocities[index]:+.3f}", in_range))
        print(text_table(("motor", "id", "model", "ticks", "position rad", "velocity rad/s", "in range"), rows))
        if outside:
            return [CheckResult("range", "FAIL", "outside the calibrated range: " + "; ".join(outside))]
        return [CheckResult("range", "PASS", "every joint inside its calibrated range" if self.motor_mode == "position"
                            else "no joints (wheels turn freely)")]

    def check_hold(self, robot: Robot) -> CheckResult:
        """What the servos hold as their goal: the present position, or speed 0."""
        bus = _bus_of(robot)
        if self.motor_mode == "position":
            goals, present = bus.read("goal_position"), bus.read("present_position")
            off = {name: int(goal - now) for name, goal, now in zip(bus.motors, goals, present)
                   if abs(goal - now) > GOAL_TOLERANCE_TICKS}
            return (CheckResult("hold", "FAIL", f"goal positions differ from the present ones by {off} ticks") if off
                    else CheckResult("hold", "PASS", "goal position = present position on every motor"))
        goals = bus.read("goal_velocity")
        return (CheckResult("hold", "FAIL", f"goal velocities {goals.tolist()} after a zero command") if np.any(goals)
                else CheckResult("hold", "PASS", "goal velocity 0 on every wheel"))


def _bus_of(robot: Robot) -> MotorBus:
    if not isinstance(robot, BusRobot):  # a twin: built with sim=true, which check never does
        raise TypeError(f"{robot.name} is a {type(robot).__name__}, not a robot on a motor bus")
    return robot.bus


def sample_while(bus: MotorBus, prompt: Prompt, message: str) -> np.ndarray:
    """Raw positions (samples, motors) read every ``SAMPLE_PERIOD_S`` until ``prompt(message)``
    returns (the user moving the robot meanwhile)."""
    failure: list[BaseException] = []

    def ask() -> None:
        try:
            prompt(message)
        except EOFError:
            failure.append(ConfigError("standard input closed: robo robot calibrate is interactive"))
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


def ticks_per_revolution(bus: MotorBus, name: str) -> int:
    """Encoder ticks in one turn of motor ``name``."""
    return bus.models[bus.motors[name].model].ticks_per_revolution
