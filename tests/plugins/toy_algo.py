"""A fine-tuning algorithm from outside the project, as a new method would be added: one
module that registers an agent with its own config (``ROBO_PLUGINS=plugins.toy_algo``, then
``robo finetune algo=toy rl.action_offset=...``), plus a preset in ``configs/rl/``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from robo_policies.rl.agent import FinetuneAgent
from robo_policies.rl.config import RLConfig
from robo_policies.rl.registry import register_algorithm


@dataclass
class ToyConfig(RLConfig):
    """The shared settings plus one of the toy's own."""

    action_offset: float = 0.0
    """Added to every action of the base policy's sample (normalised units, clipped to [-1, 1])."""


@register_algorithm("toy", ToyConfig)
class ToyAgent(FinetuneAgent):
    """Acts with the base policy's sample shifted by ``rl.action_offset``; learns nothing."""

    uses_critic = False
    config: ToyConfig

    def choose(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator,
               explore: bool) -> torch.Tensor:
        return (self.warm_up_act(obs, generator) + self.config.action_offset).clamp(-1.0, 1.0)

    def update_actor(self, rows: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                     generator: torch.Generator) -> dict[str, float]:
        return {"action_offset": self.config.action_offset}
