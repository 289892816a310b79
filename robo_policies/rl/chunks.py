"""How RL sees a policy: decisions over action chunks, with flat normalised inputs.

A ``Policy`` acts once every Ta steps and executes Ta actions open-loop, so fine-tuning
treats each model call as one decision of an MDP over chunks (Q-chunking): the critic scores
``Q(s, a_t..a_{t+Ta-1})`` from the policy's observation window, the reward of a decision is the
discounted sum of the Ta step rewards, and the bootstrap discount is gamma^k for the k steps
the chunk really ran. The chunk is in the policy's normalised [-1, 1] action space, flattened
to Ta * A numbers.

The critic and the Gaussian learners read the window as one flat vector (``features``): a
low-dimensional window normalised with the policy's own normaliser; with cameras, the
conditioning vector of the base policy's observation encoder as it was when fine-tuning
began, frozen (``ChunkView.encoder``). Frozen rather than shared or separate, because:

- no critic gradient reaches the policy's vision: TD errors of a young critic are large and
  noisy, and through a shared encoder they would wreck the features the policy acts with;
- the policy's own updates (EXPO's imitation, PA-RL's distillation, which do train its
  encoder) do not move the critic's inputs under it;
- the features never change, so each transition's are computed once when it is stored
  (``features``, ``next_features``) and no image goes through a CNN in a critic update: one
  update of batch 128 (two cameras, To = 2, 2-core CPU) took about 20 ms, against 0.35 s at
  32x32 and 3 s at 84x84 running the policy's CNN at s and s' without gradients, and 0.7 s
  and 4 s training a critic CNN of the same size by TD (DrQ, RLPD from pixels).

The price: the critic cannot learn to see what imitation did not teach the encoder (README,
fine-tuning from pixels).

A transition keeps what both sides need: the raw observation windows at the decision and the
next one (``obs.<key>``, ``next_obs.<key>``; for cameras the numbers of their frames,
``obs_frames`` and ``next_obs_frames``: the replay stores each frame once and gathers the
windows back for a batch), the critic's ``features`` at both, the executed chunk (``chunk``),
the policy's training window of Tp actions around it (``window``, with ``window_is_pad``, for
the head's own loss), ``reward``, ``discount`` and ``terminated``; methods whose TD target
picks among policy samples at the next state also keep ``next_samples`` there, and PA-RL,
which distils optimised policy samples, keeps ``samples`` (whole windows) at the state itself
(see ``FinetuneAgent.derive``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import numpy as np
import torch

from robo_policies.policy import Policy, executed_slice
from robo_policies.rl.replay import FRAME_WINDOWS


class ChunkView:
    """A policy's observation windows and action chunks as flat vectors for the critic."""

    def __init__(self, policy: Policy) -> None:
        config = policy.config
        self.policy = policy
        self.n_obs_steps, self.horizon, self.n_action_steps = (
            config.n_obs_steps, config.horizon, config.n_action_steps)
        self.executed_slice = executed_slice(config)
        """Where the executed chunk lies in the policy's window of Tp actions (``policy.py``)."""
        self.obs_shapes = dict(policy.obs_shapes)
        self.image_keys = list(policy.image_keys)
        self.low_dim_keys = sorted(key for key in self.obs_shapes if key not in self.image_keys)
        self.encoder = copy.deepcopy(policy.encoder).requires_grad_(False).eval() if self.image_keys else None
        """The critic's view of the cameras: the policy's encoder as it is now, frozen (see the
        module docstring); the agent keeps it in evaluation mode (the centre crop)."""
        self.obs_dim = self.encoder.out_dim if self.encoder else config.n_obs_steps * sum(
            math.prod(self.obs_shapes[key]) for key in self.low_dim_keys)
        self.action_dim = config.n_action_steps * policy.action_dim

    # -- tensors -------------------------------------------------------------------------

    def features(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Observation windows {key: (B, To, ...)} -> the critic's flat vectors (B, obs_dim):
        the normalised low-dimensional windows, or with cameras the frozen encoder's
        conditioning vector (which holds them too)."""
        normalizer = self.policy.normalizer
        low_dim = {key: normalizer.normalize(key, obs[key].float()).flatten(start_dim=2)
                   for key in self.low_dim_keys}
        if self.encoder is None:
            return torch.cat([low_dim[key].flatten(start_dim=1) for key in self.low_dim_keys], dim=-1)
        with torch.no_grad():
            return self.encoder({**low_dim, **{key: obs[key] for key in self.image_keys}})

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
        """Transitions -> what the critic trains on: flat ``obs``, ``action``, ``next_obs``
        (the features stored with each transition)."""
        return {
            "obs": rows["features"], "next_obs": rows["next_features"],
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
        """Field shapes of one transition (for ``replay.TransitionBuffer``, with
        ``frame_shapes`` for the cameras); with ``next_samples`` > 0 also that many cached
        policy chunks at the next state, with ``samples`` > 0 that many cached policy windows
        (flat) at the state."""
        action_dim = self.policy.action_dim
        shapes: dict[str, tuple[int, ...]] = {}
        for key in self.low_dim_keys:
            shapes[f"obs.{key}"] = shapes[f"next_obs.{key}"] = (self.n_obs_steps, *self.obs_shapes[key])
        if self.image_keys:
            shapes.update(dict.fromkeys(FRAME_WINDOWS.values(), (self.n_obs_steps,)))
        shapes.update({"features": (self.obs_dim,), "next_features": (self.obs_dim,),
                       "chunk": (self.n_action_steps, action_dim), "window": (self.horizon, action_dim),
                       "window_is_pad": (self.horizon,), "reward": (), "discount": (), "terminated": (),
                       "mc_return": ()})
        if next_samples:
            shapes["next_samples"] = (next_samples, self.action_dim)
        if samples:
            shapes["samples"] = (samples, self.horizon * action_dim)
        return shapes

    @property
    def frame_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each camera's frame shape (H, W, C)."""
        return {key: self.obs_shapes[key] for key in self.image_keys}

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
                the state after the last action); cameras are not copied into the windows,
                whose ``obs_frames`` and ``next_obs_frames`` index these rows instead.
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
        obs_rows = np.clip(anchors[:, None] + obs_offsets, 0, n_rows - 1)
        next_obs_rows = np.clip((anchors + taken)[:, None] + obs_offsets, 0, n_rows - 1)
        out: dict[str, np.ndarray] = {}
        for key in self.low_dim_keys:
            out[f"obs.{key}"], out[f"next_obs.{key}"] = obs[key][obs_rows], obs[key][next_obs_rows]
        if self.image_keys:  # the rows of ``obs`` whose frames each window shows
            out[FRAME_WINDOWS["obs"]], out[FRAME_WINDOWS["next_obs"]] = obs_rows, next_obs_rows
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
