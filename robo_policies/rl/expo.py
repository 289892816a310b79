"""EXPO (Dong et al., 2025): an expressive base policy kept as an imitation learner, plus a
light edit policy and on-the-fly argmax-Q selection.

Per decision the agent samples N chunks from the base policy, edits the first ``n_edit`` of
them with the tanh-Gaussian edit policy, and executes the candidate the target critics score
highest (``edit_policy.on_the_fly_action``); the TD target backs up the same selection at the
next state. The base policy never sees a Q-gradient: it keeps training with its own loss on
the demonstrations (``rl.imitation_data=offline``) or, as the published code does, on the whole
mixed batch, whose online half holds the selected chunks. The edit policy is
trained SAC-style on batch actions against the ensemble's mean Q.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from robo_policies.policy import Policy
from robo_policies.rl.agent import FinetuneAgent
from robo_policies.rl.config import CalQLConfig, GaussianConfig
from robo_policies.rl.edit_policy import EditPolicy, on_the_fly_action
from robo_policies.rl.gaussian import Temperature
from robo_policies.rl.registry import register_algorithm
from robo_policies.utils.errors import ConfigError


@dataclass
class ExpoConfig(CalQLConfig, GaussianConfig):
    """EXPO's settings: the shared ones, its edit policy (a Gaussian), an optional Cal-QL
    offline phase (none by default) and the following."""

    imitation_data: str = "offline"
    """What the base policy keeps imitating: ``offline`` (the demonstrations' rows of each
    batch) or ``mixed`` (the whole batch, online chunks included, as the published code does;
    it also imitates the long failed episodes)."""
    n_edit: int = 8
    """Base samples that also get an edited copy (N + n_edit candidates)."""
    edit_scale: float = 0.05
    """beta, the largest edit per action dimension."""

    def __post_init__(self) -> None:
        if self.imitation_data not in ("offline", "mixed"):
            raise ConfigError(f"rl.imitation_data must be offline or mixed, got {self.imitation_data!r}")


@register_algorithm("expo", ExpoConfig)
class Expo(FinetuneAgent):
    """EXPO over chunk decisions; see the module docstring."""

    backs_up_policy_samples = True
    config: ExpoConfig

    def __init__(self, policy: Policy, config: ExpoConfig) -> None:
        super().__init__(policy, config)
        self.edit_policy = EditPolicy(self.view.obs_dim, self.view.action_dim, config.edit_scale,
                                      tuple(config.actor_hidden))
        self.temperature = Temperature(-config.target_entropy_scale * self.view.action_dim,
                                       config.initial_temperature)
        self.optimizers.update(
            policy=torch.optim.AdamW(policy.parameters(), lr=config.policy_lr),
            edit=torch.optim.Adam(self.edit_policy.parameters(), lr=config.actor_lr),
            temperature=torch.optim.Adam(self.temperature.parameters(), lr=config.temperature_lr),
        )

    def select(self, features: torch.Tensor, samples: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The on-the-fly chunk (B, Ta * A) among policy samples (N, B, Ta * A) and their edits."""
        return on_the_fly_action(features, samples, self.target_critic, self.edit_policy,
                                 min(self.config.n_edit, self.config.n_samples),
                                 self.config.critic_subset, generator)

    @torch.no_grad()
    def choose(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator,
               explore: bool) -> torch.Tensor:
        features = self.view.features(obs)
        samples = self.view.sample_chunks(obs, self.config.n_samples, generator)
        return self.view.window_from_chunk(self.select(features, samples, generator))

    def next_action(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                    generator: torch.Generator) -> torch.Tensor:
        return self.select(batch["next_obs"], self.next_samples(rows, generator), generator)

    def update_actor(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     generator: torch.Generator) -> dict[str, float]:
        if self.config.imitation_data == "offline":
            demos = rows["offline"].bool()
            rows = {key: value[demos] for key, value in rows.items()}
        imitation = self.policy.compute_loss(self.view.policy_batch(rows))
        self.step("policy", imitation)
        edited, log_prob = self.edit_policy(batch["obs"], batch["action"], generator)
        q = self.critic(batch["obs"], edited).mean(dim=0)
        edit_loss = (self.temperature.alpha * log_prob - q).mean()
        self.step("edit", edit_loss)
        self.step("temperature", self.temperature.loss(log_prob))
        return {"policy_loss": imitation.item(), "edit_loss": edit_loss.item(),
                "temperature": self.temperature.alpha.item(), "edit_entropy": -log_prob.mean().item()}
