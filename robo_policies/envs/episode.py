"""Step one episode: the loop that collection (``collect.py``) and evaluation (``runner.py``) share.

``step_episode`` resets the env with a seed, asks ``act`` for an action on every observation
and steps until the env terminates or truncates, or ``max_steps`` steps. It tracks what both
callers read the same way: the episode's length and return, and success. What differs stays
with the caller, inside ``act`` or a hook: the expert's noise and labels, the policy's
model-call timing, video frames.

``RunningEpisode`` is the same episode stepped from outside, one action at a time, so that
vectorised evaluation can interleave the episodes of several envs; ``step_episode`` drives one.

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
    episode = RunningEpisode(env, seed, max_steps=max_steps, obs_adapter=obs_adapter,
                             keep_observations=keep_observations, on_reset=on_reset)
    while not episode.done:
        episode.step(act(episode.obs))
        if on_step is not None:
            on_step()
    return episode.result()


class RunningEpisode:
    """An episode stepped from outside, one action at a time: how vectorised evaluation
    interleaves the episodes of several envs. ``step_episode`` drives one to its end; the
    arguments are its own, and the constructor resets the env (then calls ``on_reset``).

    Attributes:
        obs: the current (adapted) observation, the one the next action answers.
        done: whether the episode has ended (the env ended it, or ``max_steps``).
    """

    def __init__(
        self,
        env: gym.Env,
        seed: int,
        *,
        max_steps: int | None = None,
        obs_adapter: Callable[[Any], Observation] | None = None,
        keep_observations: bool = False,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        self.env, self.seed, self.max_steps = env, seed, max_steps
        self._adapt = obs_adapter or (lambda raw: raw)
        raw_obs, self.info = env.reset(seed=seed)
        if on_reset is not None:
            on_reset()
        self.obs = self._adapt(raw_obs)
        self.observations = [self.obs] if keep_observations else None
        self.rewards: list[Any] = []
        self.total_reward = 0.0
        self.success = self.ever_success = self.success_reported = False
        self.done = False

    def step(self, action: Any) -> bool:
        """Step the env with ``action``; returns whether the episode has ended."""
        if self.done:
            raise RuntimeError(f"episode seed={self.seed} has ended; it takes no more actions")
        raw_obs, reward, terminated, truncated, self.info = self.env.step(action)
        self.rewards.append(reward)
        self.total_reward += float(reward)
        flag = success_flag(self.info)
        self.success_reported |= flag is not None
        self.success = bool(flag)
        self.ever_success |= self.success
        self.obs = self._adapt(raw_obs)
        if self.observations is not None:
            self.observations.append(self.obs)
        steps = len(self.rewards)
        self.done = terminated or truncated or (self.max_steps is not None and steps >= self.max_steps)
        return self.done

    def result(self) -> Episode:
        """What the episode did (so far)."""
        return Episode(
            seed=self.seed,
            length=len(self.rewards),
            total_reward=self.total_reward,
            rewards=self.rewards,
            success=self.success,
            ever_success=self.ever_success,
            success_reported=self.success_reported,
            info=self.info,
            observations=self.observations,
        )


def success_flag(info: dict[str, Any]) -> bool | None:
    """``info["is_success"]``, else ``info["success"]``, as a bool; None if neither is there."""
    for key in ("is_success", "success"):
        if key in info:
            return bool(np.asarray(info[key]).any())
    return None
