"""Record scripted-expert demonstrations into a ReplayBuffer, one atomic episode at a time.

Attempt ``k`` resets the env with seed ``seed + k``, so every saved episode can be replayed
from ``meta/seed``. Each step stores the observation seen before acting (one array per
observation key), the expert's action and the reward.

With ``action_noise`` the env executes a perturbed action (stored as ``executed_action``)
while ``action`` keeps the expert's clean label: the perturbations visit states just off the
expert's path and the labels show how to recover from them (DART-style noise injection),
which is what makes behaviour cloning robust to its own small errors. With ``noisy_labels``
the label is the noisy action itself, as from a shaky teleoperator: imitation then learns the
noise too (the weak starting point of ``scripts/finetune_study.py``). Only successful attempts are saved unless
``keep_failed`` is set; ``meta/success`` records the outcome either way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.envs import Task
from robo_policies.envs.episode import step_episode

RESERVED_KEYS = ("action", "executed_action", "reward")


@dataclass
class CollectResult:
    """What a collection run did."""

    path: str
    saved: int
    attempts: int
    successes: int
    steps: int
    seconds: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempts if self.attempts else 0.0

    def format(self) -> str:
        rows = [
            ("dataset", self.path),
            ("episodes saved", str(self.saved)),
            ("attempts", str(self.attempts)),
            ("expert success", f"{self.success_rate:.1%} ({self.successes}/{self.attempts})"),
            ("steps saved", str(self.steps)),
            ("time", f"{self.seconds:.1f} s"),
        ]
        return "\n".join(f"{name:<16} {value}" for name, value in rows)


def run_episode(
    task: Task, env: Any, seed: int, action_noise: float, rng: np.random.Generator,
    noisy_labels: bool = False,
) -> tuple[dict[str, np.ndarray], bool]:
    """One expert episode from ``env.reset(seed=seed)``: (per-step arrays, success);
    ``noisy_labels``: ``action`` is the executed (noisy) action, not the expert's clean one."""
    space = env.action_space
    half_range = (space.high - space.low) / 2.0
    expert: Any = None
    labels: list[np.ndarray] = []
    executed: list[np.ndarray] = []

    def start() -> None:
        nonlocal expert
        expert = task.make_expert(env, rng)  # reads the freshly reset env

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        clean = np.asarray(expert(obs), dtype=np.float32)
        action = clean
        if action_noise > 0:
            noise = rng.normal(0.0, action_noise, size=clean.shape) * half_range
            action = np.clip(clean + noise, space.low, space.high).astype(np.float32)
        labels.append(action if noisy_labels else clean)
        executed.append(action)
        return action

    episode = step_episode(env, seed, act, keep_observations=True, on_reset=start)
    seen = episode.observations[:-1]  # the observation each action was chosen from
    steps = {key: np.stack([obs[key] for obs in seen]) for key in seen[0]}
    steps["action"] = np.stack(labels)
    steps["reward"] = np.array(episode.rewards, dtype=np.float32)
    if action_noise > 0 and not noisy_labels:  # otherwise identical to `action`
        steps["executed_action"] = np.stack(executed)
    return steps, episode.success


def collect(
    task: Task,
    out: str | Path,
    episodes: int,
    seed: int = 0,
    action_noise: float = 0.0,
    keep_failed: bool = False,
    max_attempts: int = 0,
    overwrite: bool = False,
    resume: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    attrs: dict[str, Any] | None = None,
    noisy_labels: bool = False,
) -> CollectResult:
    """Run the task's expert until ``episodes`` successful demonstrations are saved at ``out``.

    With ``resume`` an existing dataset is extended from where it stopped (after a crash,
    say); without it an existing ``out`` is an error unless ``overwrite`` is set.
    Raises ``RuntimeError`` if ``max_attempts`` (default ``2 * episodes + 10``) run out first.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if action_noise < 0:
        raise ValueError(f"action_noise must be >= 0, got {action_noise}")
    max_attempts = max_attempts or 2 * episodes + 10
    out = Path(out)
    env = task.env(**(env_kwargs or {}))
    clashes = sorted(set(env.observation_space.spaces) & set(RESERVED_KEYS))
    if clashes:
        raise ValueError(f"task '{task.name}' has observation keys {clashes} reserved for actions")

    if resume and out.exists():
        buffer = ReplayBuffer.open(out, mode="a")
        if buffer.attrs.get("task") != task.name:
            raise ValueError(
                f"{out} holds task '{buffer.attrs.get('task')}', not '{task.name}'; "
                "choose another `out` or drop `resume`"
            )
        seeds = buffer.meta("seed") if buffer.n_episodes else np.array([seed - 1])
        first_attempt = int(seeds.max()) - seed + 1
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        run_attrs = {"task": task.name, "env_kwargs": dict(env_kwargs or {}), **(attrs or {})}
        buffer = ReplayBuffer.create(out, overwrite=overwrite, attrs=run_attrs)
        first_attempt = 0

    start_time = time.perf_counter()
    saved_before = buffer.n_episodes
    attempts = successes = 0
    bar = tqdm(
        total=episodes, initial=saved_before, desc=f"collect {task.name}", unit="ep",
        disable=not progress,
    )
    try:
        while buffer.n_episodes < episodes:
            if attempts >= max_attempts:
                raise RuntimeError(
                    f"expert for '{task.name}' saved {buffer.n_episodes}/{episodes} episodes in "
                    f"{attempts} attempts (success {successes}/{attempts}); raise max_attempts"
                )
            attempt_seed = seed + first_attempt + attempts
            rng = np.random.default_rng([seed, first_attempt + attempts])
            data, success = run_episode(task, env, attempt_seed, action_noise, rng, noisy_labels)
            attempts += 1
            successes += success
            if success or keep_failed:
                buffer.add_episode(data, {"seed": attempt_seed, "success": success})
                bar.update(1)
            bar.set_postfix(success=f"{successes}/{attempts}", refresh=False)
    finally:
        bar.close()
        env.close()
    return CollectResult(
        path=str(out),
        saved=buffer.n_episodes - saved_before,
        attempts=attempts,
        successes=successes,
        steps=buffer.n_steps,
        seconds=time.perf_counter() - start_time,
    )
