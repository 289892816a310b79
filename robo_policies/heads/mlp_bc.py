"""Deterministic behaviour cloning: regress the action chunk with an MLP (the baseline).

One network evaluation per chunk and a mean-squared-error loss: on multimodal demonstrations
it predicts the average of the modes, which is exactly what the generative heads avoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from robo_policies.heads.base import ActionHead, BenchSampler, Generators
from robo_policies.heads.registry import HeadConfig, register_head
from robo_policies.nets import MLPResNet

if TYPE_CHECKING:
    from robo_policies.policy import PolicyConfig


@dataclass
class MLPBCConfig(HeadConfig):
    """The regression head has no settings of its own: its MLP's size is the policy's
    ``hidden_dim`` and ``n_blocks``."""

    name: str = "mlp_bc"


@register_head("mlp_bc", MLPBCConfig)
class MLPBCHead(ActionHead):
    """MSE regression of the whole chunk from the observation embedding.

    With mini-batched training (``samples_per_obs`` > 1) the copies are identical targets:
    the gradient equals that of one copy, so M only costs compute for this head. It has no
    field or energy to compose and no start point to warm-start from.
    """

    uses_backbone = False
    bench_samplers = (BenchSampler("regression", 1),)

    def __init__(
        self, action_dim: int, horizon: int, cond_dim: int, hidden_dim: int = 256, n_blocks: int = 3
    ) -> None:
        super().__init__(action_dim, horizon, cond_dim)
        self.net = MLPResNet(cond_dim, horizon * action_dim, hidden_dim=hidden_dim, n_blocks=n_blocks)

    @classmethod
    def from_config(
        cls, config: MLPBCConfig, policy: PolicyConfig, action_dim: int, cond_dim: int
    ) -> MLPBCHead:
        return cls(action_dim, policy.horizon, cond_dim, policy.hidden_dim, policy.n_blocks)

    @property
    def nfe(self) -> int:
        return 1

    def loss(
        self, cond: torch.Tensor, actions: torch.Tensor, action_is_pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        return F.mse_loss(self._predict(cond), actions)

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        x_init: torch.Tensor | None = None,
        t_start: float | None = None,
        steps: int | None = None,
        generator: Generators = None,
    ) -> torch.Tensor:
        """The regressed chunk; a regression has no start point or steps, so those are ignored."""
        self.last_nfe = 1
        return self._predict(cond)

    def _predict(self, cond: torch.Tensor) -> torch.Tensor:
        return self.net(cond).view(cond.shape[0], self.horizon, self.action_dim)
