"""``robo replay``: send a recorded episode's actions to the robot again.

What was recorded is what the safety chain let through then, and it goes through the chain
again now (the scene or the limits may have changed), at the rate it was recorded. Useful to
check a recording before training on it, and to see whether a robot repeats itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import ConfigError


def recorded_rate(dataset: str | Path) -> float:
    """The rate ``dataset`` was recorded at (Hz)."""
    rate = float(ReplayBuffer.open(dataset).attrs.get("fps") or 0.0)
    if not rate > 0:
        raise ConfigError(f"{dataset} does not say its rate: give fps=<Hz>")
    return rate


def replay_episode(robot: Robot, dataset: str | Path, episode: int, rate: float,
                   echo: Callable[[str], None] = print) -> int:
    """Send episode ``episode`` of ``dataset`` to the connected ``robot`` at ``rate`` Hz; the
    robot holds still after it however it ends. Returns the number of actions sent."""
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
    echo(f"replaying episode {episode} of {dataset}: {len(actions)} actions at {rate:g} Hz")
    clock, deadline = robot.clock, robot.clock.now()
    with robot.held_at_exit():
        for action in actions:
            robot.send_action(action)
            deadline += 1.0 / rate
            clock.sleep(deadline - clock.now())
    return len(actions)
