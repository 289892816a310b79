"""``robo finetune``: improve a trained policy online in simulation.

One loop drives every method registered by name (``registry``: EXPO, PA-RL, the RLPD
baseline, imitation only and any plugin's), each with its own config (``rl.*``). Per episode:

1. act chunk by chunk with the method's selection rule (exploring), recording every step;
2. cut the episode into chunk transitions (``chunks.ChunkView``) for the online replay, with
   what the agent derives for each once (the critic's features, cached policy samples);
3. for each decision taken, ``rl.utd`` critic updates and ``rl.actor_updates`` policy-side
   updates, each on a batch mixing demonstrations and online data (``replay.mixed_batch``).

Every ``eval_every`` env steps the current policy is evaluated on fixed seeds (the same for
every method and seed), giving a point of ``curve.json``, TensorBoard scalars and a
checkpoint that ``robo eval`` loads and that ``resume=true`` continues from after a kill,
exactly as if the run had never stopped (it holds every state the loop changes).
Per-episode losses go to ``metrics.jsonl`` and TensorBoard; a resumed run drops the rows
that the killed one logged after its checkpoint, so each step is logged once. The run ends
with ``curve.png``, ``summary.json`` (env steps/s, gradient updates/s, env steps to 80%
success) and a rollout video beside the checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm, trange

from robo_policies.utils.atomic import atomic_output, atomic_write_text, restore_interrupted
from robo_policies.utils.checksums import verify_checksum, write_checksum
from robo_policies.data import ReplayBuffer
from robo_policies.envs.runner import evaluate
from robo_policies.envs.targets import Reader, check_readers, env_for
from robo_policies.policy import history_batch, policy_metadata, resolve_policy_dir
from robo_policies.rl.agent import FinetuneAgent
from robo_policies.rl.chunks import ChunkView
from robo_policies.rl.registry import build_agent, get_algorithm, load_builtin_algorithms
from robo_policies.rl.replay import TransitionBuffer, mixed_batch
from robo_policies.rl.saved import FinetunedPolicy, load_base_policy, save_finetuned
from robo_policies.utils.errors import CheckpointError, ConfigError
from robo_policies.utils.scalars import ScalarLog
from robo_policies.utils.threads import use_threads

load_builtin_algorithms()  # ``algo=<name>`` options of the config ``robo finetune`` composes

STATE_FILE = "training_state.pt"
REPLAY_FILE = "replay.npz"
STATE_FORMAT = 3
"""Version of the resume state: 2 saved the demonstrations' replay too (its cached policy
samples), 3 the critic's features with every transition and camera frames once (``replay``);
a checkpoint in another format cannot resume exactly."""
SUCCESS_LEVEL = 0.8
"""The summary reports the env steps each run needed to reach this success rate."""


@dataclass
class Progress:
    """Counters that a resumed run continues from."""

    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    next_eval: int = 0
    next_refresh: int = 0
    env_seconds: float = 0.0
    update_seconds: float = 0.0


def demonstration_episodes(view: ChunkView, dataset: str | Path, gamma: float
                           ) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Each demonstration as (transitions, camera frames): every step a chunk decision (the
    expert could have chosen there), with the sparse success reward on the last step. One
    episode at a time, so a dataset's frames are never all in memory twice.

    The critic sees what was executed (``executed_action`` when collection added noise);
    the policy imitates the clean labels (``action``).
    """
    buffer = ReplayBuffer.open(dataset)
    success = buffer.meta("success") if "success" in buffer.meta_keys else np.ones(buffer.n_episodes, bool)
    executed_key = "executed_action" if "executed_action" in buffer else "action"
    for index in range(buffer.n_episodes):
        episode = buffer.episode(index, keys=[*view.obs_shapes, "action", executed_key])
        steps = len(episode["action"])
        rewards = np.zeros(steps)
        rewards[-1] = float(success[index])
        transitions = view.episode_transitions(episode, episode[executed_key], rewards, bool(success[index]),
                                               np.arange(steps), gamma, labels=episode["action"])
        yield transitions, {key: episode[key] for key in view.image_keys}


