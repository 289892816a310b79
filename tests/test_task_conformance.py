"""Every registered task keeps the env contract (``check_task``), and the checker catches breaks."""

import importlib.util

import numpy as np
import pytest
from gymnasium import spaces
from toy_task import TOY_TASK, ToyReachEnv

from robo_policies.envs import Task, get_task, task_names
from robo_policies.envs.checker import check_task


@pytest.mark.parametrize("name", task_names())
def test_builtin_task_passes_check_task(name):
    task = get_task(name)
    if task.requires and importlib.util.find_spec(task.requires) is None:
        pytest.skip(f"needs the '{task.requires}' extra")
    check_task(task)


def test_toy_task_passes_without_render():
    check_task(TOY_TASK, render=False)


class LateTruncation(ToyReachEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(np.zeros(1, np.float32))
        return obs, reward, terminated, self.t >= self.horizon + 1, info


class Float64Observations(ToyReachEnv):
    def __init__(self, render_mode=None):
        super().__init__(render_mode)
        self.observation_space = spaces.Dict({"pos": spaces.Box(-10, 10, shape=(1,), dtype=np.float64)})

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return {"pos": obs["pos"].astype(np.float64)}, info

    def step(self, action):
        obs, *rest = super().step(action)
        return {"pos": obs["pos"].astype(np.float64)}, *rest


@pytest.mark.parametrize(
    "env_class, message",
    [
        (LateTruncation, "truncated=False at step 8; the task's horizon is 8"),
        (Float64Observations, "observation 'pos' must be a float32 Box"),
    ],
)
def test_checker_names_the_broken_rule(env_class, message):
    broken = Task(name="broken", horizon=8, make_env=env_class, make_expert=TOY_TASK.make_expert)
    with pytest.raises(AssertionError, match=message):
        check_task(broken, render=False)
