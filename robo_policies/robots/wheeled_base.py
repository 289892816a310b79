"""The ``diffdrive`` and ``omni`` kinds: a wheeled base on a motor bus, wheel speed commands.

Commands are wheel speeds in rad/s (the ``diffdrive_nav`` task's actions for a differential
drive). Body twists become wheel speeds through the base's kinematics (scaled together so no
wheel exceeds its limit) with ``twist_command``. Observations carry the odometry pose in the
twin's form, ``base_pose`` = (x, y, cos yaw, sin yaw) from where the base was connected, and
``base_vel`` = (forward speed, yaw rate), plus the measured ``wheel_vel``.

``robo robot calibrate``: the wheels turn freely, so zero and range are trivial (tick 0, the
whole turn); the user rolls the base along a known motion (a differential drive forward, an
omni base counter-clockwise in place) and each wheel's direction follows from the sign of
its travel.

Keyboard teleop: ``w``/``s`` (or the up/down arrows) forward/back, ``a``/``d`` (left/right
arrows) turn, ``q``/``e`` strafe (omni only), ``x`` stop. A key sets the motion and a
terminal's key repeat keeps it alive: when no motion key arrives for ``key_timeout_s`` the
base stops, so it only moves while a key is held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from robo_policies.robots.base_kinematics import DiffDriveKinematics, OmniKinematics, Odometry
from robo_policies.robots.bus_robot import BusRobot, BusRobotKind, sample_while, ticks_per_revolution
from robo_policies.robots.bus_setup import Prompt
from robo_policies.robots.config import RobotConfig
from robo_policies.robots.keyboard import HOLD_KEY, RESET_KEY, DriveSettings
from robo_policies.robots.motors import CalibrationError, MotorBus, MotorCalibration
from robo_policies.robots.registry import register_robot_kind
from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import ConfigError

MIN_WHEEL_TRAVEL = 200
"""Ticks a wheel must turn during calibration for its direction to count."""

Kinematics = DiffDriveKinematics | OmniKinematics


@dataclass
class BaseGeometry:
    """Wheeled bases: what kinematics and odometry need."""

    wheel_radius: float = 0.0
    """m."""
    wheel_separation: float = 0.0
    """m between the wheels' contact points (differential drive)."""
    base_radius: float = 0.0
    """m from the centre to each wheel (omni)."""
    wheel_angles_deg: list[float] = field(default_factory=lambda: [90.0, 210.0, 330.0])
    """Omni: the wheels' mounting angles."""
    max_wheel_speed: float = 0.0
    """rad/s; commands are scaled together to respect it."""


@dataclass
class WheeledBaseConfig(RobotConfig):
    """A wheeled base: ``kind: diffdrive`` or ``kind: omni``; motors are the wheels."""

    geometry: BaseGeometry = field(default_factory=BaseGeometry)

    command = "vel"


class WheeledBase(BusRobot):
    """Wheels in velocity mode on one bus, in the kinematics' wheel order.

    Args:
        name: the robot's name.
        bus: the wheel servos (velocity mode), not yet connected.
        kinematics: ``DiffDriveKinematics`` (left, right) or ``OmniKinematics`` (3 wheels).
        **robot_kwargs: safety chain, watchdog, period and clock (see ``Robot``).
    """

    def __init__(self, name: str, bus: MotorBus, kinematics: Kinematics, **robot_kwargs: Any) -> None:
        super().__init__(name, bus, **robot_kwargs)
        if len(bus.motors) != kinematics.n_wheels:
            raise ConfigError(f"{name}: {len(bus.motors)} wheel motors for kinematics with "
                              f"{kinematics.n_wheels} wheels")
        self.kinematics = kinematics
        self.odometry = Odometry(kinematics, wrap=2 * math.pi)  # encoders wrap once per turn

    @property
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        return {"base_pose": (4,), "base_vel": (2,), "wheel_vel": (self.kinematics.n_wheels,)}

    @property
    def action_names(self) -> list[str]:
        return [f"{name}.vel" for name in self.bus.motors]

    @property
    def holonomic(self) -> bool:
        """Whether it can move sideways (an omni base)."""
        return isinstance(self.kinematics, OmniKinematics)

    def twist_command(self, vx: float, wz: float, vy: float = 0.0) -> np.ndarray:
        """Wheel speeds (rad/s) for a body twist, scaled together to the wheel limit."""
        if isinstance(self.kinematics, OmniKinematics):
            return self.kinematics.wheel_speeds(vx, vy, wz)
        if vy:
            raise ValueError(f"{self.name}: a differential drive cannot move sideways (vy={vy})")
        return self.kinematics.wheel_speeds(vx, wz)

    def _connect(self) -> None:
        super()._connect()  # velocity mode, goal speed 0
        self.odometry.update(self.bus.read_positions(), self.clock.now())

    def _read(self) -> dict[str, np.ndarray]:
        x, y, yaw = self.odometry.update(self.bus.read_positions(), self.clock.now())
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