def finetune(cfg: DictConfig) -> dict[str, Any]:
    """Run ``robo finetune`` with its composed config; returns the summary."""
    if not cfg.checkpoint:
        raise ConfigError("checkpoint=<dir> is required (the trained policy to fine-tune)")
    if cfg.sampler != "full":
        raise ConfigError("robo finetune acts with the method's own selection; sampler must be full")
    use_threads(cfg.threads)
    out = Path(cfg.out)
    rl = get_algorithm(cfg.algo).make_config(OmegaConf.to_container(cfg.rl))
    state_dir = out / "checkpoint"
    restore_interrupted(state_dir)  # killed while replacing it: the previous one is complete
    resuming = cfg.resume and (state_dir / STATE_FILE).is_file()
    if out.exists() and any(out.iterdir()) and not cfg.resume:
        raise FileExistsError(f"{out} already holds a run; pass resume=true to continue it or choose another out=")
    if cfg.resume and not resuming:
        if not (out / "config.yaml").is_file():
            raise ConfigError(f"resume=true, but {out} holds no run to resume (no config.yaml, no "
                              f"checkpoint/); drop resume=true to start one there")
        print(f"resume=true: {out} has no checkpoint yet; fine-tuning from the start", file=sys.stderr)
    source = resolve_policy_dir(cfg.checkpoint)
    metadata = {**policy_metadata(source), "finetuned_from": str(source), "algo": cfg.algo}
    policy = load_base_policy(source, rl)
    target = _rollout_target(cfg, metadata)
    check_readers(target, [Reader(str(source), policy.obs_shapes, metadata.get("task"))], metadata.get("task"),
                  str(source))  # before any work: the env gives every key the policy reads, as it learned it
    torch.manual_seed(cfg.seed)
    agent = build_agent(cfg.algo, policy, rl)
    view = agent.view
    dataset = cfg.dataset or metadata.get("dataset")
    if not dataset:
        raise ConfigError(f"{source}: no recorded training dataset; pass dataset=<demonstrations.zarr>")
    shapes = view.transition_shapes(agent.cached_samples, agent.cached_windows)
    offline = TransitionBuffer(shapes, ReplayBuffer.open(dataset).n_steps, view.frame_shapes)  # a decision a step
    online = TransitionBuffer(shapes, cfg.env_steps // view.n_action_steps + 1000, view.frame_shapes)

    make_env, obs_adapter, _, env_limit = env_for(target, policy.obs_shapes, metadata.get("task"), str(source))
    max_steps = cfg.max_steps or env_limit
    env = make_env()
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    replays = {"offline": offline, "online": online}
    if resuming:
        progress, curve = _load(state_dir, agent, replays, rng, generator)
        print(f"resuming {out} at {progress.env_steps} env steps")
    else:
        progress, curve = Progress(next_refresh=rl.sample_refresh_every), []
        for transitions, frames in demonstration_episodes(view, dataset, rl.gamma):
            _store(offline, transitions, frames, agent, generator)  # with the first policy samples
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg))
    # drops the rows a killed run logged past its checkpoint (a new run logs from step 0)
    logger = ScalarLog(out, step_key="env_steps", first_step=progress.env_steps + 1 if resuming else 0)
    if agent.offline_critic_steps and not resuming:
        _pretrain_critic(agent, offline, rng, generator, cfg.progress, logger)

    def evaluate_now() -> float:
        agent.eval()
        result = evaluate(FinetunedPolicy(agent), make_env, episodes=cfg.episodes, seed=cfg.eval_seed,
                          progress=False, max_steps=max_steps, obs_adapter=obs_adapter,
                          num_envs=cfg.num_envs)
        agent.train()
        point = {"env_steps": progress.env_steps, "success_rate": result.success_rate,
                 "updates": progress.updates, "episodes": progress.episodes}
        curve.append(point)
        logger.log(progress.env_steps, eval_success_rate=result.success_rate)
        return result.success_rate

    bar = tqdm(total=cfg.env_steps, initial=progress.env_steps, desc=f"finetune {cfg.algo}",
               disable=not cfg.progress, unit="step")
    while True:
        agent.warming_up = progress.env_steps < rl.start_steps
        if progress.env_steps >= progress.next_eval:
            success = evaluate_now()
            bar.set_postfix(success=f"{success:.0%}")
            progress.next_eval += cfg.eval_every
            _save(state_dir, cfg.algo, agent, metadata, replays, rng, generator, progress, curve)
        if progress.env_steps >= cfg.env_steps:
            break
        if agent.policy_sample_fields and progress.env_steps >= progress.next_refresh:
            for buffer in (offline, online):  # redraw with the current policy
                _derive(buffer, np.arange(len(buffer)), agent.policy_sample_fields, agent, generator)
            progress.next_refresh += rl.sample_refresh_every
        start = time.perf_counter()
        episode = _run_episode(env, agent, view, generator, int(rng.integers(2**31)), obs_adapter, max_steps)
        progress.env_seconds += time.perf_counter() - start
        transitions = view.episode_transitions(episode["obs"], episode["actions"], episode["rewards"],
                                               episode["terminated"], episode["anchors"], rl.gamma)
        _store(online, transitions, {key: episode["obs"][key] for key in view.image_keys}, agent, generator)
        progress.env_steps += len(episode["actions"])
        progress.episodes += 1
        bar.update(len(episode["actions"]))
        start = time.perf_counter()
        metrics = _update(agent, offline, online, len(episode["anchors"]), rng, generator)
        progress.update_seconds += time.perf_counter() - start
        progress.updates += metrics.pop("updates")
        logger.log(progress.env_steps, episode_success=float(episode["success"]), **metrics)
    bar.close()
    env.close()
    logger.close()
    summary = _summarise(cfg, progress, curve)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "curve.json", json.dumps(curve, indent=2) + "\n")
    plot_curves({cfg.algo: curve}, out / "curve.png")
    if cfg.video_episodes > 0:
        agent.eval()
        evaluate(FinetunedPolicy(agent), make_env, episodes=cfg.video_episodes, seed=cfg.eval_seed,
                 progress=False, video_path=out / "rollout.mp4", video_episodes=cfg.video_episodes,
                 max_steps=max_steps, obs_adapter=obs_adapter)
    return summary


