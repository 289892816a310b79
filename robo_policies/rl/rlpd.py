"""The RLPD baseline (Ball et al., 2023): SAC with a tanh-Gaussian actor that learns online
from scratch, with the demonstrations mixed 50/50 into every batch and no pre-training.

It shows what the expressive methods buy: same critic, same data, same chunk decisions, but a
unimodal Gaussian actor instead of the imitation-trained base policy. The checkpoint's policy
is used only for its normaliser and observation layout, so every method sees the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from robo_policies.policy import Policy
from robo_policies.rl.agent import FinetuneAgent
from robo_policies.rl.config import GaussianConfig
from robo_policies.rl.gaussian import TanhGaussian, Temperature
from robo_policies.rl.registry import register_algorithm


@dataclass
class RlpdConfig(GaussianConfig):
    """RLPD's settings: the shared ones and its actor's (a Gaussian); no offline phase, it learns from scratch."""


@register_algorithm("rlpd", RlpdConfig)
class Rlpd(FinetuneAgent):
    """SAC over chunk decisions with an ensemble critic and symmetric sampling."""

    def __init__(self, policy: Policy, config: RlpdConfig) -> None:
        super().__init__(policy, config)
        self.actor = TanhGaussian(self.view.obs_dim, self.view.action_dim, tuple(config.actor_hidden))
        self.temperature = Temperature(-config.target_entropy_scale * self.view.action_dim,
                                       config.initial_temperature)
        self.optimizers.update(
            actor=torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr),
            temperature=torch.optim.Adam(self.temperature.parameters(), lr=config.temperature_lr),
        )

    @torch.no_grad()
    def choose(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator,
               explore: bool) -> torch.Tensor:
        features = self.view.features(obs)
        chunk, _ = self.actor(features, generator, deterministic=not explore)
        return self.view.window_from_chunk(chunk)

    def warm_up_act(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """RLPD starts from uniformly random chunks, not from the imitation policy."""
        batch = next(iter(obs.values())).shape[0]
        chunk = torch.rand(batch, self.view.action_dim, generator=generator) * 2 - 1
        return self.view.window_from_chunk(chunk)

    def next_action(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                    generator: torch.Generator) -> torch.Tensor:
        return self.actor(batch["next_obs"], generator)[0]

    def update_actor(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     generator: torch.Generator) -> dict[str, float]:
        chunk, log_prob = self.actor(batch["obs"], generator)
        q = self.critic(batch["obs"], chunk).mean(dim=0)
        actor_loss = (self.temperature.alpha * log_prob - q).mean()
        self.step("actor", actor_loss)
        self.step("temperature", self.temperature.loss(log_prob))
        return {"actor_loss": actor_loss.item(), "temperature": self.temperature.alpha.item(),
                "actor_entropy": -log_prob.mean().item()}
