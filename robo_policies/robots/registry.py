"""Robot kinds by name: what ``kind:`` in a ``robot.yaml`` means.

As LeRobot registers a config class per robot type, each kind here registers one
``RobotKind`` that tells the commands everything they need about robots of that kind: its
typed config, how it is built (on its device, or as its MuJoCo twin), how ``robo robot
calibrate`` measures it, what ``robo robot check`` looks at, and how keyboard teleop drives
it. Commands look the kind up (``robot_kind(config.kind)``) and never test a robot's class.

The built-in kinds (``arm`` in ``arm.py``; ``diffdrive`` and ``omni`` in ``wheeled_base.py``)
are imported on the first lookup. A new robot of a known kind is one YAML,
``hardware/<robot>/robot.yaml``; a new kind is one module that calls ``register_robot_kind``
(a plugin named in ``ROBO_PLUGINS``, whose ``hardware/`` folder holds its robots' YAML files;
``tests/plugins/toy_robot.py`` is a complete example).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable

from robo_policies.robots.config import RobotConfig
from robo_policies.utils.errors import ConfigError
from robo_policies.utils.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from robo_policies.robots.bus_setup import Prompt
    from robo_policies.robots.check import CheckResult
    from robo_policies.robots.keyboard import DriveSettings, Keyboard
    from robo_policies.robots.motors import MotorCalibration
    from robo_policies.robots.robot import Robot

"""Modules whose import registers the built-in kinds."""


class RobotKind(ABC):
    """How robots of one kind are configured, built, calibrated, checked and driven by keys.

    A kind implements ``build`` and whichever of the other hooks it supports; the defaults
    say "not supported" in a way a user can act on.
    """

    config_class: type[RobotConfig] = RobotConfig
    """The typed config of this kind's ``robot.yaml`` (a subclass adds the kind's own keys)."""

    @abstractmethod
    def build(self, config: RobotConfig, port: str | None, **robot_kwargs: Any) -> Robot:
        """The robot on its device (not connected yet); ``port`` replaces the configured one.
        ``robot_kwargs``: safety chain, watchdog, period and clock for ``Robot``."""

    def build_twin(self, config: RobotConfig, **robot_kwargs: Any) -> Robot:
        """The robot's MuJoCo twin running ``config.sim_task`` (``robo deploy sim=true``)."""
        raise ConfigError(f"{config.source}: robots of kind {config.kind!r} have no MuJoCo twin")

    def forward_kinematics(self, config: RobotConfig) -> Callable[[np.ndarray], np.ndarray] | None:
        """``fk(command) -> xyz`` for a ``workspace_box`` safety filter; None: this kind has none."""
        return None

    def calibrate(self, config: RobotConfig, port: str | None, prompt: Prompt,
                  previous: dict[str, MotorCalibration]) -> dict[str, MotorCalibration]:
        """``robo robot calibrate``'s procedure: the calibration to save (``previous``: the
        file's present content, {} if none)."""
        raise ConfigError(f"robots of kind {config.kind!r} have nothing to calibrate")

    def check_setup(self, config: RobotConfig) -> list[CheckResult]:
        """``robo robot check``'s checks before connecting (files the robot needs)."""
        return []

    def describe_connection(self, robot: Robot) -> str:
        """What answered when ``robo robot check`` connected."""
        return f"{robot.name} connected"

    def check_connected(self, robot: Robot) -> list[CheckResult]:
        """``robo robot check``'s checks of the connected device, before any command is sent."""
        return []

    def check_hold(self, robot: Robot) -> CheckResult | None:
        """After the hold command went out unchanged: what the device shows of it (None:
        nothing more to look at)."""
        return None

    def keyboard(self, robot: Robot, settings: DriveSettings) -> Keyboard:
        """The key bindings of ``robo robot teleop`` and ``robo record``."""
        raise ConfigError(f"{robot.name}: robots of kind {robot.kind!r} have no keyboard teleop")


_KINDS: Registry[RobotKind] = Registry("robot kind", "kinds", builtin_modules=(
    "robo_policies.robots.arm", "robo_policies.robots.wheeled_base"))


def register_robot_kind(name: str, kind: RobotKind) -> RobotKind:
    """Make ``kind: <name>`` in a robot.yaml mean ``kind``; registering a name twice is a bug."""
    return _KINDS.add(name, kind)


def robot_kind_names() -> list[str]:
    """Every registered kind, sorted."""
    return _KINDS.names()


def robot_kind(name: str) -> RobotKind:
    """The kind called ``name``; an unknown name raises with the list of known ones."""
    return _KINDS.get(name)
