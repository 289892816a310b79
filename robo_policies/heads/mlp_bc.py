"""Deterministic behaviour cloning: regress the action chunk with an MLP (the baseline).

One network evaluation per chunk and a mean-squared-error loss: on multimodal demonstrations
it predicts the average of the modes, which is exactly what the generative heads avoid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robo_policies.heads.base import ActionHead
from robo_policies.nets import MLPResNet


class MLPBCHead(ActionHead):
    """MSE regression of the whole chunk from the observation embedding.

    With mini-batched training (``samples_per_obs`` > 1) the copies are identical targets:
    the gradient equals that of one copy, so M only costs compute for this head.
    """

    def __init__(
        self, action_dim: int, horizon: int, cond_dim: int, hidden_dim: int = 256, n_blocks: int = 3
    ) -> None:
        super().__init__(action_dim, horizon, cond_dim)
        self.net = MLPResNet(cond_dim, horizon * action_dim, hidden_dim=hidden_dim, n_blocks=n_blocks)

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
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The regressed chunk; a regression has no start point or steps, so those are ignored."""
        self.last_nfe = 1
        return self._predict(cond)

    def _predict(self, cond: torch.Tensor) -> torch.Tensor:
        return self.net(cond).view(cond.shape[0], self.horizon, self.action_dim)
