"""``robo robot check``: is the robot ready to run a policy? One pass over everything it needs.

In order: the calibration file, the connection (every motor answers as its configured
model), a read of every motor against its calibrated range, an observation, the e-stop
(not latched, no stop file), a hold command through the safety chain (an arm: its present
position; a base: zero wheel speeds) checked in the servos' goal registers, a NaN command
that the chain must refuse (what is sent is the hold), and the disconnect that turns torque
off. The robot never moves: every command sent is "stay where you are".

A table of results is printed; any failure raises ``CheckFailed`` naming the first failing
check, which ``robo`` turns into one ``error:`` line and exit status 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_policies.robots.arm import ManipulatorArm
from robo_policies.robots.config import RobotConfig, text_table
from robo_policies.robots.factory import make_robot
from robo_policies.robots.motors import CalibrationError, MotorBusError
from robo_policies.robots.wheeled_base import WheeledBase

GOAL_TOLERANCE_TICKS = 2
"""How far a holding goal register may be from the present position (encoder noise)."""


class CheckFailed(RuntimeError):
    """At least one check failed; the message names the first."""


@dataclass
class CheckResult:
    name: str
    status: str
    """PASS, FAIL or WARN (reported, not a failure)."""
    detail: str


def check_robot(config: RobotConfig, port: str | None = None) -> list[CheckResult]:
    """Run every check on the robot (see the module docstring), print the tables, and raise
    ``CheckFailed`` if any failed."""
    results: list[CheckResult] = []
    calibration_path = config.directory / config.calibration
    if calibration_path.is_file():
        results.append(CheckResult("calibration", "PASS", str(calibration_path)))
    elif config.kind == "arm":
        results.append(CheckResult("calibration", "FAIL", f"{calibration_path} is missing: run "
                                   f"`robo robot calibrate robot={config.name}`"))
    else:
        results.append(CheckResult("calibration", "WARN", f"{calibration_path} is missing: every wheel "
                                   f"turns with its encoder (`robo robot calibrate robot={config.name}` measures it)"))
    try:
        robot = make_robot(config, port=port)
        robot.connect()
    except (CalibrationError, MotorBusError) as err:
        results.append(CheckResult("connect", "FAIL", str(err)))
        return _report(results)
    assert isinstance(robot, (ManipulatorArm, WheeledBase))
    results.append(CheckResult("connect", "PASS", f"{len(robot.bus.motors)} motors answer on {robot.bus.port} "
                               f"at {robot.bus.baudrate} bit/s"))
    try:
        results += _check_connected(robot, config)
    finally:
        try:
            robot.disconnect()
            results.append(CheckResult("disconnect", "PASS", "torque off"))
        except MotorBusError as err:
            results.append(CheckResult("disconnect", "FAIL", str(err)))
    return _report(results)


def _check_connected(robot: ManipulatorArm | WheeledBase, config: RobotConfig) -> list[CheckResult]:
    bus = robot.bus
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
    joints = any(motor.mode == "position" for motor in bus.motors.values())
    results = [CheckResult("range", "FAIL", "outside the calibrated range: " + "; ".join(outside)) if outside
               else CheckResult("range", "PASS", "every joint inside its calibrated range" if joints
                                else "no joints (wheels turn freely)")]

    observation = robot.get_observation()
    shapes = {key: tuple(np.shape(observation.get(key))) for key in robot.observation_features}
    wrong = {key: shape for key, shape in shapes.items() if shape != robot.observation_features[key]}
    finite = all(np.all(np.isfinite(observation[key])) for key in shapes if key in observation)
    results.append(CheckResult("observation", "FAIL" if wrong or not finite else "PASS",
                               f"shapes {wrong} differ from {robot.observation_features}" if wrong else
                               "not finite" if not finite else ", ".join(f"{k} {s}" for k, s in shapes.items())))

    estop = robot.estop
    sources = f"stop file {config.estop.file}, key {config.estop.key}, signal {config.estop.signal}"
    results.append(CheckResult("e-stop", "FAIL", f"latched: {estop.reason}") if estop.is_latched
                   else CheckResult("e-stop", "PASS", f"not latched ({sources})"))

    hold = robot.hold_command()
    sent = robot.send_action(hold)
    if not np.allclose(sent, hold, atol=1e-9):
        results.append(CheckResult("hold", "FAIL", f"the safety chain changed the hold command "
                                   f"({robot.safety.last_event}): sent {np.round(sent, 4).tolist()}"))
    else:
        results.append(_check_goal_registers(robot))

    bad = hold.copy()
    bad[0] = np.nan
    try:
        refused = robot.send_action(bad)
    except ValueError as err:
        results.append(CheckResult("nan refused", "FAIL", f"a NaN command reached the bus ({err}): put "
                                   "{type: reject_non_finite} first in the config's safety list"))
    else:
        ok = np.all(np.isfinite(refused)) and np.allclose(refused, sent, atol=1e-9)
        results.append(CheckResult("nan refused", "PASS" if ok else "FAIL",
                                   f"sent {np.round(refused, 4).tolist()} for {bad.tolist()}"))
    return results


def _check_goal_registers(robot: ManipulatorArm | WheeledBase) -> CheckResult:
    """What the servos hold as their goal after the hold command: the present position, or speed 0."""
    bus = robot.bus
    if isinstance(robot, ManipulatorArm):
        goals, present = bus.read("goal_position"), bus.read("present_position")
        off = {name: int(goal - now) for name, goal, now in zip(bus.motors, goals, present)
               if abs(goal - now) > GOAL_TOLERANCE_TICKS}
        return (CheckResult("hold", "FAIL", f"goal positions differ from the present ones by {off} ticks") if off
                else CheckResult("hold", "PASS", "goal position = present position on every motor"))
    goals = bus.read("goal_velocity")
    return (CheckResult("hold", "FAIL", f"goal velocities {goals.tolist()} after a zero command") if np.any(goals)
            else CheckResult("hold", "PASS", "goal velocity 0 on every wheel"))


def _report(results: list[CheckResult]) -> list[CheckResult]:
    print(text_table(("check", "result", "detail"), [(r.name, r.status, r.detail) for r in results]))
    failed = [r for r in results if r.status == "FAIL"]
    if failed:
        names = ", ".join(r.name for r in failed)
        raise CheckFailed(f"robot check failed ({names}): {failed[0].name}: {failed[0].detail}")
    return results