def _rollout_target(cfg: DictConfig, metadata: dict[str, Any]) -> DictConfig:
    """Where episodes run (``env`` and ``task``): what ``cfg`` names, else the policy's task with
    the env settings its data was collected with (a camera's ``image_size``), as ``robo eval``
    does."""
    if cfg.task or not metadata.get("env_kwargs"):
        return cfg
    return OmegaConf.create({"env": cfg.env, "task": {"name": metadata["task"], "env_kwargs": metadata["env_kwargs"]}})


def _pretrain_critic(agent: FinetuneAgent, offline: TransitionBuffer, rng: np.random.Generator,
                     generator: torch.Generator, progress: bool, logger: ScalarLog) -> None:
    """Cal-QL on the demonstrations (``rl.offline_critic_steps``), then a fresh critic optimiser
    for the online phase (as PA-RL does at the switch)."""
    config = agent.config
    losses = []
    for _ in trange(agent.offline_critic_steps, desc="Cal-QL critic", disable=not progress):
        rows = {key: torch.as_tensor(value) for key, value in offline.sample(config.batch_size, rng).items()}
        losses.append(agent.update_critic(rows, agent.view.critic_batch(rows), generator, conservative=True))
    logger.log(0, offline_critic_loss=float(np.mean(losses[-100:])))
    agent.optimizers["critic"] = torch.optim.Adam(agent.critic.parameters(), lr=config.critic_lr)


