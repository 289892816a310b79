"""Build a ``Robot`` from its config: the hardware driver, or its MuJoCo twin."""

from __future__ import annotations

from robo_policies.robots.config import RobotConfig
from robo_policies.robots.robot import Robot
from robo_policies.robots.safety import EStop, SafetyChain, build_safety_chain


def make_safety_chain(config: RobotConfig) -> SafetyChain:
    """The config's filters and e-stop (file and keys; the signal is installed by the command
    that runs the loop, from the main thread)."""
    keys = [config.estop.key] if config.estop.key else []
    estop = EStop(file=config.estop.file, keys=keys)
    try:
        return build_safety_chain(config.safety, dim=len(config.action_names), estop=estop)
    except ValueError as err:
        raise ValueError(f"{config.source}: {err}") from None


def make_robot(config: RobotConfig, sim: bool = False, period_s: float = 0.1) -> Robot:
    """The robot ``config`` describes; with ``sim`` its MuJoCo twin stepping ``period_s``
    per command."""
    safety = make_safety_chain(config)
    if sim:
        from robo_policies.robots.sim_twin import SimArm, SimBase

        if not config.sim_task:
            raise ValueError(f"{config.source}: {config.name} has no MuJoCo twin (sim_task is not set)")
        twin = SimArm if config.kind == "arm" else SimBase
        return twin(config.name, config.sim_task, config.action_names, period_s,
                    safety=safety, watchdog_s=config.watchdog_s)
    raise NotImplementedError("hardware robots are not wired in yet")
