"""``check_task``: the contract every task's environment must keep, checked in one place.

Collection, evaluation and fine-tuning loops rely on these rules instead of special cases,
so a new task (yours, or any Gymnasium env wrapped as a Task) should pass ``check_task``
before it is used. Each failure raises ``AssertionError`` naming the rule.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from robo_policies.envs.task import Task

DELIBERATE_CHECKER_WARNINGS = (
    ".*infinity.*",  # unbounded positions and velocities are honest bounds
    ".*normalized space.*",  # actions keep physical units (rad, rad/s)
    ".*alternative render modes.*",  # rgb_array is the only mode we offer
)
"""Gymnasium checker warnings about choices our tasks make on purpose."""


def check_task(task: Task, seeds: tuple[int, int] = (0, 1), render: bool = True) -> None:
    """Check ``task``'s env against the Gymnasium checker and our own contract.

    Our contract: a ``Dict`` of float32 ``Box`` observations and (H, W, 3) uint8 camera images; ``info["is_success"]`` (a bool)
    on reset and every step; equal seeds give equal resets and different seeds different
    ones; truncation at exactly ``task.horizon`` steps; ``rgb_array`` frames of uint8.
    """
    env = task.env(render_mode="rgb_array" if render else None)
    try:
        with warnings.catch_warnings():
            for pattern in DELIBERATE_CHECKER_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            check_env(env.unwrapped, skip_render_check=not render)
        _check_observation_space(env)
        _check_seeding(env, seeds)
        _check_horizon(env, task.horizon, seeds[0])
        if render:
            _check_render(env)
    finally:
        env.close()


def _check_observation_space(env: gym.Env) -> None:
    space = env.observation_space
    assert isinstance(space, spaces.Dict), f"observation space must be a Dict, got {space}"
    for key, sub in space.spaces.items():
        image = isinstance(sub, spaces.Box) and sub.dtype == np.uint8 and len(sub.shape) == 3 and sub.shape[2] == 3
        assert image or (isinstance(sub, spaces.Box) and sub.dtype == np.float32), (
            f"observation '{key}' must be a float32 Box or an (H, W, 3) uint8 image, got {sub}"
        )


def _check_seeding(env: gym.Env, seeds: tuple[int, int]) -> None:
    first, info = env.reset(seed=seeds[0])
    assert isinstance(info.get("is_success"), (bool, np.bool_)), "reset info needs 'is_success'"
    again, _ = env.reset(seed=seeds[0])
    other, _ = env.reset(seed=seeds[1])
    for key in first:
        np.testing.assert_array_equal(
            first[key], again[key], err_msg=f"reset(seed={seeds[0]}) differs for '{key}'"
        )
    assert any(not np.array_equal(first[key], other[key]) for key in first), (
        f"reset with seeds {seeds[0]} and {seeds[1]} gave identical observations"
    )


def _check_horizon(env: gym.Env, horizon: int, seed: int) -> None:
    """Hold the first action sampled; the episode must end by truncation at ``horizon``."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    action = env.action_space.sample()
    for step in range(1, horizon + 1):
        _, _, terminated, truncated, info = env.step(action)
        assert isinstance(info.get("is_success"), (bool, np.bool_)), "step info needs 'is_success'"
        if terminated:
            return  # solved by chance: the horizon cannot be checked from this rollout
        assert truncated == (step == horizon), (
            f"truncated={truncated} at step {step}; the task's horizon is {horizon}"
        )


def _check_render(env: gym.Env) -> None:
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8, "render must give uint8"
    assert frame.ndim == 3 and frame.shape[2] == 3, f"render gave shape {frame.shape}"
    assert frame.min() != frame.max(), "render gave a constant image"
