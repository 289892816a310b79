"""Step one episode: the loop that collection (``collect.py``) and evaluation (``runner.py``) share.

``step_episode`` resets the env with a seed, asks ``act`` for an action on every observation
and steps until the env terminates or truncates, or ``max_steps`` steps. It tracks what both
callers read the same way: the episode's length and return, and success. What differs stays
with the caller, inside ``act`` or a hook: the expert's noise and labels, the policy's
model-call timing, video frames.

Success: each step's ``info["is_success"]``, or ``info["success"]`` where an env has no
``is_success``, coerced to bool. An episode's ``success`` is the value at its last step (the
state the actor left the task in); ``ever_success`` records whether it was reached at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

Observation = Any
"""What ``act`` sees: the env's observation, or ``obs_adapter``'s result when one is given."""


@dataclass
class Episode:
    """What one episode did.

    Attributes:
        seed: the seed ``env.reset`` was called with.
        length: env steps taken.
        total_reward: undiscounted sum of the rewards, added up step by step.
        rewards: the reward of every step, as the env returned it.
        success: the success flag at the last step (False if the env reported none).
        ever_success: whether any step reported success.
        success_reported: whether any step's info held ``is_success`` or ``success``.
        info: the last step's info.
        observations: the (adapted) observation after reset and after every step
            (``length + 1`` of them), when ``keep_observations`` was set; else None.
    """

    seed: int
    length: int
    total_reward: float
    rewards: list[Any]
    success: bool
    ever_success: bool
    success_reported: bool
    info: dict[str, Any]
    observations: list[Observation] | None


def step_episode(
    env: gym.Env,
    seed: int,
    act: Callable[[Observation], Any],
    *,
    max_steps: int | None = None,
    obs_adapter: Callable[[Any], Observation] | None = None,
    keep_observations: bool = False,
    on_reset: Callable[[], None] | None = None,
    on_step: Callable[[], None] | None = None,
) -> Episode:
    """Run one episode from ``env.reset(seed=seed)``.

    Order of calls (random-number streams depend on it): ``env.reset``, ``on_reset()`` (make
    an expert, reset a policy: both may read the freshly reset env), then per step
    ``act(obs)``, ``env.step``, ``on_step()`` (render a frame, say).

    Args:
        env: the env; it is neither built nor closed here.
        seed: passed to ``env.reset``.
        act: the action for an observation.
        max_steps: end the episode after this many steps even if the env has not.
        obs_adapter: turns the env's observation into what ``act`` and ``observations`` get.
        keep_observations: keep every observation in ``Episode.observations``.
        on_reset: called once after ``env.reset``, before the first action.
        on_step: called after every ``env.step``.
    """
    adapt = obs_adapter or (lambda raw: raw)
    raw_obs, info = env.reset(seed=seed)
    if on_reset is not None:
        on_reset()
    obs = adapt(raw_obs)
    observations = [obs] if keep_observations else None
    rewards: list[Any] = []
    total_reward = 0.0
    success = ever_success = success_reported = False
    done = False
    while not done:
        action = act(obs)
        raw_obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        total_reward += float(reward)
        flag = success_flag(info)
        success_reported |= flag is not None
        success = bool(flag)
        ever_success |= success
        obs = adapt(raw_obs)
        if observations is not None:
            observations.append(obs)
        if on_step is not None:
            on_step()
        done = terminated or truncated or (max_steps is not None and len(rewards) >= max_steps)
    return Episode(
        seed=seed,
        length=len(rewards),
        total_reward=total_reward,
        rewards=rewards,
        success=success,
        ever_success=ever_success,
        success_reported=success_reported,
        info=info,
        observations=observations,
    )


def success_flag(info: dict[str, Any]) -> bool | None:
    """``info["is_success"]``, else ``info["success"]``, as a bool; None if neither is there."""
    for key in ("is_success", "success"):
        if key in info:
            return bool(np.asarray(info[key]).any())
    return None
