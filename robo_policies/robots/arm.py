"""The ``arm`` kind: a manipulator arm on a motor bus, joint position targets plus a gripper.

Commands are the joints' targets in rad, then the gripper's closure in [0, 1] (0 open,
1 closed), the same as the arm task's actions, so a policy trained on the MuJoCo arm sends
what this class writes. The gripper servo's calibrated range maps onto the closure: its
``range_min`` end is open and its ``range_max`` end closed.

``robo robot calibrate`` (torque off): the user moves every joint to its zero pose (the
twin's zero: upper arm vertical, forearm forward, tool down, wrist roll centred) with the
gripper fully open, which gives the homing offsets; then every joint through its whole
range while the ticks are sampled, which gives ``range_min`` / ``range_max``. The gripper's
open end must be its low-tick end. Drive directions are kept from the previous file (1 for
a new one): a joint mounted mirrored is set to -1 in the file once.

Keyboard teleop: keys ``1``..``9`` nudge joint 1..9 up by ``joint_step`` (the gripper, last,
by ``gripper_step`` towards closed) and the same keys with shift (US layout ``!@#$%^&*(``)
nudge it down; ``x`` holds the present position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from robo_policies.robots.bus_robot import BusRobot, BusRobotKind, sample_while, ticks_per_revolution
from robo_policies.robots.bus_setup import Prompt
from robo_policies.robots.config import RobotConfig, find_hardware_file
from robo_policies.robots.keyboard import DriveSettings, PositionKeyboard
from robo_policies.robots.motors import CalibrationError, MotorBus, MotorCalibration
from robo_policies.robots.registry import register_robot_kind
from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import ConfigError

MIN_JOINT_TRAVEL = 50
"""Ticks (about 4 degrees on a 4096-tick encoder) a joint must move during calibration to have a range."""
ZERO_POSE = ("Move every joint to its zero pose (upper arm vertical, forearm pointing forward, tool "
             "pointing down, wrist roll centred) and open the gripper fully; then press Enter. ")
SWEEP = ("Move every joint slowly through its whole range, and the gripper from fully open to fully "
         "closed; press Enter when done. ")
SHIFTED_DIGITS = "!@#$%^&*("
"""Shift + 1..9 on a US keyboard."""


@dataclass
class ArmConfig(RobotConfig):
    """An arm: ``kind: arm``; motors are the joints in command order, then the gripper."""

    arm_model: Optional[str] = None
    """The MJCF model (relative to a hardware/ folder) whose forward kinematics a
    workspace_box filter uses; its joints are named like the motors (all but the gripper)."""
    tool_site: str = "tcp"
    """The model's site that the workspace box bounds."""


class ManipulatorArm(BusRobot):
    """Joint targets + gripper over one position-mode bus; the gripper is the last motor.

    Args:
        name: the robot's name.
        bus: its servos, in command order (joints, then the gripper), not yet connected.
        **robot_kwargs: safety chain, watchdog, period and clock (see ``Robot``).
    """

    def __init__(self, name: str, bus: MotorBus, **robot_kwargs: Any) -> None:
        super().__init__(name, bus, **robot_kwargs)
        self._motor_names = list(bus.motors)
        self._gripper = self._motor_names[-1]

    @property
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        n = len(self._motor_names)
        return {"joint_pos": (n,), "joint_vel": (n,)}

    @property
    def action_names(self) -> list[str]:
        return [f"{name}.pos" for name in self._motor_names]

    def _read(self) -> dict[str, np.ndarray]:
        position = self._to_command_units(self.bus.read_positions())
        velocity = self.bus.read_velocities()
        velocity[-1] /= self._gripper_span()
        return {"joint_pos": position.astype(np.float32), "joint_vel": velocity.astype(np.float32)}

    def present_position(self) -> np.ndarray:
        return self._to_command_units(self.bus.read_positions())

    def _write(self, command: np.ndarray) -> None:
        goals = np.array(command, dtype=np.float64)
        open_rad, _ = self._gripper_ends()
        goals[-1] = open_rad + goals[-1] * self._gripper_span()
        self.bus.write_goal_positions(goals)

    def hold_command(self) -> np.ndarray:
        return arm_hold(self.present_position(), self._last_sent)

    def _make_safe(self) -> None:
        self.bus.disable_torque()

    def _to_command_units(self, radians: np.ndarray) -> np.ndarray:
        position = np.array(radians, dtype=np.float64)
        open_rad, _ = self._gripper_ends()
        position[-1] = (position[-1] - open_rad) / self._gripper_span()
        return position

    def _gripper_ends(self) -> tuple[float, float]:
        """The gripper servo's angle (rad) fully open and fully closed."""
        calibration = self.bus.calibration[self._gripper]
        ticks = ticks_per_revolution(self.bus, self._gripper)
        return (calibration.ticks_to_radians(calibration.range_min, ticks),
                calibration.ticks_to_radians(calibration.range_max, ticks))

    def _gripper_span(self) -> float:
        open_rad, closed_rad = self._gripper_ends()
        if open_rad == closed_rad:
            raise CalibrationError(f"{self.name}: the gripper's calibrated range is empty; run robo robot calibrate")
        return closed_rad - open_rad


