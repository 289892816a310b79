"""``robo robot check``: is the robot ready to run a policy? One pass over everything it needs.

In order: what the robot's kind needs before connecting (a bus robot: its calibration file),
the connection, the kind's look at the connected device (a bus robot: every motor read
against its calibrated range), an observation, the e-stop (not latched, no stop file), a
hold command through the safety chain (an arm: its present position; a base: zero wheel
speeds) and what the device shows of it (a bus robot: the servos' goal registers), a NaN
command that the chain must refuse (what is sent is the hold), and the disconnect that
turns torque off. The robot never moves: every command sent is "stay where you are", and
when a check before connecting fails (an arm without its calibration) the robot is not
connected at all, so nothing is powered (a bus kind also refuses to build an arm without
calibration for teleop, record or deploy).

A table of results is printed; any failure raises ``CheckFailed`` naming the first failing
check, which ``robo`` reports with exit status 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_policies.robots.config import RobotConfig, text_table
from robo_policies.robots.factory import make_robot
from robo_policies.robots.motors import CalibrationError
from robo_policies.robots.registry import RobotKind, robot_kind
from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import DeviceFault


class CheckFailed(DeviceFault):
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
    kind = robot_kind(config.kind)
    results = kind.check_setup(config)
    if any(result.status == "FAIL" for result in results):  # e.g. no calibration: never power it
        results.append(CheckResult("connect", "SKIP", "not connected: nothing is powered or sent "
                                   "until the failed checks above pass"))
        return _report(results)
    try:
        robot = make_robot(config, port=port)
        robot.connect()
    except (CalibrationError, DeviceFault) as err:
        results.append(CheckResult("connect", "FAIL", str(err)))
        return _report(results)
    results.append(CheckResult("connect", "PASS", kind.describe_connection(robot)))
    try:
        results += kind.check_connected(robot)
        results += _check_commands(robot, config, kind)
    finally:
        try:
            robot.disconnect()
            results.append(CheckResult("disconnect", "PASS", "torque off"))
        except DeviceFault as err:
            results.append(CheckResult("disconnect", "FAIL", str(err)))
    return _report(results)


def _check_commands(robot: Robot, config: RobotConfig, kind: RobotKind) -> list[CheckResult]:
    """Observation, e-stop, the hold command and a NaN command: the same for every kind."""
    observation = robot.get_observation()
    shapes = {key: tuple(np.shape(observation.get(key))) for key in robot.observation_features}
    wrong = {key: shape for key, shape in shapes.items() if shape != robot.observation_features[key]}
    finite = all(np.all(np.isfinite(observation[key])) for key in shapes if key in observation)
    results = [CheckResult("observation", "FAIL" if wrong or not finite else "PASS",
                           f"shapes {wrong} differ from {robot.observation_features}" if wrong else
                           "not finite" if not finite else ", ".join(f"{k} {s}" for k, s in shapes.items()))]

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
        results.append(kind.check_hold(robot) or CheckResult("hold", "PASS", "sent unchanged"))

    bad = hold.copy()
    bad[0] = np.nan
    try:
        refused = robot.send_action(bad)
    except ValueError as err:
        results.append(CheckResult("nan refused", "FAIL", f"a NaN command reached the device ({err}): put "
                                   "{type: reject_non_finite} first in the config's safety list"))
    else:
        ok = np.all(np.isfinite(refused)) and np.allclose(refused, sent, atol=1e-9)
        results.append(CheckResult("nan refused", "PASS" if ok else "FAIL",
                                   f"sent {np.round(refused, 4).tolist()} for {bad.tolist()}"))
    return results


def _report(results: list[CheckResult]) -> list[CheckResult]:
    print(text_table(("check", "result", "detail"), [(r.name, r.status, r.detail) for r in results]))
    failed = [r for r in results if r.status == "FAIL"]
    if failed:
        names = ", ".join(r.name for r in failed)
        raise CheckFailed(f"robot check failed ({names}): {failed[0].name}: {failed[0].detail}")
    return results
