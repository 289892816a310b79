"""Imitation only: the control of the fine-tuning comparison.

It acts with the base policy and keeps training it with its own loss on the demonstrations
alone, at the same update rate as the RL methods, so a curve that rises for EXPO or PA-RL
and stays flat here is the online RL's doing, not extra imitation training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from robo_policies.policy import Policy
from robo_policies.rl.agent import FinetuneAgent
from robo_policies.rl.config import RLConfig
from robo_policies.rl.registry import register_algorithm


@dataclass
class ImitationConfig(RLConfig):
    """Imitation only's settings: the shared ones (it trains no critic, so the critic's go unused)."""


@register_algorithm("imitation", ImitationConfig)
class ImitationOnly(FinetuneAgent):
    """The base policy, trained on demonstrations only; no critic."""

    uses_critic = False

    def __init__(self, policy: Policy, config: ImitationConfig) -> None:
        super().__init__(policy, config)
        self.optimizers["policy"] = torch.optim.AdamW(policy.parameters(), lr=config.policy_lr)

    def choose(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator,
               explore: bool) -> torch.Tensor:
        return self.warm_up_act(obs, generator)

    def update_actor(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     generator: torch.Generator) -> dict[str, float]:
        loss = self.policy.compute_loss(self.view.policy_batch(rows))
        self.step("policy", loss)
        return {"policy_loss": loss.item()}
