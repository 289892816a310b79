"""``robo replay``: send a recorded episode's actions to the robot again.

What was recorded is what the safety chain let through then, and it goes through the chain
again now (the scene or the limits may have changed), at the rate it was recorded. Useful to
check a recording before training on it, and to see whether a robot repeats itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.robots.robot import Robot
from robo_policies.robots.teleop import drive
from robo_policies.utils.errors import ConfigError


def recorded_rate(dataset: str | Path) -> float:
    """The rate ``dataset`` was recorded at (Hz)."""
    rate = float(ReplayBuffer.open(dataset).attrs.get("fps") or 0.0)
    if not rate > 0:
        raise ConfigError(f"{dataset} does not say its rate: give fps=<Hz>")
    return rate


def recorded_actions(robot: Robot, dataset: str | Path, episode: int) -> np.ndarray:
    """Episode ``episode``'s actions, checked against ``robot`` (connected or not: call it before
    connecting, so a wrong dataset never powers the robot)."""
    buffer = ReplayBuffer.open(dataset)
    recorded_on = buffer.attrs.get("robot")
    if recorded_on != robot.name:
        raise ConfigError(f"{dataset} was recorded on robot {recorded_on!r}, not {robot.name!r}")
    if not 0 <= episode < buffer.n_episodes:
        raise ConfigError(f"{dataset} holds episodes 0..{buffer.n_episodes - 1}; episode={episode} is not one")
    actions = buffer.episode(episode, keys=["action"])["action"]
    if actions.shape[1:] != (robot.action_dim,):
        raise ConfigError(f"{dataset}: actions of shape {actions.shape[1:]}, but {robot.name} takes "
                          f"({robot.action_dim},) for {robot.action_names}")
    return actions


def replay_episode(robot: Robot, actions: np.ndarray, rate: float, echo: Callable[[str], None] = print) -> int:
    """Send ``actions`` (``recorded_actions``) to the connected ``robot`` at ``rate`` Hz; the
    robot holds still after them however it ends. Returns the number of actions sent."""
    echo(f"replaying {len(actions)} recorded actions at {rate:g} Hz")
    with robot.held_at_exit():  # teleop's fixed-rate loop: a late tick does not rush the next ones
        drive(robot, _NoKeys(), _Playback(actions), rate, duration_s=len(actions) / rate, echo=lambda line: None)
    return len(actions)


class _NoKeys:
    """A replay takes no keys (the e-stop file and signal still latch the chain's e-stop)."""

    def read(self) -> list[str]:
        return []


class _Playback:
    """The ``Keyboard``-shaped controller of ``teleop.drive`` that plays recorded actions in order."""

    help = "replaying recorded actions"

    def __init__(self, actions: np.ndarray) -> None:
        self._actions = iter(actions)

    def handle(self, keys: list[str], now: float) -> None:
        """Keys do not change a replay."""

    def command(self, now: float) -> np.ndarray:
        return next(self._actions)

    def sent(self, command: np.ndarray) -> None:
        """What was sent does not change the next recorded action."""
