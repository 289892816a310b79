"""A robot kind from outside the project, as a new kind would be added: this one module
(``ROBO_PLUGINS=plugins.toy_robot``) plus one YAML per robot in ``hardware/<robot>/robot.yaml``
next to it.

The kind ``slider`` is a carriage on a rail, commanded to a position in m. Its device is a
``Carriage`` in memory (an ideal servo: it is where it was last told to be), found by the
config's ``bus.port``, so a test can look at it after a ``robo`` command has run. It has no
calibration and no MuJoCo twin; ``robo robot check`` looks at the rail, and keys ``d``/``a``
move the carriage by ``drive.joint_step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robo_policies.robots.check import CheckResult
from robo_policies.robots.config import RobotConfig
from robo_policies.robots.keyboard import DriveSettings, PositionKeyboard
from robo_policies.robots.registry import RobotKind, register_robot_kind
from robo_policies.robots.robot import Robot


@dataclass
class SliderConfig(RobotConfig):
    """A slider's robot.yaml: the shared keys plus the rail."""

    rail_m: float = 0.3
    """Length of the rail (m); the carriage is at 0 when it starts."""


@dataclass
class Carriage:
    """The device: where the carriage is, and whether its motor is powered."""

    position: float = 0.0
    powered: bool = False
    connected: bool = False


CARRIAGES: dict[str, Carriage] = {}
"""Every carriage by port, as physical devices outlive the commands that drive them."""


class Slider(Robot):
    """One carriage on a rail ``rail_m`` long: the command and the observation are its position (m)."""

    def __init__(self, name: str, carriage: Carriage, rail_m: float, **robot_kwargs: Any) -> None:
        super().__init__(name, **robot_kwargs)
        self.carriage = carriage
        self.rail_m = rail_m

    @property
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        return {"slider_pos": (1,)}

    @property
    def action_names(self) -> list[str]:
        return ["carriage.pos"]

    def _connect(self) -> None:
        self.carriage.connected = self.carriage.powered = True

    def _disconnect(self) -> None:
        self.carriage.connected = False

    def _read(self) -> dict[str, np.ndarray]:
        return {"slider_pos": np.array([self.carriage.position], dtype=np.float32)}

    def _write(self, command: np.ndarray) -> None:
        self.carriage.position = float(command[0])

    def present_position(self) -> np.ndarray:
        return np.array([self.carriage.position])

    def hold_command(self) -> np.ndarray:
        return self.present_position()

    def _make_safe(self) -> None:
        self.carriage.powered = False


class SliderKeyboard(PositionKeyboard):
    """``d`` moves the carriage along the rail, ``a`` back; ``x`` holds."""

    help = "d/a move the carriage, x hold"

    def __init__(self, robot: Robot, settings: DriveSettings) -> None:
        super().__init__(robot)
        self.step = settings.joint_step

    def nudge(self, key: str, target: np.ndarray) -> None:
        if key in ("d", "a"):
            target += self.step if key == "d" else -self.step


class SliderKind(RobotKind):
    """``kind: slider``: what the commands need to know about sliders."""

    config_class = SliderConfig

    def build(self, config: RobotConfig, port: str | None, **robot_kwargs: Any) -> Robot:
        assert isinstance(config, SliderConfig)
        carriage = CARRIAGES.setdefault(port or config.bus.port, Carriage())
        return Slider(config.name, carriage, config.rail_m, **robot_kwargs)

    def describe_connection(self, robot: Robot) -> str:
        return f"the carriage answers at {robot.present_position()[0]:.3f} m"

    def check_connected(self, robot: Robot) -> list[CheckResult]:
        assert isinstance(robot, Slider)
        position = robot.carriage.position
        on_rail = 0.0 <= position <= robot.rail_m
        return [CheckResult("rail", "PASS" if on_rail else "FAIL",
                            f"carriage at {position:.3f} m of 0..{robot.rail_m:g} m")]

    def check_hold(self, robot: Robot) -> CheckResult:
        assert isinstance(robot, Slider)
        powered = robot.carriage.powered
        return CheckResult("hold", "PASS" if powered else "FAIL", "the motor holds the carriage" if powered
                           else "the motor is not powered")

    def keyboard(self, robot: Robot, settings: DriveSettings) -> SliderKeyboard:
        return SliderKeyboard(robot, settings)


register_robot_kind("slider", SliderKind())
