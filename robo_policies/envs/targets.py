"""Where a saved policy runs in simulation: a registered task or any Gymnasium id.

``env_for`` turns a rollout config (``robo eval``, ``robo compose``, ``robo finetune``) into
the pieces the runner takes. It needs only the policy's observation keys, so it serves a
single policy, a composition and a fine-tuned agent alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from omegaconf import DictConfig, OmegaConf

from robo_policies.envs.gym_target import make_gym_env_factory
from robo_policies.envs.registry import get_task
from robo_policies.utils.errors import ConfigError


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
    task_name = cfg.task.name if cfg.task else recorded_task
    if not task_name:
        raise ConfigError(f"{source}: no recorded task to evaluate on; pass task=<name> or env.id=<gym id>")
    task = get_task(task_name)
    env_kwargs = OmegaConf.to_container(cfg.task.env_kwargs) if cfg.task else {}
    return partial(task.env, **env_kwargs), None, task.episode_stats, None
