"""``robo eval``: load a saved policy, build its evaluation env, run it, write the report.

The policy is any saved agent (``checkpoints``: a ``Policy``, a composition from ``robo
compose``, a fine-tuned agent from ``robo finetune``). The env is the policy's training task
(read from the saved metadata, with the env settings it was saved with), another registered
task (``task=...``) or any Gymnasium id (``env.id=...``; ``envs.targets``). Before any
episode, the task must serve the policy, or each parent of a composition, every key it reads
with the meaning it learned (``check_readers``). The report is ``eval.json`` (success rate,
episode length, per-model-call latency and nfe, per-episode records) and ``rollout.mp4`` of
the first episodes, the policy's camera views beside the scene.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robo_policies.data import ReplayBuffer
from robo_policies.data.sampler import SequenceSampler
from robo_policies.checkpoints import load_saved, resolve_saved, saved_metadata
from robo_policies.commands.config import TaskConfig
from robo_policies.envs import get_task
from robo_policies.envs.runner import EvalResult, PolicyLike, evaluate
from robo_policies.envs.targets import Reader, check_readers, env_for
from robo_policies.policy import Policy
from robo_policies.sampling.composition import ComposedPolicy
from robo_policies.sampling.warmstart import WarmStart, WarmStartConfig, calibrate_start_noise
from robo_policies.utils.errors import ConfigError
from robo_policies.utils.threads import use_threads


def sampling_overrides(cfg: DictConfig) -> dict[str, Any]:
    """The ``sampling.*`` settings that were given (the others keep the saved config's)."""
    return {k: v for k, v in OmegaConf.to_container(cfg.sampling).items() if v is not None}


def evaluate_checkpoint(cfg: DictConfig) -> tuple[EvalResult, Path]:
    """Run ``robo eval`` with its composed config; returns the result and the output directory."""
    if not cfg.checkpoint:
        raise ConfigError("checkpoint=<dir> is required (a saved policy or a run directory)")
    use_threads(cfg.threads)
    policy_dir = resolve_saved(cfg.checkpoint)
    policy = load_saved(policy_dir, overrides=sampling_overrides(cfg))
    metadata = saved_metadata(policy_dir)
    if not cfg.task and metadata.get("env_kwargs"):
        # Saved with env settings (a composition searched with obs_mode=both): evaluate there.
        cfg = cfg.copy()
        cfg.task = TaskConfig(name=metadata["task"], env_kwargs=metadata["env_kwargs"])
    task, source = metadata.get("task"), str(policy_dir)
    check_readers(cfg, observation_readers(policy, task, source), task, source)
    out = Path(cfg.out) if cfg.out else _default_out(policy_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = evaluate_policy(
        policy, cfg, task, source, seed=cfg.seed,
        video_path=out / "rollout.mp4" if cfg.video_episodes > 0 else None,
        video_episodes=cfg.video_episodes,
    )
    result.to_json(out / "eval.json")
    return result, out


def evaluate_policy(
    policy: PolicyLike,
    cfg: DictConfig,
    recorded_task: str | None,
    source: str,
    seed: int,
    video_path: Path | None = None,
    video_episodes: int = 0,
) -> EvalResult:
    """``evaluate`` a loaded policy on the target ``cfg`` names (``env.id``, ``task``, else
    ``recorded_task``) with ``cfg``'s episodes, max_steps, progress and num_envs. Shared by
    ``robo eval`` and ``robo compose``, so a weight search scores exactly as ``robo eval``
    would; ``source`` names the policy in errors."""
    make_env, obs_adapter, episode_stats, max_steps = env_for(cfg, policy.obs_shapes, recorded_task, source)
    policy.warm_start = make_warm_start(cfg, cfg.task.name if cfg.task else recorded_task, policy, source)
    result = evaluate(
        policy,
        make_env,
        episodes=cfg.episodes,
        seed=seed,
        video_path=video_path,
        video_episodes=video_episodes,
        progress=cfg.progress,
        max_steps=cfg.max_steps or max_steps,
        obs_adapter=obs_adapter,
        episode_callback=episode_stats,
        num_envs=cfg.num_envs,
    )
    warm = policy.warm_start
    result.sampler = {"name": "full"} if warm is None else {"name": "rti", **dataclasses.asdict(warm.config)}
    return result


def observation_readers(policy: PolicyLike, recorded_task: str | None, source: str) -> list[Reader]:
    """Who reads the env's observations: each parent of a composition, with the task it was
    trained on, else the policy itself (``source``, trained on ``recorded_task``)."""
    if isinstance(policy, ComposedPolicy):
        return [Reader(name, parent.obs_shapes, task)
                for name, parent, task in zip(policy.names, policy.parents, policy.tasks)]
    return [Reader(source, policy.obs_shapes, recorded_task)]


def make_warm_start(
    cfg: DictConfig, task_name: str | None, policy: PolicyLike, source: str
) -> WarmStart | None:
    """The RTI warm start ``cfg.sampler`` asks for (None: full solves). Discrete action
    dimensions default to those saved with the policy (``policy.discrete_action_dims``), then,
    for a policy saved before they were, to the task's; ``rti.calibrate`` sets the start noise
    from held-out data."""
    if cfg.sampler == "full":
        return None
    if cfg.sampler != "rti":
        raise ConfigError(f"sampler must be full or rti, got {cfg.sampler!r}")
    if not policy.warm_starts:
        raise ConfigError(f"{source}: {type(policy).__name__} picks among fresh samples at every call; "
                         "sampler=rti does not apply (use sampler=full)")
    settings = WarmStartConfig(**OmegaConf.to_container(cfg.rti))
    if settings.discrete_dims is None:
        settings.discrete_dims = saved_discrete_dims(policy)
    if settings.discrete_dims is None:
        on_task = task_name and not ("env" in cfg and cfg.env.id)
        task_dims = get_task(task_name).discrete_action_dims if on_task else ()
        settings.discrete_dims = list(task_dims)
    if settings.calibrate:
        if not isinstance(policy, Policy):
            raise ConfigError(f"{source}: rti.calibrate needs a single policy, not a composition")
        settings.start_noise = held_out_start_noise(policy, saved_metadata(source))
        print(f"rti.start_noise calibrated on held-out episodes: {settings.start_noise:.4f}")
    return WarmStart(settings)


def saved_discrete_dims(policy: PolicyLike) -> list[int] | None:
    """The discrete action dimensions saved with a policy (a composition: its lead parent's,
    whose sampler it follows); None when it was saved before they were stored."""
    single = policy.lead if isinstance(policy, ComposedPolicy) else policy
    if not isinstance(single, Policy) or single.config.discrete_action_dims is None:
        return None
    return list(single.config.discrete_action_dims)


def held_out_start_noise(policy: Policy, metadata: Mapping[str, Any], pairs: int = 256) -> float:
    """``calibrate_start_noise`` on up to ``pairs`` observation windows, ``Ta`` steps apart,
    from the training dataset's validation episodes (both named in the policy's metadata)."""
    if not metadata.get("dataset") or not metadata.get("val_episodes"):
        raise ConfigError("rti.calibrate needs a policy trained by `robo train` with validation "
                         f"episodes (metadata has dataset={metadata.get('dataset')!r}, "
                         f"val_episodes={metadata.get('val_episodes')!r})")
    buffer = ReplayBuffer.open(metadata["dataset"])
    to, shift = policy.config.n_obs_steps, policy.config.n_action_steps
    offsets = dict.fromkeys(policy.obs_shapes, np.arange(-(to - 1), shift + 1))
    # Streamed from disk: only the sampled windows' rows are read.
    arrays = {key: buffer[key] for key in policy.obs_shapes}
    windows = SequenceSampler(arrays, buffer.episode_ends, offsets, metadata["val_episodes"])
    rows = np.random.default_rng(0).permutation(len(windows))[:pairs]
    batch = {key: torch.as_tensor(value) for key, value in windows.sample(rows).items()
             if key in policy.obs_shapes}
    with torch.no_grad():
        now = policy.encode({key: value[:, :to] for key, value in batch.items()})
        later = policy.encode({key: value[:, shift:] for key, value in batch.items()})
    return calibrate_start_noise(policy.head, now, later, shift, torch.Generator().manual_seed(0))


def _default_out(policy_dir: Path) -> Path:
    """Reports go to the run directory when the policy is a run's ``checkpoint/``."""
    return policy_dir.parent if policy_dir.name == "checkpoint" else policy_dir
