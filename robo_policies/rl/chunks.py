"""How RL sees a policy: decisions over action chunks, with flat normalised inputs.

A ``Policy`` acts once every Ta steps and executes Ta actions open-loop, so fine-tuning
treats each model call as one decision of an MDP over chunks (Q-chunking): the critic scores
``Q(s, a_t..a_{t+Ta-1})`` from the policy's observation window, the reward of a decision is the
discounted sum of the Ta step rewards, and the bootstrap discount is gamma^k for the k steps
the chunk really ran. The critic and the Gaussian learners read the window flattened and
normalised with the policy's own normaliser; the chunk in the policy's normalised [-1, 1]
action space, flattened to Ta * A numbers.

A transition keeps what both sides need: the raw observation windows at the decision and the
next one (``obs.<key>``, ``next_obs.<key>``), the executed chunk (``chunk``), the policy's
training window of Tp actions around it (``window``, with ``window_is_pad``, for the head's
own loss), ``reward``, ``discount`` and ``terminated``; methods whose TD target picks among
policy samples at the next state also keep ``next_samples`` there, and PA-RL, which distils
optimised policy samples, keeps ``samples`` (whole windows) at the state itself (see
``FinetuneAgent.cache_policy_samples``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from robo_policies.policy import Policy, executed_slice


class ChunkView:
    """A policy's observation windows and action chunks as flat vectors for the critic."""

    def __init__(self, policy: Policy) -> None:
        if policy.image_keys:
            raise ValueError(f"online fine-tuning supports low-dimensional observations only; the "
                             f"policy reads images {policy.image_keys}")
        config = policy.config
        self.policy = policy
        self.n_obs_steps, self.horizon, self.n_action_steps = (
            config.n_obs_steps, config.horizon, config.n_action_steps)
        self.executed_slice = executed_slice(config)
        """Where the executed chunk lies in the policy's window of Tp actions (``policy.py``)."""
        self.obs_shapes = dict(policy.obs_shapes)
        self.obs_dim = config.n_obs_steps * sum(math.prod(s) for s in self.obs_shapes.values())
        self.action_dim = config.n_action_steps * policy.action_dim

    # -- tensors -------------------------------------------------------------------------

    def features(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Observation windows {key: (B, To, ...)} -> normalised flat vectors (B, obs_dim)."""
        normalizer = self.policy.normalizer
        return torch.cat([normalizer.normalize(key, obs[key].float()).flatten(start_dim=1)
                          for key in sorted(self.obs_shapes)], dim=-1)

    def executed(self, windows: torch.Tensor) -> torch.Tensor:
        """The executed chunk of normalised windows (..., Tp, A), flat: (..., Ta * A)."""
        return windows[..., self.executed_slice, :].flatten(start_dim=-2)

    def window_from_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        """A window (B, Tp, A) that executes the flat chunk (B, Ta * A) (other rows zero)."""
        windows = chunk.new_zeros(chunk.shape[0], self.horizon, self.policy.action_dim)
        windows[:, self.executed_slice] = chunk.view(chunk.shape[0], self.n_action_steps, -1)
        return windows

    @torch.no_grad()
    def sample_windows(self, obs: Mapping[str, torch.Tensor], n: int,
                       generator: torch.Generator | None) -> torch.Tensor:
        """``n`` normalised windows per observation from the policy's head: (n, B, Tp, A)."""
        cond = self.policy.encode(obs)
        batch = cond.shape[0]
        samples = self.policy.head.sample(cond.repeat(n, 1), generator=generator)
        return samples.view(n, batch, *samples.shape[1:])

    def sample_chunks(self, obs: Mapping[str, torch.Tensor], n: int,
                      generator: torch.Generator | None) -> torch.Tensor:
        """``n`` normalised executed chunks per observation from the policy: (n, B, Ta * A)."""
        return self.executed(self.sample_windows(obs, n, generator))

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return self.policy.normalizer.normalize("action", action)

    def obs_windows(self, rows: Mapping[str, torch.Tensor], prefix: str = "obs") -> dict[str, torch.Tensor]:
        """The raw observation windows ``<prefix>.<key>`` of transitions, keyed by observation."""
        return {key: rows[f"{prefix}.{key}"] for key in self.obs_shapes}

    def critic_batch(self, rows: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Transitions -> what the critic trains on: flat ``obs``, ``action``, ``next_obs``."""
        return {
            "obs": self.features(self.obs_windows(rows, "obs")),
            "next_obs": self.features(self.obs_windows(rows, "next_obs")),
            "action": self.normalize_action(rows["chunk"]).flatten(start_dim=1),
            "reward": rows["reward"], "discount": rows["discount"], "terminated": rows["terminated"],
        }

    def policy_batch(self, rows: Mapping[str, torch.Tensor], action: torch.Tensor | None = None
                     ) -> dict[str, torch.Tensor]:
        """Transitions -> a batch for the policy's own loss (raw windows); ``action``
        replaces the stored window (PA-RL's optimised labels, raw units)."""
        batch = self.obs_windows(rows, "obs")
        batch["action"] = rows["window"] if action is None else action
        if action is None:
            batch["action_is_pad"] = rows["window_is_pad"].bool()
        return batch

    # -- numpy ---------------------------------------------------------------------------

    def transition_shapes(self, next_samples: int = 0, samples: int = 0) -> dict[str, tuple[int, ...]]:
        """Field shapes of one transition (for ``replay.TransitionBuffer``); with
        ``next_samples`` > 0 also that many cached policy chunks at the next state, with
        ``samples`` > 0 that many cached policy windows (flat) at the state."""
        action_dim = self.policy.action_dim
        shapes: dict[str, tuple[int, ...]] = {}
        for key, shape in self.obs_shapes.items():
            shapes[f"obs.{key}"] = shapes[f"next_obs.{key}"] = (self.n_obs_steps, *shape)
        shapes.update({"chunk": (self.n_action_steps, action_dim), "window": (self.horizon, action_dim),
                       "window_is_pad": (self.horizon,), "reward": (), "discount": (), "terminated": (),
                       "mc_return": ()})
        if next_samples:
            shapes["next_samples"] = (next_samples, self.action_dim)
        if samples:
            shapes["samples"] = (samples, self.horizon * action_dim)
        return shapes

    def episode_transitions(
        self,
        obs: Mapping[str, np.ndarray],
        executed: np.ndarray,
        rewards: np.ndarray,
        terminated: bool,
        anchors: np.ndarray,
        gamma: float,
        labels: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Chunk transitions of one episode, one per decision step in ``anchors``.

        Args:
            obs: per-key observations, T rows (the state before each action) or T + 1 (with
                the state after the last action).
            executed: the T actions sent to the env; ``labels`` (default: the same) are what
                the policy imitates (a demonstration's clean expert labels).
            rewards: the T step rewards.
            terminated: whether the episode ended in a true termination (not a time limit).
            anchors: the steps at which decisions were taken (every step for demonstrations).
        """
        steps = len(executed)
        labels = executed if labels is None else labels
        anchors = np.asarray(anchors, dtype=np.int64)
        n_rows = len(next(iter(obs.values())))
        obs_offsets = np.arange(1 - self.n_obs_steps, 1)  # the observation history up to the decision
        taken = np.minimum(self.n_action_steps, steps - anchors)  # k: steps each chunk ran
        # window row i is the action at step anchor - start + i: the window's executed part
        # (from ``start``) begins at the decision step
        window_rows = anchors[:, None] + np.arange(self.horizon)[None] - self.executed_slice.start
        chunk_rows = anchors[:, None] + np.arange(self.n_action_steps)[None]
        out: dict[str, np.ndarray] = {}
        for key, values in obs.items():
            if key not in self.obs_shapes:
                continue
            out[f"obs.{key}"] = values[np.clip(anchors[:, None] + obs_offsets, 0, n_rows - 1)]
            out[f"next_obs.{key}"] = values[np.clip((anchors + taken)[:, None] + obs_offsets, 0, n_rows - 1)]
        out["window"] = labels[np.clip(window_rows, 0, steps - 1)]
        out["window_is_pad"] = ((window_rows < 0) | (window_rows >= steps)).astype(np.float32)
        out["chunk"] = executed[np.clip(chunk_rows, 0, steps - 1)]
        powers = gamma ** np.arange(self.n_action_steps)
        in_chunk = np.arange(self.n_action_steps)[None] < taken[:, None]
        step_rewards = np.asarray(rewards, np.float64)[np.clip(chunk_rows, 0, steps - 1)]
        out["reward"] = (step_rewards * powers * in_chunk).sum(axis=1).astype(np.float32)
        out["discount"] = (gamma ** taken).astype(np.float32)
        out["terminated"] = (terminated & (anchors + taken == steps)).astype(np.float32)
        out["mc_return"] = discounted_returns(rewards, gamma)[anchors].astype(np.float32)
        return out


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """The Monte-Carlo return from every step of an episode, ``sum_j gamma^(j-t) r_j`` (Cal-QL's
    reference value: what the behaviour that collected the episode achieved from there)."""
    returns = np.zeros(len(rewards))
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns
