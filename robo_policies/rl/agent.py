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

import torch
from torch import nn

from robo_policies.policy import Policy
from robo_policies.rl.chunks import ChunkView
from robo_policies.rl.config import RLConfig
from robo_policies.rl.critic import CriticEnsemble, critic_loss, polyak_update


class FinetuneAgent(nn.Module, ABC):
    """A base policy plus whatever a method learns around it.

    Tensors in and out are normalised: observation windows go through the policy's
    normaliser, actions are the policy's [-1, 1] windows (B, Tp, A) or flat chunks.
    """

    uses_critic = True
    """False for imitation only, which trains no critic and only on demonstrations."""

    def __init__(self, policy: Policy, config: RLConfig) -> None:
        super().__init__()
        self.config = config
        self.policy = policy
        self.view = ChunkView(policy)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        if self.uses_critic:
            self.critic = CriticEnsemble(self.view.obs_dim, self.view.action_dim,
                                         config.critic_members, tuple(config.critic_hidden))
            self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
            self.optimizers["critic"] = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)

    @property
    def offline_ratio(self) -> float:
        """Share of each batch taken from the demonstrations."""
        return self.config.offline_ratio if self.uses_critic else 1.0

    @abstractmethod
    def act(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator,
            explore: bool = True, features: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised windows (B, Tp, A) to execute for observation windows {key: (B, To, ...)}
        (``features``: their flat view, when the caller has it already)."""

    def next_action(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                    generator: torch.Generator) -> torch.Tensor:
        """The flat chunk (B, Ta * A) the TD target backs up at ``next_obs``: by default the
        one the method would act with there."""
        next_obs = self.view.obs_windows(rows, "next_obs")
        return self.view.executed(self.act(next_obs, generator, features=batch["next_obs"]))

    @abstractmethod
    def update_actor(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     generator: torch.Generator) -> dict[str, float]:
        """One policy-side update; ``rows`` are the raw transitions, ``batch`` the critic's view."""

    def update_critic(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                      generator: torch.Generator) -> float:
        """One TD step of every critic member, then the Polyak step of the targets."""
        with torch.no_grad():
            next_action = self.next_action(rows, batch, generator)
        loss = critic_loss(self.critic, self.target_critic, dict(batch), next_action,
                           self.config.critic_subset, generator)
        self.step("critic", loss)
        polyak_update(self.target_critic, self.critic, self.config.tau)
        return loss.item()

    def step(self, name: str, loss: torch.Tensor) -> None:
        """A gradient step of optimiser ``name`` on ``loss``."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
