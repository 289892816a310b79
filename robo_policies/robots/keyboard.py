"""What keys mean: the settings of keyboard driving and the bindings every robot kind shares.

Each robot kind binds its own motion keys (``RobotKind.keyboard`` returns a ``Keyboard``: an
arm nudges joints, a base drives); the keys here mean the same on every robot. Reading the
terminal and the fixed-rate loop live in ``teleop.py``. This module imports nothing heavy, so
command configs (``DriveSettings``) and kind modules can import it cheaply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from robo_policies.robots.robot import Robot

QUIT_KEYS = frozenset({"esc", "ctrl-c"})
RESET_KEY = "r"
"""Resets a latched e-stop; a robot's motion keys also treat it as "hold still"."""
HOLD_KEY = "x"


@dataclass
class DriveSettings:
    """How far a key moves the robot."""

    speed: float = 0.2
    """Base: forward and strafe speed (m/s)."""
    turn_speed: float = 1.0
    """Base: yaw rate (rad/s)."""
    key_timeout_s: float = 0.6
    """Base: stop when no motion key arrives for this long (0: keys latch until x)."""
    joint_step: float = 0.05
    """Arm: rad per key press."""
    gripper_step: float = 0.1
    """Arm: gripper closure (0 open .. 1 closed) per key press."""


class Keyboard(Protocol):
    """A robot kind's key bindings, called once per control tick (``teleop.drive``)."""

    help: str
    """One line naming the keys, shown when teleop starts."""

    def handle(self, keys: list[str], now: float) -> None:
        """The keys pressed since the last tick, at ``now`` (the robot's clock)."""

    def command(self, now: float) -> np.ndarray:
        """The command to send at ``now``."""

    def sent(self, command: np.ndarray) -> None:
        """What the safety chain let through (the next command may build on it)."""


class PositionKeyboard(ABC):
    """Keys nudge a position target (an arm's joints, a slider's carriage): it starts at the
    robot's hold command, ``x`` and ``r`` bring it back there, and it follows what the safety
    chain let through, so a clamped joint does not wind up past its limit."""

    help: str

    def __init__(self, robot: Robot) -> None:
        self.robot = robot
        self.target: np.ndarray | None = None

    @abstractmethod
    def nudge(self, key: str, target: np.ndarray) -> None:
        """Move ``target`` in place for a motion key; other keys leave it."""

    def handle(self, keys: list[str], now: float) -> None:
        if self.target is None:
            self.target = self.robot.hold_command()
        for key in keys:
            if key in (HOLD_KEY, RESET_KEY):
                self.target = self.robot.hold_command()
            else:
                self.nudge(key, self.target)

    def command(self, now: float) -> np.ndarray:
        assert self.target is not None, "handle() comes first"
        return self.target.copy()

    def sent(self, command: np.ndarray) -> None:
        self.target = command.copy()
