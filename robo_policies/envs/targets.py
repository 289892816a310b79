"""Where a saved policy runs in simulation: a registered task or any Gymnasium id.

``env_for`` turns a rollout config (``robo eval``, ``robo compose``, ``robo finetune``) into
the pieces the runner takes. It needs only the policy's observation keys, so it serves a
single policy, a composition and a fine-tuned agent alike.

``check_readers`` refuses a task target, before any episode, that does not serve each policy
(each parent of a composition) what it learned from: every key it reads, at its shape and
with the meaning the key had in its training task. Meanings are compared by value: the
target env and the training task's env (with the target's settings, its own observation
mode) are reset with one seed and stepped with the same actions, and a key must agree all
along. So ``diffdrive_nav_image``'s ``base_pose`` (odometry, from the start pose) is never
fed to a policy that learned ``diffdrive_nav``'s world pose, nor the reverse, while
``arm_pick_place``'s ``joint_pos`` serves both arm tasks. Two parents that learned one key
with two meanings therefore never run together: no env serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

from robo_policies.envs.gym_target import make_gym_env_factory
from robo_policies.envs.registry import get_task, task_names
from robo_policies.envs.task import Task
from robo_policies.utils.errors import ConfigError, ObservationKeyError, missing_observation_keys

PROBE_STEPS = 3
"""Steps after the reset over which a key's values must agree between two envs."""


@dataclass(frozen=True)
class Reader:
    """A policy as an env must serve it.

    Attributes:
        name: the policy in errors (its directory, a composition's parent).
        obs_shapes: per-step shape of each observation key it reads.
        task: the task it was trained on (saved metadata), whose env says what its keys
            mean; None when unknown (then only keys and shapes are checked).
    """

    name: str
    obs_shapes: Mapping[str, tuple[int, ...]]
    task: str | None


def env_for(
    cfg: DictConfig, obs_keys: Iterable[str], recorded_task: str | None, source: str
) -> tuple[Callable[..., Any], Callable[[Any], dict] | None, Callable | None, int | None]:
    """(make_env, obs_adapter, episode_stats, max_steps) for the target ``cfg`` names:
    ``env.id`` (a Gymnasium env), else ``task``, else ``recorded_task`` (the policy's
    training task); ``obs_keys`` are the policy's observation keys, ``source`` names the
    policy in errors."""
    env = OmegaConf.to_container(cfg.env)
    if env.get("id"):
        target = make_gym_env_factory(
            env["id"], kwargs=env.get("kwargs") or {}, import_module=env.get("import"),
            obs_map=env.get("obs_map") or {}, keys=sorted(obs_keys),
        )
        return target.make_env, target.obs_adapter, None, None
    task, env_kwargs = task_target(cfg, recorded_task, source)
    return partial(task.env, **env_kwargs), None, task.episode_stats, None


def task_target(cfg: DictConfig, recorded_task: str | None, source: str) -> tuple[Task, dict[str, Any]]:
    """The task and env kwargs ``cfg`` names (``task``, else ``recorded_task`` as it is)."""
    task_name = cfg.task.name if cfg.task else recorded_task
    if not task_name:
        raise ConfigError(f"{source}: no recorded task to evaluate on; pass task=<name> or env.id=<gym id>")
    env_kwargs = OmegaConf.to_container(cfg.task.env_kwargs) if cfg.task else {}
    return get_task(task_name), env_kwargs


def check_readers(cfg: DictConfig, readers: Sequence[Reader], recorded_task: str | None, source: str) -> None:
    """Raise unless the task target ``cfg`` names serves every reader (see the module
    docstring). A Gymnasium target is not checked: its ``obs_map`` says what each key is."""
    if OmegaConf.select(cfg, "env.id"):
        return
    task, env_kwargs = task_target(cfg, recorded_task, source)
    target = f"task {task.name!r}" + (f" with env_kwargs {env_kwargs}" if env_kwargs else "")
    env = task.env(**env_kwargs)
    try:
        provided = {key: space.shape for key, space in env.observation_space.spaces.items()}
    finally:
        env.close()
    for reader in readers:
        _check_keys(reader, provided, target)
    # A reader trained in this task and observation mode reads what it learned from. Any other
    # is compared with its training task built with the target's settings but obs_mode (which
    # decides how keys are expressed), so a layout setting (start_distance) is no difference.
    settings = {key: value for key, value in env_kwargs.items() if key != "obs_mode"}
    compared = [reader for reader in readers if reader.task in task_names()
                and (reader.task != task.name or "obs_mode" in env_kwargs)]
    if not compared:
        return
    here = _probe(partial(task.env, **env_kwargs))
    references = {name: _probe(partial(get_task(name).env, **settings))
                  for name in sorted({reader.task for reader in compared})}
    for reader in compared:
        there = references[reader.task]
        differing = [key for key in sorted(reader.obs_shapes) if key in there[0] and not all(
            np.allclose(a[key], b[key], rtol=1e-5, atol=1e-6) for a, b in zip(here, there))]
        if differing:
            raise ConfigError(
                f"{reader.name} reads {differing} as task {reader.task!r} gives them, but {target} "
                "gives other values (another frame or unit); evaluate it where every key it reads "
                "means what it meant in training"
            )


def _check_keys(reader: Reader, provided: Mapping[str, tuple[int, ...]], target: str) -> None:
    """Every key ``reader`` reads is ``provided``, with the shape it reads."""
    missing = [key for key in sorted(reader.obs_shapes) if key not in provided]
    if missing:
        cameras = [key for key in missing if len(reader.obs_shapes[key]) == 3]
        hint = (f"; {cameras} are camera images: tasks give them with obs_mode=image (the "
                "<task>_image variants) or +task.env_kwargs.obs_mode=both") if cameras else ""
        error = missing_observation_keys(missing, list(reader.obs_shapes), list(provided), target)
        raise ObservationKeyError(f"{reader.name}: {error}{hint}")
    for key, shape in sorted(reader.obs_shapes.items()):
        if tuple(provided[key]) != tuple(shape):
            raise ConfigError(f"{reader.name} reads {key!r} of shape {tuple(shape)}, but {target} "
                              f"gives shape {tuple(provided[key])}")


def _probe(make_env: Callable[[], gym.Env], seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The observations of an env reset with ``seed`` and stepped ``PROBE_STEPS`` times with
    actions drawn from its action space seeded alike (the same actions where two envs' spaces
    agree)."""
    env = make_env()
    try:
        env.action_space.seed(seed)
        observations = [env.reset(seed=seed)[0]]
        for _ in range(PROBE_STEPS):
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            observations.append(obs)
            if terminated or truncated:
                break
        return observations
    finally:
        env.close()