def arm_hold(present: np.ndarray, last_sent: np.ndarray | None) -> np.ndarray:
    """An arm's hold command: the joints where they are, the gripper where it was last told to
    be (told to stay at its measured closure it would stop squeezing what it holds)."""
    hold = np.array(present, dtype=np.float64)
    if last_sent is not None:
        hold[-1] = last_sent[-1]
    return hold


class ArmKeyboard(PositionKeyboard):
    """Keys nudge joint targets: 1-9 up, shift+1-9 down, the last motor being the gripper."""

    help = "1-9 nudge a joint up, shift+1-9 (!@#...) down, the last is the gripper; x hold"

    def __init__(self, robot: Robot, settings: DriveSettings) -> None:
        if robot.action_dim > 9:
            raise ConfigError(f"{robot.name}: keyboard teleop drives at most 9 motors, it has {robot.action_dim}")
        super().__init__(robot)
        self.steps = np.full(robot.action_dim, settings.joint_step)
        self.steps[-1] = settings.gripper_step

    def nudge(self, key: str, target: np.ndarray) -> None:
        if key.isdigit() and 1 <= int(key) <= self.robot.action_dim:
            target[int(key) - 1] += self.steps[int(key) - 1]
        elif key in SHIFTED_DIGITS[:self.robot.action_dim]:
            index = SHIFTED_DIGITS.index(key)
            target[index] -= self.steps[index]


class ArmKind(BusRobotKind):
    """``kind: arm``: a ``ManipulatorArm`` on its bus, ``SimArm`` as its twin."""

    config_class = ArmConfig
    motor_mode = "position"
    calibration_required = True

    def build(self, config: RobotConfig, port: str | None, **robot_kwargs: Any) -> Robot:
        bus = self.make_bus(config, port, period_s=robot_kwargs["period_s"], clock=robot_kwargs["clock"])
        return ManipulatorArm(config.name, bus, **robot_kwargs)

    def build_twin(self, config: RobotConfig, **robot_kwargs: Any) -> Robot:
        from robo_policies.robots.sim_twin import SimArm

        return SimArm(config.name, config.sim_task, config.action_names, **robot_kwargs)

    def forward_kinematics(self, config: RobotConfig) -> Callable[[np.ndarray], np.ndarray] | None:
        """``fk(command) -> xyz`` of the tool site (m, the model's base frame) for a command of
        joint targets then the gripper, from ``arm_model``; None without one."""
        assert isinstance(config, ArmConfig)
        if not config.arm_model:
            return None
        import mujoco

        from robo_policies.envs.kinematics import DLSInverseKinematics

        path = find_hardware_file(config.arm_model)
        if path is None:
            raise ConfigError(f"{config.source}: arm_model {config.arm_model!r} is not a file in a hardware/ folder")
        joints = list(config.motors)[:-1]
        try:
            solver = DLSInverseKinematics(mujoco.MjModel.from_xml_path(str(path)), config.tool_site, joints)
        except ValueError as err:
            raise ConfigError(f"{config.source}: arm_model {config.arm_model}: {err}") from None
        return lambda command: solver.forward(np.asarray(command, dtype=np.float64)[: len(joints)])[0]

    def measure(self, bus: MotorBus, prompt: Prompt,
                previous: dict[str, MotorCalibration]) -> dict[str, MotorCalibration]:
        """Zero pose, then a sweep of every joint's range (see the module docstring)."""
        zero = sample_while(bus, prompt, ZERO_POSE)[-1]
        print("recording the range of every joint ...")
        sweep = sample_while(bus, prompt, SWEEP)
        names = list(bus.motors)
        calibration = {}
        for index, name in enumerate(names):
            ticks = sweep[:, index]
            revolution = ticks_per_revolution(bus, name)
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

    def keyboard(self, robot: Robot, settings: DriveSettings) -> ArmKeyboard:
        return ArmKeyboard(robot, settings)


register_robot_kind("arm", ArmKind())
