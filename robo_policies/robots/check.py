"""``robo robot check``: is the robot ready to run a policy? One pass over everything it needs.

In order: what the robot's kind needs before connecting (a bus robot: its calibration file),
the connection, the kind's look at the connected device (a bus robot: every motor read
against its calibrated range), an observation, the e-stop (not latched, no stop file), a
hold command through the safety chain (an arm: its present position; a base: zero wheel
speeds), a NaN command that the chain must refuse (it must give the hold), and the
disconnect.

By default the check only reads: the robot is connected without power (torque stays off)
and the hold and NaN commands are dry runs through the chain, never sent. With ``move=true``
it powers the robot (refused, like teleop, record and deploy, when a joint stands outside its
calibration), sends the hold and reads back what the device holds (a bus robot: the servos'
goal registers), sends the NaN command, then one small step (``move_step``, rad or rad/s on
the first command dimension) through the chain and the hold again. When a check before
connecting fails (an arm without its calibration) the robot is not connected at all.

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


MOVE_STEP = 0.05
"""The default step of ``move=true``: rad for a joint, rad/s for a wheel."""


def check_robot(config: RobotConfig, port: str | None = None, move: bool = False,
                move_step: float = MOVE_STEP) -> list[CheckResult]:
    """Run every check on the robot (see the module docstring), print the tables, and raise
    ``CheckFailed`` if any failed. Only ``move`` powers the robot and sends commands."""
    kind = robot_kind(config.kind)
    results = kind.check_setup(config)
    if any(result.status == "FAIL" for result in results):  # e.g. no calibration: never power it
        results.append(CheckResult("connect", "SKIP", "not connected: nothing is powered or sent "
                                   "until the failed checks above pass"))
        return _report(results)
    try:
        robot = make_robot(config, port=port)
        robot.connect(powered=move)
    except (CalibrationError, DeviceFault) as err:
        results.append(CheckResult("connect", "FAIL", str(err)))
        return _report(results)
    power = "powered" if robot.is_powered else "read only, torque off (move=true powers it)"
    results.append(CheckResult("connect", "PASS", f"{kind.describe_connection(robot)}; {power}"))
    try:
        results += kind.check_connected(robot)
        results += _check_commands(robot, config, kind, move_step if move else None)
    finally:
        try:
            robot.disconnect()
            results.append(CheckResult("disconnect", "PASS", "torque off"))
        except DeviceFault as err:
            results.append(CheckResult("disconnect", "FAIL", str(err)))
    return _report(results)


def _check_commands(robot: Robot, config: RobotConfig, kind: RobotKind,
                    move_step: float | None) -> list[CheckResult]:
    """Observation, e-stop, the hold command and a NaN command (dry runs through the chain
    unless ``move_step`` is given, which also sends one step): the same for every kind."""
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

    moving = move_step is not None
    send = robot.send_action if moving else (lambda command: robot.filtered(command)[0])
    verb = "sent" if moving else "would send (dry run)"
    hold = robot.hold_command()
    sent = send(hold)
    if not np.allclose(sent, hold, atol=1e-9):
        results.append(CheckResult("hold", "FAIL", f"the safety chain changed the hold command "
                                   f"({robot.safety.last_event}): {verb} {np.round(sent, 4).tolist()}"))
    elif moving:
        results.append(kind.check_hold(robot) or CheckResult("hold", "PASS", "sent unchanged"))
    else:
        results.append(CheckResult("hold", "PASS", "the chain leaves it unchanged (dry run)"))

    bad = hold.copy()
    bad[0] = np.nan
    try:
        refused = send(bad)
    except ValueError as err:
        results.append(CheckResult("nan refused", "FAIL", f"a NaN command reached the device ({err}): put "
                                   "{type: reject_non_finite} first in the config's safety list"))
    else:
        ok = np.all(np.isfinite(refused)) and np.allclose(refused, sent, atol=1e-9)
        results.append(CheckResult("nan refused", "PASS" if ok else "FAIL",
                                   f"{verb} {np.round(refused, 4).tolist()} for {bad.tolist()}"))
    if moving:
        results.append(_check_step(robot, hold, move_step))
    return results


def _check_step(robot: Robot, hold: np.ndarray, step: float) -> CheckResult:
    """One step of the first command dimension away from the hold, through the chain, then
    the hold again; the chain may shorten the step but never lengthen it."""
    target = hold.copy()
    target[0] += step
    try:
        sent = robot.send_action(target)
    finally:
        robot.stop()
    moved = float(sent[0] - hold[0])
    name = robot.action_names[0]
    if not 0 <= moved * np.sign(step) <= abs(step) + 1e-9 or not np.allclose(sent[1:], hold[1:], atol=1e-9):
        return CheckResult("step", "FAIL", f"asked {name} {step:+.3f} from the hold, sent "
                           f"{np.round(sent - hold, 4).tolist()}")
    limited = f" (the chain limited it: {robot.safety.last_event})" if abs(moved - step) > 1e-9 else ""
    return CheckResult("step", "PASS", f"{name} {moved:+.3f} from the hold, then held{limited}")


def _report(results: list[CheckResult]) -> list[CheckResult]:
    print(text_table(("check", "result", "detail"), [(r.name, r.status, r.detail) for r in results]))
    failed = [r for r in results if r.status == "FAIL"]
    if failed:
        names = ", ".join(r.name for r in failed)
        raise CheckFailed(f"robot check failed ({names}): {failed[0].name}: {failed[0].detail}")
    return results
