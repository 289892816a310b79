"""A wheeled base on a motor bus: wheel speed commands, odometry from the encoders.

Commands are wheel speeds in rad/s (the ``diffdrive_nav`` task's actions for a differential
drive). Body twists become wheel speeds through ``base_kinematics`` (scaled together so no
wheel exceeds its limit) with ``twist_command``. Observations carry the odometry pose in the
twin's form, ``base_pose`` = (x, y, cos yaw, sin yaw) from where the base was connected, and
``base_vel`` = (forward speed, yaw rate), plus the measured ``wheel_vel``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from robo_policies.robots.base_kinematics import DiffDriveKinematics, OmniKinematics, Odometry
from robo_policies.robots.motors.bus import MotorBus
from robo_policies.robots.robot import Robot


class WheeledBase(Robot):
    """Wheels in velocity mode on one bus, in the kinematics' wheel order.

    Args:
        name: the robot's name.
        bus: the wheel servos (velocity mode), not yet connected.
        kinematics: ``DiffDriveKinematics`` (left, right) or ``OmniKinematics`` (3 wheels).
        **robot_kwargs: safety chain, watchdog and period (see ``Robot``).
    """

    def __init__(self, name: str, bus: MotorBus, kinematics: DiffDriveKinematics | OmniKinematics,
                 **robot_kwargs: Any) -> None:
        super().__init__(name, **robot_kwargs)
        if len(bus.motors) != kinematics.n_wheels:
            raise ValueError(f"{name}: {len(bus.motors)} wheel motors for kinematics with "
                             f"{kinematics.n_wheels} wheels")
        self.bus = bus
        self.kinematics = kinematics
        self.odometry = Odometry(kinematics, wrap=2 * math.pi)  # encoders wrap once per turn

    @property
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        return {"base_pose": (4,), "base_vel": (2,), "wheel_vel": (self.kinematics.n_wheels,)}

    @property
    def action_names(self) -> list[str]:
        return [f"{name}.vel" for name in self.bus.motors]

    def twist_command(self, vx: float, wz: float, vy: float = 0.0) -> np.ndarray:
        """Wheel speeds (rad/s) for a body twist, scaled together to the wheel limit."""
        if isinstance(self.kinematics, OmniKinematics):
            return self.kinematics.wheel_speeds(vx, vy, wz)
        if vy:
            raise ValueError(f"{self.name}: a differential drive cannot move sideways (vy={vy})")
        return self.kinematics.wheel_speeds(vx, wz)

    def _connect(self) -> None:
        self.bus.connect()
        self.bus.apply_operating_modes()  # velocity mode, goal speed 0
        self.bus.enable_torque()
        self.odometry.update(self.bus.read_positions(), time.perf_counter())

    def _disconnect(self) -> None:
        self.bus.disconnect(disable_torque=True)

    def _read(self) -> dict[str, np.ndarray]:
        x, y, yaw = self.odometry.update(self.bus.read_positions(), time.perf_counter())
        wheel_vel = self.bus.read_velocities()
        twist = self.kinematics.planar_twist(wheel_vel)
        return {"base_pose": np.array([x, y, math.cos(yaw), math.sin(yaw)], dtype=np.float32),
                "base_vel": np.array([twist[0], twist[2]], dtype=np.float32),
                "wheel_vel": wheel_vel.astype(np.float32)}

    def _write(self, command: np.ndarray) -> None:
        self.bus.write_goal_velocities(command)

    def hold_command(self) -> np.ndarray:
        return np.zeros(self.action_dim)

    def _make_safe(self) -> None:
        """Wheels to zero, then torque off (tried even if the first write fails)."""
        try:
            self.bus.write_goal_velocities(self.hold_command())
        finally:
            self.bus.disable_torque()
