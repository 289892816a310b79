"""A manipulator arm on a motor bus: joint position targets plus a gripper.

Commands are the joints' targets in rad, then the gripper's closure in [0, 1] (0 open,
1 closed), the same as the arm task's actions, so a policy trained on the MuJoCo arm sends
what this class writes. The gripper servo's calibrated range maps onto the closure: its
``range_min`` end is open and its ``range_max`` end closed (``robo robot calibrate`` records
both ends).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robo_policies.robots.motors.bus import MotorBus
from robo_policies.robots.robot import Robot


class ManipulatorArm(Robot):
    """Joint targets + gripper over one position-mode bus; the gripper is the last motor.

    Args:
        name: the robot's name.
        bus: its servos, in command order (joints, then the gripper), not yet connected.
        **robot_kwargs: safety chain, watchdog and period (see ``Robot``).
    """

    def __init__(self, name: str, bus: MotorBus, **robot_kwargs: Any) -> None:
        super().__init__(name, **robot_kwargs)
        self.bus = bus
        self._motor_names = list(bus.motors)
        self._gripper = self._motor_names[-1]

    @property
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        n = len(self._motor_names)
        return {"joint_pos": (n,), "joint_vel": (n,)}

    @property
    def action_names(self) -> list[str]:
        return [f"{name}.pos" for name in self._motor_names]

    def _connect(self) -> None:
        self.bus.connect()
        self.bus.apply_operating_modes()  # position mode; each goal set to where it stands
        self.bus.enable_torque()

    def _disconnect(self) -> None:
        self.bus.disconnect(disable_torque=True)

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
        ticks = self.bus.models[self.bus.motors[self._gripper].model].ticks_per_revolution
        return (calibration.ticks_to_radians(calibration.range_min, ticks),
                calibration.ticks_to_radians(calibration.range_max, ticks))

    def _gripper_span(self) -> float:
        open_rad, closed_rad = self._gripper_ends()
        if open_rad == closed_rad:
            raise ValueError(f"{self.name}: the gripper's calibrated range is empty; run robo robot calibrate")
        return closed_rad - open_rad


def arm_hold(present: np.ndarray, last_sent: np.ndarray | None) -> np.ndarray:
    """An arm's hold command: the joints where they are, the gripper where it was last told to
    be (told to stay at its measured closure it would stop squeezing what it holds)."""
    hold = np.array(present, dtype=np.float64)
    if last_sent is not None:
        hold[-1] = last_sent[-1]
    return hold