def _run_episode(env: Any, agent: FinetuneAgent, view: ChunkView, generator: torch.Generator,
                 seed: int, obs_adapter: Any, max_steps: int | None) -> dict[str, Any]:
    """One exploring episode; decisions every Ta steps (``anchors``)."""
    raw, _ = env.reset(seed=seed)
    keys = list(view.obs_shapes)
    frames, actions, rewards, anchors = [obs_adapter(raw) if obs_adapter else raw], [], [], []
    terminated = success = False
    while True:
        window = history_batch(frames[-view.n_obs_steps:], keys, view.n_obs_steps)
        anchors.append(len(actions))
        with torch.no_grad():
            chunk = agent.policy.normalizer.unnormalize("action", agent.act(window, generator))[0]
        for action in chunk[view.executed_slice].numpy():
            raw, reward, terminated, truncated, info = env.step(action)
            frames.append(obs_adapter(raw) if obs_adapter else raw)
            actions.append(action)
            rewards.append(float(reward))
            success = success or bool(info.get("is_success", False))
            if terminated or truncated or (max_steps and len(actions) >= max_steps):
                stacked = {key: np.stack([frame[key] for frame in frames]) for key in keys}
                return {"obs": stacked, "actions": np.stack(actions), "rewards": np.array(rewards),
                        "terminated": bool(terminated), "anchors": np.array(anchors), "success": success}


def _store(buffer: TransitionBuffer, transitions: dict[str, np.ndarray], frames: dict[str, np.ndarray],
           agent: FinetuneAgent, generator: torch.Generator) -> None:
    """Add an episode's transitions (and the camera frames they show), then what the agent
    derives for them: the critic's features and the policy samples it caches."""
    count = len(transitions["reward"])
    for field in agent.derived_fields:
        transitions[field] = np.zeros((count, *buffer.data[field].shape[1:]), np.float32)
    _derive(buffer, buffer.extend(transitions, frames), agent.derived_fields, agent, generator)


def _derive(buffer: TransitionBuffer, slots: np.ndarray, fields: list[str], agent: FinetuneAgent,
            generator: torch.Generator, block: int = 512) -> None:
    """Compute ``fields`` of the transitions in ``slots`` in place, ``block`` at a time."""
    for start in range(0, len(slots), block):
        part = slots[start:start + block]
        for field, value in agent.derive(buffer.rows(part), fields, generator).items():
            buffer.data[field][part] = value


def _update(agent: FinetuneAgent, offline: TransitionBuffer, online: TransitionBuffer, decisions: int,
            rng: np.random.Generator, generator: torch.Generator) -> dict[str, float]:
    """The updates owed for ``decisions`` new decisions; returns mean metrics and the count."""
    config, view = agent.config, agent.view
    sums: dict[str, float] = {}
    updates = 0

    def batch() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        rows = mixed_batch(offline, online, config.batch_size, agent.offline_ratio, rng)
        rows = {key: torch.as_tensor(value) for key, value in rows.items()}
        return rows, view.critic_batch(rows)

    for _ in range(decisions):
        if agent.uses_critic:
            for _ in range(config.utd):
                rows, critic_batch = batch()
                sums["critic_loss"] = sums.get("critic_loss", 0.0) + agent.update_critic(rows, critic_batch, generator)
                updates += 1
        if agent.warming_up and not agent.trains_policy_in_warm_up:
            continue
        for _ in range(config.actor_updates):
            rows, critic_batch = batch()
            for name, value in agent.update_actor(rows, critic_batch, generator).items():
                sums[name] = sums.get(name, 0.0) + value
            updates += 1
    counts = {"critic_loss": decisions * config.utd}
    metrics = {name: total / counts.get(name, decisions * config.actor_updates) for name, total in sums.items()}
    return {**metrics, "updates": updates}


