"""Build a ``Robot`` from its config: the device, or its MuJoCo twin, as its kind says."""

from __future__ import annotations

from typing import Any

from robo_policies.robots.cameras import make_camera
from robo_policies.robots.clock import WALL_CLOCK, Clock
from robo_policies.robots.config import RobotConfig
from robo_policies.robots.registry import robot_kind
from robo_policies.robots.robot import Robot
from robo_policies.robots.safety import EStop, SafetyChain, build_safety_chain
from robo_policies.utils.errors import ConfigError


def make_safety_chain(config: RobotConfig, clock: Clock = WALL_CLOCK) -> SafetyChain:
    """The config's filters and e-stop (file and keys; the signal is installed by the command
    that runs the loop, from the main thread)."""
    keys = [config.estop.key] if config.estop.key else []
    estop = EStop(file=config.estop.file, keys=keys, clock=clock)
    fk = robot_kind(config.kind).forward_kinematics(config)
    try:
        return build_safety_chain(config.safety, fk=fk, dim=len(config.action_names), estop=estop)
    except ConfigError as err:
        raise ConfigError(f"{config.source}: {err}") from None


def make_robot(config: RobotConfig, sim: bool = False, period_s: float = 0.1,
               port: str | None = None, clock: Clock = WALL_CLOCK,
               twin_env_kwargs: dict[str, Any] | None = None) -> Robot:
    """The robot ``config`` describes, on ``port`` if given; with ``sim`` its MuJoCo twin
    stepping ``period_s`` per command, its env built with ``twin_env_kwargs``. ``clock``: the
    time it and the loops driving it keep."""
    kind = robot_kind(config.kind)
    robot_kwargs = dict(safety=make_safety_chain(config, clock), watchdog_s=config.watchdog_s,
                        period_s=period_s, clock=clock)
    if sim:
        if not config.sim_task:
            raise ConfigError(f"{config.source}: {config.name} has no MuJoCo twin (sim_task is not set)")
        robot = kind.build_twin(config, **robot_kwargs, **({"env_kwargs": twin_env_kwargs} if twin_env_kwargs else {}))
    else:  # the twin renders its own views; a device reads the cameras in its config
        cameras = {name: make_camera(name, camera, clock) for name, camera in config.cameras.items()}
        robot = kind.build(config, port, cameras=cameras, camera_timeout_s=config.camera_timeout_s, **robot_kwargs)
    robot.kind = config.kind
    return robot
