"""``robo eval``: load a saved policy, build its evaluation env, run it, write the report.

The env is the policy's training task (read from the saved policy's metadata), another
registered task (``task=...``) or any Gymnasium id (``env.id=...``). The report is
``eval.json`` (success rate, episode length, per-model-call latency and nfe, per-episode
records) and ``rollout.mp4`` of the first episodes.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from robo_policies.envs import get_task
from robo_policies.envs.gym_target import make_gym_env_factory
from robo_policies.envs.runner import EvalResult, evaluate
from robo_policies.policy import Policy, policy_metadata


def resolve_policy_dir(checkpoint: str | Path) -> Path:
    """A saved policy directory, given it or a run directory (whose ``checkpoint/`` is used)."""
    path = Path(checkpoint)
    if (path / "config.yaml").is_file() and (path / "model.safetensors").exists():
        return path
    if (path / "checkpoint" / "config.yaml").is_file():
        return path / "checkpoint"
    raise FileNotFoundError(f"{path}: neither a saved policy nor a run directory with checkpoint/")


def evaluate_checkpoint(cfg: DictConfig) -> tuple[EvalResult, Path]:
    """Run ``robo eval`` with its composed config; returns the result and the output directory."""
    if not cfg.checkpoint:
        raise ValueError("checkpoint=<dir> is required (a saved policy or a run directory)")
    policy_dir = resolve_policy_dir(cfg.checkpoint)
    sampling = {k: v for k, v in OmegaConf.to_container(cfg.sampling).items() if v is not None}
    policy = Policy.load(policy_dir, overrides=sampling)
    make_env, obs_adapter, episode_stats, max_steps = _env_for(cfg, policy, policy_dir)
    out = Path(cfg.out) if cfg.out else _default_out(policy_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = evaluate(
        policy,
        make_env,
        episodes=cfg.episodes,
        seed=cfg.seed,
        video_path=out / "rollout.mp4" if cfg.video_episodes > 0 else None,
        video_episodes=cfg.video_episodes,
        progress=cfg.progress,
        max_steps=cfg.max_steps or max_steps,
        obs_adapter=obs_adapter,
        episode_callback=episode_stats,
    )
    result.to_json(out / "eval.json")
    return result, out


def _env_for(
    cfg: DictConfig, policy: Policy, policy_dir: Path
) -> tuple[Callable[..., Any], Callable[[Any], dict] | None, Callable | None, int | None]:
    """(make_env, obs_adapter, episode_stats, max_steps) for the configured target."""
    env = OmegaConf.to_container(cfg.env)
    if env.get("id"):
        target = make_gym_env_factory(
            env["id"], kwargs=env.get("kwargs") or {}, import_module=env.get("import"),
            obs_map=env.get("obs_map") or {}, keys=sorted(policy.obs_shapes),
        )
        return target.make_env, target.obs_adapter, None, None
    task_name = cfg.task.name if cfg.task else policy_metadata(policy_dir).get("task")
    if not task_name:
        raise ValueError(
            f"{policy_dir}: the policy does not record its task; pass task=<name> or env.id=<gym id>"
        )
    task = get_task(task_name)
    env_kwargs = OmegaConf.to_container(cfg.task.env_kwargs) if cfg.task else {}
    return partial(task.env, **env_kwargs), None, task.episode_stats, None


def _default_out(policy_dir: Path) -> Path:
    """Reports go to the run directory when the policy is a run's ``checkpoint/``."""
    return policy_dir.parent if policy_dir.name == "checkpoint" else policy_dir
