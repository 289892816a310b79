"""A tiny pure-Python task for testing collection and CLI plumbing without MuJoCo."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robo_policies.envs import Task


class ToyReachEnv(gym.Env):
    """A point on a line must reach 0; the episode fails if the expert is told to stall."""

    def __init__(self, render_mode=None, horizon: int = 8):
        self.observation_space = spaces.Dict(
            {"pos": spaces.Box(-10, 10, shape=(1,), dtype=np.float32)}
        )
        self.action_space = spaces.Box(-1, 1, shape=(1,), dtype=np.float32)
        self.horizon = horizon

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.float32(self.np_random.uniform(2, 4))
        self.t = 0
        return {"pos": np.array([self.pos], np.float32)}, {"is_success": False}

    def step(self, action):
        self.pos = np.float32(self.pos + float(action[0]))
        self.t += 1
        success = abs(self.pos) < 0.5
        obs = {"pos": np.array([self.pos], np.float32)}
        return obs, float(success), success, self.t >= self.horizon, {"is_success": success}


STALL_ABOVE = 3.7
"""The expert stalls (and fails) from starts above this."""


def make_expert(env, rng):
    """Moves toward 0, except in seeds whose start is above ``STALL_ABOVE`` where it stalls."""
    stall = env.unwrapped.pos > STALL_ABOVE

    def act(obs):
        return np.zeros(1, np.float32) if stall else np.clip(-obs["pos"], -1, 1).astype(np.float32)

    return act


def solvable_seeds(seeds):
    """The seeds (in order) whose start the expert can solve: worked out from the env alone."""
    env = ToyReachEnv()
    return [seed for seed in seeds if env.reset(seed=seed)[0]["pos"][0] <= STALL_ABOVE]


TOY_TASK = Task(
    name="toy_reach", horizon=8, make_env=ToyReachEnv, make_expert=make_expert,
    description="test-only 1-D reaching",
)
