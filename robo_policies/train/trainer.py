"""Train a policy on a dataset (zarr, or a LeRobot directory): one readable loop from data to checkpoint.

Reading order: load the dataset and split episodes -> fit the normaliser on the training
split -> build the policy, its EMA copy, AdamW and the cosine schedule -> (resume) -> loop:
sample windows, step, log, checkpoint -> write the final policy, metrics and a learning curve.
The same code runs as one process or as N data-parallel processes under torchrun.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from robo_policies.data import Normalizer, SequenceSampler, episode_split, window_offsets
from robo_policies.data.datasets import AnyDataset, open_dataset
from robo_policies.data.loader import training_arrays, training_batches
from robo_policies.data.validate import validate_dataset
from robo_policies.envs.registry import get_task, task_names, task_observation_keys
from robo_policies.data.observation_keys import default_observation_keys
from robo_policies.policy import Policy, PolicyConfig, split_observation_keys
from robo_policies.utils.scalars import ScalarLog
from robo_policies.utils.threads import use_threads
from robo_policies.train import distributed
from robo_policies.train.checkpoint import last_checkpoint, load_training_state, save_checkpoint
from robo_policies.train.config import TrainConfig
from robo_policies.utils.errors import ConfigError, DatasetKeyError

PROJECTION_STEPS = 20
"""Steps timed before the projected run time is printed (past the first batches' start-up)."""


@dataclass
class TrainResult:
    """Where a run put things and how it ended."""

    run_dir: Path
    policy_dir: Path
    steps: int
    final_loss: float
    seconds: float
    replica_digests: list[str]
    is_main: bool
    """Whether this process is rank 0 (the one that wrote the outputs)."""


def train(
    dataset: str | Path,
    out: str | Path,
    policy_config: PolicyConfig,
    config: TrainConfig,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    run_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``policy_config`` on ``dataset``; checkpoints and logs go under ``out``."""
    dist = distributed.setup(config.device)
    use_threads(config.threads)
    run_dir = Path(out)
    resume_from = last_checkpoint(run_dir) if resume else None
    if resume and resume_from is None:
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"resume=true, but {run_dir} holds no run to resume (no config.yaml, no "
                              f"checkpoints/); drop resume=true to start one there")
        if dist.is_main:  # started, then stopped before its first checkpoint: nothing to lose
            print(f"resume=true: {run_dir} has no checkpoint yet; training from step 0", file=sys.stderr)
    if dist.is_main and not resume and (run_dir / "checkpoints").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass resume=true or choose another out")
    start_time = time.perf_counter()

    # Data: every window of the training episodes; low-dim arrays in memory, images on disk.
    buffer = open_dataset(dataset)  # a zarr dataset, or a LeRobot directory read in place
    obs_keys = policy_config.obs_keys or default_observation_keys(buffer.keys, buffer.attrs)
    validate_dataset(dataset, keys=[*obs_keys, "action"])  # bad data never becomes a model
    if not policy_config.obs_keys:
        _require_task_observations(buffer)
    arrays = training_arrays(buffer, [*obs_keys, "action"])
    shapes = {k: tuple(buffer[k].shape[1:]) for k in obs_keys}
    low_dim, images = split_observation_keys(obs_keys, shapes, {k: buffer[k].dtype for k in obs_keys})
    train_episodes, val_episodes = episode_split(buffer.n_episodes, config.val_ratio, seed)
    obs_offsets, action_offsets = window_offsets(policy_config.n_obs_steps, policy_config.horizon)
    offsets = {**{k: obs_offsets for k in obs_keys}, "action": action_offsets}
    train_windows = SequenceSampler(arrays, buffer.episode_ends, offsets, train_episodes)
    val_windows = SequenceSampler(arrays, buffer.episode_ends, offsets, val_episodes)
    modes = {**{k: policy_config.obs_norm for k in low_dim}, "action": policy_config.action_norm}
    normalizer = Normalizer.fit(arrays, modes, rows=train_windows.anchor)
    policy_config = dataclasses.replace(policy_config, discrete_action_dims=resolve_discrete_action_dims(policy_config, buffer))
    if dist.is_main:
        print(describe_inputs(buffer, obs_keys, images, policy_config.discrete_action_dims), flush=True)
    metadata = {"task": buffer.attrs.get("task"), "env_kwargs": buffer.attrs.get("env_kwargs") or {},
                "dataset": str(dataset), "seed": seed, "val_episodes": val_episodes.tolist()}

    # Model, EMA copy, optimiser and schedule: identical on every process (same seed).
    torch.manual_seed(seed)
    policy = Policy(policy_config, shapes, images, arrays["action"].shape[1], normalizer).to(dist.device)
    ema = EMAModel(policy.parameters(), decay=config.ema_max_decay, use_ema_warmup=True,
                   power=config.ema_power)
    model = DistributedDataParallel(policy) if dist.world_size > 1 else policy
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, betas=tuple(config.betas),
                                  weight_decay=config.weight_decay)
    schedule = get_scheduler("cosine", optimizer, num_warmup_steps=config.warmup_steps,
                             num_training_steps=config.steps)
    torch.manual_seed(seed * 1000 + dist.rank)  # diffusion noise differs per process
    step = 0
    if resume_from is not None:
        state = load_training_state(resume_from)
        policy.load_state_dict(Policy.load(resume_from, use_ema=False).state_dict())
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["torch_rng"][dist.rank])
        step = int(state["step"])

    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(_yaml(run_config or {}))
        logger = ScalarLog(run_dir, first_step=step + 1)  # drops what a killed run logged past `step`
    per_process_batch = max(1, config.batch_size // dist.world_size)
    bar = tqdm(total=config.steps, initial=step, desc="train", unit="step",
               disable=not (progress and dist.is_main))
    losses: list[float] = []
    first_step, loop_start = step, time.perf_counter()
    batches = training_batches(train_windows, per_process_batch, seed, dist.rank, step, config.steps,
                               _loader_workers(config, images))
    for batch in batches:
        policy.train()
        loss = model({key: value.to(dist.device) for key, value in batch.items()})
        if not torch.isfinite(loss):  # stop before a NaN reaches the weights or a checkpoint
            raise ConfigError(f"{run_dir}: the training loss is {loss.item()} at step {step + 1}; the "
                              f"checkpoints so far are kept (lower train.lr or check the dataset)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        ema.step(policy.parameters())
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step - first_step == PROJECTION_STEPS and dist.is_main and progress:
            tqdm.write(projected_time(time.perf_counter() - loop_start, PROJECTION_STEPS, config.steps - step))

        if step % config.log_every == 0 or step == config.steps:
            bar.set_postfix(loss=f"{np.mean(losses[-config.log_every:]):.4f}", refresh=False)
            if dist.is_main:
                logger.log(step, train_loss=float(np.mean(losses[-config.log_every:])),
                           val_loss=_validation_loss(policy, val_windows, dist.device, seed),
                           lr=schedule.get_last_lr()[0])
        if config.eval_every and step % config.eval_every == 0 and dist.is_main:
            success = _evaluate_in_task(_ema_copy(policy, ema), metadata["task"], metadata["env_kwargs"],
                                        config.eval_episodes)
            logger.log(step, eval_success_rate=success)
        if step % config.checkpoint_every == 0 or step == config.steps:
            rng_states = distributed.gather(dist, torch.get_rng_state())
            if dist.is_main:
                state = {
                    "step": step,
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "ema": ema.state_dict(),
                    "torch_rng": rng_states,
                }
                save_checkpoint(run_dir, step, policy, _ema_copy(policy, ema), state,
                                config.keep_checkpoints, metadata)
            distributed.barrier(dist)
    bar.close()

    digests = distributed.gather(dist, distributed.weights_digest(policy))
    policy_dir = run_dir / "checkpoint"
    if dist.is_main:
        policy.eval()
        policy.save(policy_dir, ema=_ema_copy(policy, ema), metadata=metadata)
        logger.close()
        plot_learning_curve(run_dir / "metrics.jsonl", run_dir / "curve.png")
        summary = {"steps": step, "final_loss": losses[-1] if losses else None,
                   "seconds": time.perf_counter() - start_time, "world_size": dist.world_size,
                   "replica_digests": digests}
        (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    # Finish together, and free the DDP wrapper before its process group: a replica that left
    # early, or a reducer destroyed after the group, leaves gloo's destructor waiting forever.
    distributed.barrier(dist)
    del model
    gc.collect()  # DDP's hooks form reference cycles: collect them while the group still exists
    distributed.teardown(dist)
    return TrainResult(run_dir, policy_dir, step, losses[-1] if losses else float("nan"),
                       time.perf_counter() - start_time, digests, dist.is_main)


def _require_task_observations(buffer: AnyDataset) -> None:
    """A policy that takes every observation of its dataset needs every one its recorded task
    gives, or it would never see what is missing."""
    task = buffer.attrs.get("task")
    lacking = [key for key in task_observation_keys(task, buffer.attrs.get("env_kwargs")) or []
               if key not in buffer]
    if lacking:
        raise DatasetKeyError(
            f"{buffer.location}: missing key 'data/{lacking[0]}' that task {task!r} observes (dataset keys: "
            f"{buffer.keys}); a policy trained on it would never see it. Re-collect the data, or pass "
            f"policy.obs_keys=[...] to train on fewer observations on purpose")


def resolve_discrete_action_dims(config: PolicyConfig, buffer: AnyDataset) -> list[int]:
    """``policy.discrete_action_dims`` when set, else the dataset's attrs ``discrete_action_dims``
    (written by a tool that knows them), else its recorded task's, else none: what the saved
    policy keeps so that ``sampler=rti`` snaps them on any env."""
    if config.discrete_action_dims is not None:
        return [int(dim) for dim in config.discrete_action_dims]
    if buffer.attrs.get("discrete_action_dims") is not None:
        return [int(dim) for dim in buffer.attrs["discrete_action_dims"]]
    task = buffer.attrs.get("task")
    return list(get_task(task).discrete_action_dims) if task in task_names() else []


def projected_time(seconds: float, steps: int, remaining: int) -> str:
    """One line: the time per step measured over the first ``steps`` and what the
    ``remaining`` steps will take at that rate (data loading, logging and checkpoints included)."""
    per_step = seconds / steps
    total = per_step * remaining
    duration = f"{total / 60:.1f} min" if total >= 90 else f"{total:.0f} s"
    return f"{1000 * per_step:.1f} ms per step over the first {steps}: the {remaining} left take about {duration}"


def describe_inputs(buffer: AnyDataset, obs_keys: list[str], image_keys: list[str],
                    discrete_dims: list[int]) -> str:
    """What the policy is built from, printed before training: each observation key with its
    per-step shape and dtype, the dataset keys left out, and the action size."""
    width = max(len(key) for key in obs_keys) if obs_keys else 0
    lines = [f"observations (policy.obs_keys chooses them) from {buffer.location}:"]
    for key in obs_keys:
        shape = str(tuple(buffer[key].shape[1:]))
        kind = "camera image" if key in image_keys else "low-dim"
        lines.append(f"  {key:<{width}}  {shape:<14} {str(buffer[key].dtype):<8} {kind}")
    left_out = [key for key in buffer.keys if key not in obs_keys and key != "action"]
    lines.append(f"not inputs: {', '.join(left_out) or 'none'}")
    lines.append(f"action: {buffer['action'].shape[1]} dims; discrete (policy.discrete_action_dims): "
                 f"{discrete_dims or 'none'}")
    return "\n".join(lines)


def _loader_workers(config: TrainConfig, image_keys: list[str]) -> int:
    """Loader processes: ``train.loader_workers``, or by default one for a dataset with
    cameras (decoding frames overlaps the step) and none for low-dim data (in memory)."""
    if config.loader_workers >= 0:
        return config.loader_workers
    return 1 if image_keys else 0


def _ema_copy(policy: Policy, ema: EMAModel) -> Policy:
    """A copy of ``policy`` holding the EMA weights (buffers such as the normaliser are shared)."""
    averaged = copy.deepcopy(policy)
    ema.copy_to(averaged.parameters())
    return averaged.eval()


def _evaluate_in_task(policy: Policy, task_name: str | None, env_kwargs: dict[str, Any], episodes: int) -> float:
    """Success rate of ``policy`` in the dataset's task (with the env settings it was
    collected with), on the usual unseen seeds."""
    from robo_policies.envs import get_task
    from robo_policies.envs.runner import DEFAULT_EVAL_SEED, evaluate

    if not task_name:
        raise ConfigError("train.eval_every needs a dataset recorded by `robo collect` (attrs task)")
    result = evaluate(policy, partial(get_task(task_name).env, **env_kwargs), episodes=episodes,
                      seed=DEFAULT_EVAL_SEED, progress=False)
    return result.success_rate


@torch.no_grad()
def _validation_loss(policy: Policy, windows: SequenceSampler, device: torch.device, seed: int) -> float | None:
    """Loss on up to 256 held-out windows, with fixed noise so values are comparable."""
    if len(windows) == 0:
        return None
    policy.eval()
    index = np.random.default_rng(seed).permutation(len(windows))[:256]
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    loss = policy.compute_loss(_to_torch(windows.sample(index), device)).item()
    torch.set_rng_state(state)
    return loss


def _to_torch(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: torch.as_tensor(value, device=device) for key, value in batch.items()}


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def plot_learning_curve(metrics_path: Path, png_path: Path) -> None:
    """Training/validation loss (and periodic eval success) against step, from ``metrics.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    figure, axis = plt.subplots(figsize=(6, 4))
    for name in ("train_loss", "val_loss"):
        points = [(row["step"], row[name]) for row in rows if name in row]
        if points:
            axis.plot(*zip(*points), label=name.replace("_", " "))
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.legend(loc="upper left")
    evals = [(row["step"], row["eval_success_rate"]) for row in rows if "eval_success_rate" in row]
    if evals:
        success_axis = axis.twinx()
        success_axis.plot(*zip(*evals), "o-", color="tab:green", label="eval success")
        success_axis.set_ylabel("success rate")
        success_axis.set_ylim(0, 1)
        success_axis.legend(loc="upper right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
