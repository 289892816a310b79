"""Leader-arm teleoperation: a second arm, moved by hand, drives the follower.

The leader is connected to be read only (``connect(powered=False)``: its torque is never
turned on, and no goal is written to it). Each tick its joints, in the follower's command units (rad, the gripper
0 open .. 1 closed, through the leader's own calibration), become the follower's command,
which goes through the follower's safety chain like every other command: a leader yanked
faster than the chain allows moves the follower as fast as it allows. Both arms calibrated to
the same zero pose read the same in the same pose, so the mapping is the identity, motor by
motor in command order. The keyboard still latches the e-stop, resets it, starts and ends
episodes and quits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from robo_policies.robots.config import RobotConfig
from robo_policies.robots.factory import make_robot
from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import ConfigError


class LeaderArm:
    """The ``Keyboard``-shaped controller of ``teleop.drive`` that reads a leader arm."""

    def __init__(self, leader: Robot, follower: Robot) -> None:
        if leader.action_dim != follower.action_dim:
            raise ConfigError(f"leader {leader.name} has {leader.action_dim} motors {leader.action_names}, "
                              f"follower {follower.name} takes {follower.action_dim} {follower.action_names}")
        if leader.present_position() is None:
            raise ConfigError(f"{leader.name} does not report joint positions: it cannot lead an arm")
        self.leader = leader
        self.help = f"move {leader.name} by hand, {follower.name} follows"

    def handle(self, keys: list[str], now: float) -> None:
        """Keys do not move the follower here (the shared keys still work: ``teleop.drive``)."""

    def command(self, now: float) -> np.ndarray:
        position = self.leader.present_position()
        assert position is not None
        return np.asarray(position, dtype=np.float64)

    def sent(self, command: np.ndarray) -> None:
        """The leader does not build on what was sent: it says where the follower should be."""


@contextmanager
def leader_session(config: RobotConfig, port: str | None = None) -> Iterator[Robot]:
    """The leader arm, connected to read only; disconnected (never powered) after the block."""
    leader = make_robot(config, port=port)
    leader.connect(powered=False)
    try:
        yield leader
    finally:
        leader.disconnect()
