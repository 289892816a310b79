"""What a task is: a Gymnasium environment, a scripted expert that solves it, and a horizon.

Tasks are the "task side" of the library (datasets and env runners); policies never import them.
Every environment reports success through ``info["is_success"]`` and truncates itself at
``horizon`` steps, so collection, evaluation and fine-tuning loops need no task-specific code.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import gymnasium as gym
import numpy as np


class Expert(Protocol):
    """A scripted demonstrator: maps the current observation to an action.

    Experts may read privileged simulator state through ``env.unwrapped``; they are
    built fresh for every episode (after ``env.reset``) so per-episode choices, such as
    which side of an obstacle to pass, live in the expert object.
    """

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class Task:
    """A named task: how to build its env and its expert.

    Attributes:
        name: registry key used by configs and the CLI (``task=<name>``).
        horizon: the episode length at which the env truncates.
        make_env: ``make_env(render_mode=None, **kwargs) -> gym.Env``.
        make_expert: ``make_expert(env, rng) -> Expert``; call after ``env.reset``.
        description: one line shown by ``robo tasks``.
        requires: the pip extra needed to build the env, if any (e.g. ``"ogbench"``).
        episode_stats: optional ``(observations, last_info) -> dict`` of per-episode
            facts for evaluation reports, from the stacked observations of one episode
            (e.g. which side of the obstacle ``diffdrive_nav`` passed).
        discrete_action_dims: action dimensions the expert only sets to their two ends
            (a gripper's open/closed); warm-started samplers snap them (``sampling.warmstart``).
        state_task: for a task that shows another's scene through cameras (``<task>_image``),
            that task: a robot whose twin runs it can run this one too.
    """

    name: str
    horizon: int
    make_env: Callable[..., gym.Env]
    make_expert: Callable[[gym.Env, np.random.Generator], Expert]
    description: str = ""
    requires: str | None = None
    episode_stats: Callable[[dict[str, np.ndarray], dict[str, Any]], dict[str, Any]] | None = None
    discrete_action_dims: tuple[int, ...] = ()
    state_task: str | None = None

    def env(self, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
        """Build the env; a missing optional extra gives an error naming the extra to install."""
        try:
            return self.make_env(render_mode=render_mode, **kwargs)
        except ImportError as err:
            if self.requires is None:
                raise
            raise ImportError(
                f"task '{self.name}' needs the '{self.requires}' extra: "
                f"pip install 'robo-policies[{self.requires}]' ({err})"
            ) from err


class StateExpert:
    """An expert for a task seen through cameras: it keeps acting on the full simulator state
    (``env.unwrapped.state_observation()``), whatever the recorded observation holds."""

    def __init__(self, env: gym.Env, expert: Expert) -> None:
        self.env = env.unwrapped
        self.expert = expert

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.expert(self.env.state_observation())


def image_variant(task: Task) -> Task:
    """``<task>_image``: the task as its real robot sees it, proprioception and cameras and no
    object, goal or obstacle state (``obs_mode=image``); its scripted expert still acts on
    the full state, so it collects the same demonstrations."""

    def make_expert(env: gym.Env, rng: np.random.Generator) -> Expert:
        return StateExpert(env, task.make_expert(env, rng))

    return dataclasses.replace(
        task, name=f"{task.name}_image", make_env=functools.partial(task.make_env, obs_mode="image"),
        make_expert=make_expert, episode_stats=None, state_task=task.name,
        description=f"{task.description.rstrip('.')}; seen through encoders and cameras only.")