class BaseKeyboard:
    """Keys -> body twist -> wheel speeds (``WheeledBase.twist_command``)."""

    help = "w/s forward/back, a/d turn, q/e strafe (omni), x stop"

    def __init__(self, robot: WheeledBase, settings: DriveSettings) -> None:
        self.robot = robot
        self.settings = settings
        s = settings
        self.bindings = {"w": (s.speed, 0.0, 0.0), "up": (s.speed, 0.0, 0.0),
                         "s": (-s.speed, 0.0, 0.0), "down": (-s.speed, 0.0, 0.0),
                         "a": (0.0, 0.0, s.turn_speed), "left": (0.0, 0.0, s.turn_speed),
                         "d": (0.0, 0.0, -s.turn_speed), "right": (0.0, 0.0, -s.turn_speed)}
        if robot.holonomic:
            self.bindings.update(q=(0.0, s.speed, 0.0), e=(0.0, -s.speed, 0.0))
        self.twist = (0.0, 0.0, 0.0)
        """(vx, vy, wz) asked for by the last motion key."""
        self._last_key = -math.inf

    def handle(self, keys: list[str], now: float) -> None:
        for key in keys:
            if key in self.bindings:
                self.twist, self._last_key = self.bindings[key], now
            elif key in (HOLD_KEY, RESET_KEY):
                self.twist = (0.0, 0.0, 0.0)

    def command(self, now: float) -> np.ndarray:
        timeout = self.settings.key_timeout_s
        if timeout and now - self._last_key > timeout:
            self.twist = (0.0, 0.0, 0.0)
        vx, vy, wz = self.twist
        return self.robot.twist_command(vx, wz, vy)

    def sent(self, command: np.ndarray) -> None:
        """A base's next command does not build on the last one."""


class WheeledBaseKind(BusRobotKind):
    """A wheeled base kind: its kinematics from the config's geometry, and the motion the user
    rolls it along during calibration."""

    config_class = WheeledBaseConfig
    motor_mode = "velocity"
    calibration_required = False

    def __init__(self, kinematics: Callable[[BaseGeometry], Kinematics], calibration_motion: str) -> None:
        self.kinematics = kinematics
        self.calibration_motion = calibration_motion

    def build(self, config: RobotConfig, port: str | None, **robot_kwargs: Any) -> Robot:
        assert isinstance(config, WheeledBaseConfig)
        bus = self.make_bus(config, port, period_s=robot_kwargs["period_s"], clock=robot_kwargs["clock"])
        return WheeledBase(config.name, bus, self.kinematics(config.geometry), **robot_kwargs)

    def build_twin(self, config: RobotConfig, **robot_kwargs: Any) -> Robot:
        from robo_policies.robots.sim_twin import SimBase

        return SimBase(config.name, config.sim_task, config.action_names, **robot_kwargs)

    def measure(self, bus: MotorBus, prompt: Prompt,
                previous: dict[str, MotorCalibration]) -> dict[str, MotorCalibration]:
        """Each wheel's direction from the sign of its travel along the known motion."""
        print("recording the wheels' travel ...")
        sweep = sample_while(bus, prompt, self.calibration_motion)
        calibration = {}
        for index, name in enumerate(bus.motors):
            revolution = ticks_per_revolution(bus, name)
            half = revolution // 2
            travel = int(np.sum((np.diff(sweep[:, index]) + half) % revolution - half))  # unwrapped
            if abs(travel) < MIN_WHEEL_TRAVEL:
                raise CalibrationError(f"wheel {name!r} turned only {abs(travel)} ticks: "
                                       f"{self.calibration_motion.split(';')[0]}")
            calibration[name] = MotorCalibration(0, 0, revolution - 1, 1 if travel > 0 else -1)
        return calibration

    def keyboard(self, robot: Robot, settings: DriveSettings) -> BaseKeyboard:
        if not isinstance(robot, WheeledBase):  # a twin has no twist commands
            raise ConfigError(f"{robot.name}: keyboard teleop drives a base on its motor bus, not a "
                              f"{type(robot).__name__}")
        return BaseKeyboard(robot, settings)


def diffdrive_kinematics(g: BaseGeometry) -> DiffDriveKinematics:
    return DiffDriveKinematics(g.wheel_radius, g.wheel_separation, g.max_wheel_speed)


def omni_kinematics(g: BaseGeometry) -> OmniKinematics:
    return OmniKinematics(g.wheel_radius, g.base_radius, tuple(math.radians(a) for a in g.wheel_angles_deg),
                          max_wheel_speed=g.max_wheel_speed)


register_robot_kind("diffdrive", WheeledBaseKind(
    diffdrive_kinematics, "Roll the base straight forward by hand, about one wheel turn; then press Enter. "))
register_robot_kind("omni", WheeledBaseKind(
    omni_kinematics, "Turn the base counter-clockwise (seen from above) in place by hand, about a quarter "
    "turn; then press Enter. "))
