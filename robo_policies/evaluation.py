"""``robo eval``: load a saved policy, build its evaluation env, run it, write the report.

The policy is a saved ``Policy`` or a saved composition of several (``ComposedPolicy``,
from ``robo compose``); ``load_policy`` tells them apart. The env is the policy's training
task (read from the saved metadata), another registered task (``task=...``) or any
Gymnasium id (``env.id=...``). The report is
``eval.json`` (success rate, episode length, per-model-call latency and nfe, per-episode
records) and ``rollout.mp4`` of the first episodes.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robo_policies.data import ReplayBuffer
from robo_policies.data.sampler import SequenceSampler
from robo_policies.envs import get_task
from robo_policies.envs.gym_target import make_gym_env_factory
from robo_policies.envs.runner import EvalResult, evaluate
from robo_policies.policy import Policy, policy_metadata
from robo_policies.rl.saved import FinetunedPolicy, finetuned_metadata, is_finetuned
from robo_policies.sampling.composition import ComposedPolicy, composition_metadata, is_composition
from robo_policies.sampling.warmstart import WarmStart, WarmStartConfig, calibrate_start_noise


def resolve_policy_dir(checkpoint: str | Path) -> Path:
    """A saved policy (or composition) directory, given it or a run directory (whose
    ``checkpoint/`` is used)."""
    path = Path(checkpoint)
    saved_policy = (path / "config.yaml").is_file() and (path / "model.safetensors").exists()
    if saved_policy or is_composition(path) or is_finetuned(path):
        return path
    checkpoint = path / "checkpoint"
    if is_composition(checkpoint) or is_finetuned(checkpoint) or (checkpoint / "config.yaml").is_file():
        return checkpoint
    raise FileNotFoundError(
        f"{path}: neither a saved policy or composition nor a run directory with checkpoint/"
    )


def load_policy(
    directory: str | Path, overrides: Mapping[str, Any] | None = None
) -> Policy | ComposedPolicy | FinetunedPolicy:
    """The policy saved in ``directory``: a ``ComposedPolicy`` for a composition, a
    ``FinetunedPolicy`` for a fine-tuned agent, else a ``Policy``; ``overrides`` change
    sampling settings (see ``Policy.load``)."""
    if is_composition(directory):
        return ComposedPolicy.load(directory, overrides=overrides)
    if is_finetuned(directory):
        return FinetunedPolicy.load(directory, overrides=overrides)
    return Policy.load(directory, overrides=overrides)


def saved_metadata(directory: str | Path) -> dict[str, Any]:
    """The metadata (e.g. the training task) saved with a policy or a composition."""
    if is_composition(directory):
        return composition_metadata(directory)
    return finetuned_metadata(directory) if is_finetuned(directory) else policy_metadata(directory)


def sampling_overrides(cfg: DictConfig) -> dict[str, Any]:
    """The ``sampling.*`` settings that were given (the others keep the saved config's)."""
    return {k: v for k, v in OmegaConf.to_container(cfg.sampling).items() if v is not None}


def evaluate_checkpoint(cfg: DictConfig) -> tuple[EvalResult, Path]:
    """Run ``robo eval`` with its composed config; returns the result and the output directory."""
    if not cfg.checkpoint:
        raise ValueError("checkpoint=<dir> is required (a saved policy or a run directory)")
    policy_dir = resolve_policy_dir(cfg.checkpoint)
    policy = load_policy(policy_dir, overrides=sampling_overrides(cfg))
    out = Path(cfg.out) if cfg.out else _default_out(policy_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = evaluate_policy(
        policy, cfg, saved_metadata(policy_dir).get("task"), str(policy_dir), seed=cfg.seed,
        video_path=out / "rollout.mp4" if cfg.video_episodes > 0 else None,
        video_episodes=cfg.video_episodes,
    )
    result.to_json(out / "eval.json")
    return result, out


def evaluate_policy(
    policy: Policy | ComposedPolicy,
    cfg: DictConfig,
    recorded_task: str | None,
    source: str,
    seed: int,
    video_path: Path | None = None,
    video_episodes: int = 0,
) -> EvalResult:
    """``evaluate`` a loaded policy on the target ``cfg`` names (``env.id``, ``task``, else
    ``recorded_task``) with ``cfg``'s episodes, max_steps and progress. Shared by ``robo
    eval`` and ``robo compose``, so a weight search scores exactly as ``robo eval`` would;
    ``source`` names the policy in errors."""
    make_env, obs_adapter, episode_stats, max_steps = env_for(cfg, policy, recorded_task, source)
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
    )
    warm = policy.warm_start
    result.sampler = {"name": "full"} if warm is None else {"name": "rti", **dataclasses.asdict(warm.config)}
    return result


def make_warm_start(
    cfg: DictConfig, task_name: str | None, policy: Policy | ComposedPolicy, source: str
) -> WarmStart | None:
    """The RTI warm start ``cfg.sampler`` asks for (None: full solves). Discrete action
    dimensions default to the task's; ``rti.calibrate`` sets the start noise from held-out data."""
    if cfg.sampler == "full":
        return None
    if cfg.sampler != "rti":
        raise ValueError(f"sampler must be full or rti, got {cfg.sampler!r}")
    if isinstance(policy, FinetunedPolicy):
        raise ValueError(f"{source}: a fine-tuned agent picks among fresh samples at every call; "
                         "sampler=rti does not apply (use sampler=full)")
    settings = WarmStartConfig(**OmegaConf.to_container(cfg.rti))
    if settings.discrete_dims is None:
        on_task = task_name and not ("env" in cfg and cfg.env.id)
        task_dims = get_task(task_name).discrete_action_dims if on_task else ()
        settings.discrete_dims = list(task_dims)
    if settings.calibrate:
        if not isinstance(policy, Policy):
            raise ValueError(f"{source}: rti.calibrate needs a single policy, not a composition")
        settings.start_noise = held_out_start_noise(policy, saved_metadata(source))
        print(f"rti.start_noise calibrated on held-out episodes: {settings.start_noise:.4f}")
    return WarmStart(settings)


def held_out_start_noise(policy: Policy, metadata: Mapping[str, Any], pairs: int = 256) -> float:
    """``calibrate_start_noise`` on up to ``pairs`` observation windows, ``Ta`` steps apart,
    from the training dataset's validation episodes (both named in the policy's metadata)."""
    if not metadata.get("dataset") or not metadata.get("val_episodes"):
        raise ValueError("rti.calibrate needs a policy trained by `robo train` with validation "
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


def env_for(
    cfg: DictConfig, policy: Policy | ComposedPolicy, recorded_task: str | None, source: str
) -> tuple[Callable[..., Any], Callable[[Any], dict] | None, Callable | None, int | None]:
    """(make_env, obs_adapter, episode_stats, max_steps) for the configured target."""
    env = OmegaConf.to_container(cfg.env)
    if env.get("id"):
        target = make_gym_env_factory(
            env["id"], kwargs=env.get("kwargs") or {}, import_module=env.get("import"),
            obs_map=env.get("obs_map") or {}, keys=sorted(policy.obs_shapes),
        )
        return target.make_env, target.obs_adapter, None, None
    task_name = cfg.task.name if cfg.task else recorded_task
    if not task_name:
        raise ValueError(f"{source}: no recorded task to evaluate on; pass task=<name> or env.id=<gym id>")
    task = get_task(task_name)
    env_kwargs = OmegaConf.to_container(cfg.task.env_kwargs) if cfg.task else {}
    return partial(task.env, **env_kwargs), None, task.episode_stats, None


def _default_out(policy_dir: Path) -> Path:
    """Reports go to the run directory when the policy is a run's ``checkpoint/``."""
    return policy_dir.parent if policy_dir.name == "checkpoint" else policy_dir
