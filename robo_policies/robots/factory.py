"""Build a ``Robot`` from its config: the hardware driver, or its MuJoCo twin."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from robo_policies.robots.base_kinematics import DiffDriveKinematics, OmniKinematics
from robo_policies.robots.config import HARDWARE_DIR, RobotConfig
from robo_policies.robots.motors import Motor, MotorBus, load_calibration, motor_bus_class
from robo_policies.robots.robot import Robot
from robo_policies.robots.safety import EStop, SafetyChain, build_safety_chain


def make_safety_chain(config: RobotConfig) -> SafetyChain:
    """The config's filters and e-stop (file and keys; the signal is installed by the command
    that runs the loop, from the main thread)."""
    keys = [config.estop.key] if config.estop.key else []
    estop = EStop(file=config.estop.file, keys=keys)
    fk = arm_forward_kinematics(config) if config.arm_model else None
    try:
        return build_safety_chain(config.safety, fk=fk, dim=len(config.action_names), estop=estop)
    except ValueError as err:
        raise ValueError(f"{config.source}: {err}") from None


def arm_forward_kinematics(config: RobotConfig) -> Callable[[np.ndarray], np.ndarray]:
    """``fk(command) -> xyz`` of the arm's tool site (m, in the model's base frame) for a
    command of joint targets then the gripper."""
    import mujoco

    from robo_policies.envs.kinematics import DLSInverseKinematics

    path = HARDWARE_DIR / str(config.arm_model)
    if not path.is_file():
        raise FileNotFoundError(f"{config.source}: arm_model {config.arm_model!r} is not a file in {HARDWARE_DIR}")
    joints = list(config.motors)[:-1]
    try:
        solver = DLSInverseKinematics(mujoco.MjModel.from_xml_path(str(path)), config.tool_site, joints)
    except ValueError as err:
        raise ValueError(f"{config.source}: arm_model {config.arm_model}: {err}") from None
    return lambda command: solver.forward(np.asarray(command, dtype=np.float64)[: len(joints)])[0]


def make_robot(config: RobotConfig, sim: bool = False, period_s: float = 0.1,
               port: str | None = None) -> Robot:
    """The robot ``config`` describes, on ``port`` if given; with ``sim`` its MuJoCo twin
    stepping ``period_s`` per command."""
    safety = make_safety_chain(config)
    if sim:
        from robo_policies.robots.sim_twin import SimArm, SimBase

        if not config.sim_task:
            raise ValueError(f"{config.source}: {config.name} has no MuJoCo twin (sim_task is not set)")
        twin = SimArm if config.kind == "arm" else SimBase
        return twin(config.name, config.sim_task, config.action_names, period_s,
                    safety=safety, watchdog_s=config.watchdog_s)
    bus = make_motor_bus(config, port)
    if config.kind == "arm":
        from robo_policies.robots.arm import ManipulatorArm

        return ManipulatorArm(config.name, bus, safety=safety, watchdog_s=config.watchdog_s, period_s=period_s)
    from robo_policies.robots.wheeled_base import WheeledBase

    return WheeledBase(config.name, bus, base_kinematics(config), safety=safety,
                       watchdog_s=config.watchdog_s, period_s=period_s)


def make_motor_bus(config: RobotConfig, port: str | None = None, calibrated: bool = True) -> MotorBus:
    """The robot's bus (not connected), with its calibration when the file exists and
    ``calibrated`` is set (``robo robot calibrate`` reads raw ticks and must not depend on an
    old file); ``port`` replaces the configured one."""
    mode = "position" if config.kind == "arm" else "velocity"
    motors = [Motor(name, motor.id, motor.model, mode) for name, motor in config.motors.items()]
    calibration_path = config.directory / config.calibration
    calibration = load_calibration(calibration_path) if calibrated and calibration_path.is_file() else None
    bus_class = motor_bus_class(config.bus.vendor)
    return bus_class(port or config.bus.port, motors, calibration, baudrate=config.bus.baudrate)


def base_kinematics(config: RobotConfig) -> DiffDriveKinematics | OmniKinematics:
    """A base's kinematics from its geometry."""
    g = config.geometry
    if config.kind == "diffdrive":
        return DiffDriveKinematics(g.wheel_radius, g.wheel_separation, g.max_wheel_speed)
    return OmniKinematics(g.wheel_radius, g.base_radius, tuple(math.radians(a) for a in g.wheel_angles_deg),
                          max_wheel_speed=g.max_wheel_speed)