def _save(directory: Path, algo: str, agent: FinetuneAgent, metadata: dict[str, Any],
          replays: dict[str, TransitionBuffer], rng: np.random.Generator, generator: torch.Generator,
          progress: Progress, curve: list[dict[str, Any]]) -> None:
    """The fine-tuned policy plus every state the loop changes, written atomically, so that
    ``_load`` continues the run exactly as if it had never stopped: the agent's tensors and
    optimisers, both replays (the demonstrations' too: it holds the policy samples of the
    last refresh), the loop's random generators and the global torch one (the heads'
    training noise), the counters and the curve."""
    with atomic_output(directory, overwrite=True) as tmp:
        tmp.mkdir(parents=True)
        save_finetuned(tmp, algo, agent, metadata)
        np.savez(tmp / REPLAY_FILE, **{f"{name}/{key}": value for name, replay in replays.items()
                                       for key, value in replay.state_dict().items()})
        torch.save({"format": STATE_FORMAT, "agent": agent.state_dict(),
                    "optimizers": {name: opt.state_dict() for name, opt in agent.optimizers.items()},
                    "numpy_rng": rng.bit_generator.state, "torch_rng": generator.get_state(),
                    "global_torch_rng": torch.get_rng_state(),
                    "progress": vars(progress), "curve": curve}, tmp / STATE_FILE)
        for name in (STATE_FILE, REPLAY_FILE):
            write_checksum(tmp / name)


def _load(directory: Path, agent: FinetuneAgent, replays: dict[str, TransitionBuffer],
          rng: np.random.Generator, generator: torch.Generator) -> tuple[Progress, list[dict[str, Any]]]:
    """Restore in place what ``_save`` wrote; returns the counters and the curve so far."""
    for name in (STATE_FILE, REPLAY_FILE):
        verify_checksum(directory / name)
    state = torch.load(directory / STATE_FILE, weights_only=True)
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{directory}: saved by an older robo finetune, which did not keep all that "
                              f"an exact resume needs; start the run again in another out=")
    agent.load_state_dict(state["agent"])
    agent.train()  # as after the evaluation that preceded the checkpoint
    for name, optimizer in agent.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    with np.load(directory / REPLAY_FILE) as saved:
        for name, replay in replays.items():
            replay.load_state_dict({key.removeprefix(f"{name}/"): saved[key] for key in saved.files
                                    if key.startswith(f"{name}/")})
    rng.bit_generator.state = state["numpy_rng"]
    generator.set_state(state["torch_rng"])
    torch.set_rng_state(state["global_torch_rng"])
    return Progress(**state["progress"]), state["curve"]


def steps_to_success(curve: list[dict[str, Any]], level: float = SUCCESS_LEVEL) -> int | None:
    """The first evaluated env step count with success >= ``level`` (None: never reached)."""
    return next((point["env_steps"] for point in curve if point["success_rate"] >= level), None)


def _summarise(cfg: DictConfig, progress: Progress, curve: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "algo": cfg.algo, "seed": cfg.seed, "env_steps": progress.env_steps, "episodes": progress.episodes,
        "gradient_updates": progress.updates,
        "start_success": curve[0]["success_rate"], "final_success": curve[-1]["success_rate"],
        f"env_steps_to_{round(SUCCESS_LEVEL * 100)}": steps_to_success(curve),
        "env_steps_per_s": round(progress.env_steps / max(progress.env_seconds, 1e-9), 1),
        "updates_per_s": round(progress.updates / max(progress.update_seconds, 1e-9), 1),
        "env_seconds": round(progress.env_seconds, 1), "update_seconds": round(progress.update_seconds, 1),
    }


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Success rate against env steps, one line per method (or run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        axis.plot([p["env_steps"] for p in points], [p["success_rate"] for p in points], "o-", label=name)
    axis.set_xlabel("env steps")
    axis.set_ylabel("success rate")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
