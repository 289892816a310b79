"""What every fine-tuning method shares: the policy seen as a chunk MDP, a critic ensemble
with its targets, and one interface the online loop drives.

A method says three things: how it acts (``act``), which next action its TD target backs up
(``next_action``) and how its policy side learns (``update_actor``); the critic update
around them is the same for all, so it lives here once.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from robo_policies.policy import Policy
from robo_policies.rl.calql import calql_penalty
from robo_policies.rl.chunks import ChunkView
from robo_policies.rl.config import CalQLConfig, RLConfig
from robo_policies.rl.critic import CriticEnsemble, critic_loss, polyak_update


class FinetuneAgent(nn.Module, ABC):
    """A base policy plus whatever a method learns around it.

    Tensors in and out are normalised: observation windows go through the policy's
    normaliser, actions are the policy's [-1, 1] windows (B, Tp, A) or flat chunks.
    """

    uses_critic = True
    """False for imitation only, which trains no critic and only on demonstrations."""
    trains_policy_in_warm_up = True
    """False for PA-RL, whose policy stays frozen while the critic first learns (its offline
    phase): distilling an untrained critic's picks, i.e. the policy's own samples, into it
    drags the policy away from what it imitated."""
    backs_up_policy_samples = False
    """True when the TD target chooses among base-policy samples at the next state: those are
    drawn once per transition and cached (``derive``) instead of running the denoiser inside
    every critic update, and redrawn every ``rl.sample_refresh_every`` steps."""
    distils_policy_samples = False
    """True when the policy update starts from base-policy windows at the state (PA-RL's
    distillation labels): those are cached the same way."""

    def __init__(self, policy: Policy, config: RLConfig) -> None:
        super().__init__()
        self.config = config
        self.policy = policy
        """The base policy that trains (EXPO's imitation, PA-RL's distillation)."""
        self.acting_policy = copy.deepcopy(policy).requires_grad_(False)
        """Its exponential moving average, which samples for acting and for the TD target (as
        in EXPO and PA-RL): fine-tuning a converged policy with a fresh optimiser perturbs the
        raw weights, and acting with them loses much of what the policy could do."""
        self.view = ChunkView(self.acting_policy)
        self.critic_encoder = self.view.encoder
        """The critic's frozen camera encoder (None without cameras), saved with the agent."""
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.warming_up = False
        """While True (the first ``rl.start_steps``), ``act`` uses the base policy's samples."""
        if self.uses_critic:
            self.critic = CriticEnsemble(self.view.obs_dim, self.view.action_dim,
                                         config.critic_members, tuple(config.critic_hidden))
            self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
            self.optimizers["critic"] = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)

    @property
    def offline_critic_steps(self) -> int:
        """Critic updates on the demonstrations before the online phase (Cal-QL); 0 for
        methods whose config has no offline phase."""
        return self.config.offline_critic_steps if isinstance(self.config, CalQLConfig) else 0

    @property
    def offline_ratio(self) -> float:
        """Share of each batch taken from the demonstrations."""
        return self.config.offline_ratio if self.uses_critic else 1.0

    def act(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator,
            explore: bool = True) -> torch.Tensor:
        """Normalised windows (B, Tp, A) to execute for observation windows {key: (B, To, ...)}:
        the base policy's own sample while warming up, else the method's choice."""
        return self.warm_up_act(obs, generator) if self.warming_up else self.choose(obs, generator, explore)

    def warm_up_act(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """How the method acts while warming up: one sample of the base policy."""
        return self.view.sample_windows(obs, 1, generator)[0]

    @abstractmethod
    def choose(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator,
               explore: bool) -> torch.Tensor:
        """The method's windows (B, Tp, A) for observation windows (see ``act``)."""

    def next_action(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                    generator: torch.Generator) -> torch.Tensor:
        """The flat chunk (B, Ta * A) the TD target backs up at ``next_obs`` (methods with a
        critic define it)."""
        raise TypeError(f"{type(self).__name__} trains no critic and backs up no action")

    @abstractmethod
    def update_actor(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     generator: torch.Generator) -> dict[str, float]:
        """One policy-side update; ``rows`` are the raw transitions, ``batch`` the critic's view."""

    @property
    def cached_samples(self) -> int:
        """Policy chunks cached per transition at the next state (0: none)."""
        return self.config.n_samples if self.backs_up_policy_samples else 0

    @property
    def cached_windows(self) -> int:
        """Policy windows cached per transition at the state (0: none)."""
        return self.config.n_samples if self.distils_policy_samples else 0

    @property
    def policy_sample_fields(self) -> list[str]:
        """The cached policy samples a transition keeps: ``next_samples`` (chunks at
        ``next_obs``) and ``samples`` (windows at ``obs``), as the method needs them."""
        return [field for field, n in (("next_samples", self.cached_samples), ("samples", self.cached_windows)) if n]

    @property
    def derived_fields(self) -> list[str]:
        """The fields of a transition the agent computes when it is stored: the critic's
        ``features`` at both states (fixed) and the policy samples (redrawn at each refresh)."""
        return ["features", "next_features", *self.policy_sample_fields]

    @torch.no_grad()
    def derive(self, rows: Mapping[str, np.ndarray], fields: list[str],
               generator: torch.Generator) -> dict[str, np.ndarray]:
        """The ``fields`` (of ``derived_fields``) of transitions ``rows``, one row each."""
        tensors = {key: torch.as_tensor(value) for key, value in rows.items()}
        at = {prefix: self.view.obs_windows(tensors, prefix) for prefix in ("obs", "next_obs")}
        values: dict[str, torch.Tensor] = {}
        if "features" in fields:
            values["features"] = self.view.features(at["obs"])
        if "next_features" in fields:
            values["next_features"] = self.view.features(at["next_obs"])
        if "next_samples" in fields:
            chunks = self.view.sample_chunks(at["next_obs"], self.cached_samples, generator)  # (N, B, Ta * A)
            values["next_samples"] = chunks.transpose(0, 1)
        if "samples" in fields:
            windows = self.view.sample_windows(at["obs"], self.cached_windows, generator)  # (N, B, Tp, A)
            values["samples"] = windows.flatten(2).transpose(0, 1)
        return {field: value.numpy() for field, value in values.items()}

    def next_samples(self, rows: Mapping[str, torch.Tensor], generator: torch.Generator,
                     n: int | None = None) -> torch.Tensor:
        """``n`` (default N) policy chunks at the next states (n, B, Ta * A): the cached ones
        when kept."""
        n = self.config.n_samples if n is None else n
        if "next_samples" in rows:
            return rows["next_samples"].transpose(0, 1)[:n]
        return self.view.sample_chunks(self.view.obs_windows(rows, "next_obs"), n, generator)

    def samples(self, rows: Mapping[str, torch.Tensor], generator: torch.Generator,
                n: int | None = None) -> torch.Tensor:
        """``n`` (default N) policy windows at the states (n, B, Tp, A): the cached ones when kept."""
        n = self.config.n_samples if n is None else n
        if "samples" in rows:
            return rows["samples"].transpose(0, 1).unflatten(-1, (self.view.horizon, -1))[:n]
        return self.view.sample_windows(self.view.obs_windows(rows, "obs"), n, generator)

    def update_critic(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                      generator: torch.Generator, conservative: bool = False) -> float:
        """One TD step of every critic member, then the Polyak step of the targets; with
        ``conservative`` (offline pre-training) plus ``rl.cql_alpha`` times Cal-QL's penalty."""
        with torch.no_grad():
            next_action = self.next_action(rows, batch, generator)
        loss = critic_loss(self.critic, self.target_critic, dict(batch), next_action,
                           self.config.critic_subset, generator)
        if conservative:
            loss = loss + self.config.cql_alpha * self._calql_penalty(rows, batch, generator)
        self.step("critic", loss)
        polyak_update(self.target_critic, self.critic, self.config.tau)
        return loss.item()

    def _calql_penalty(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                       generator: torch.Generator) -> torch.Tensor:
        """Cal-QL's penalty with ``rl.cql_samples`` uniform chunks and as many policy samples
        at s and at s' (all scored at s; the cached ones where the method keeps them)."""
        n = self.config.cql_samples
        with torch.no_grad():
            uniform = torch.rand((n, *batch["action"].shape), generator=generator) * 2.0 - 1.0
            at_s = self.view.executed(self.samples(rows, generator, n))
            at_next = self.next_samples(rows, generator, n)
        return calql_penalty(self.critic, batch["obs"], batch["action"], uniform,
                             torch.cat([at_s, at_next]), rows["mc_return"])

    def train(self, mode: bool = True) -> FinetuneAgent:
        """Only the learners change mode: the acting average and the critic's encoder always
        run as in evaluation (images centre-cropped, no augmentation), so the actions taken,
        the samples cached and the features stored never depend on it."""
        super().train(mode)
        for module in (self.acting_policy, self.critic_encoder):
            if module is not None:
                module.eval()
        return self

    def step(self, name: str, loss: torch.Tensor) -> None:
        """A gradient step of optimiser ``name`` on ``loss`` (the ``policy`` step also moves
        the acting average)."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if name == "policy":
            polyak_update(self.acting_policy, self.policy, self.config.policy_ema)
