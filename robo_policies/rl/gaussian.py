"""Tanh-squashed Gaussians and their entropy temperature: SAC's policy family.

Two learners use it: EXPO's edit policy (a Gaussian over edits given a state and an action)
and the RLPD baseline's actor (a Gaussian over actions given a state). Samples are
reparameterised, so a loss can differentiate through the critic into the network, and the
log-probability includes the tanh's change of variables.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_STD_RANGE = (-5.0, 2.0)
"""Bounds on the Gaussian's log standard deviation before the tanh (SAC's usual range)."""


def layer_norm_mlp(in_dim: int, hidden: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """Linear -> LayerNorm -> ReLU blocks; returns the body and its output width."""
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [nn.Linear(width, size), nn.LayerNorm(size), nn.ReLU()]
        width = size
    return nn.Sequential(*layers), width


class TanhGaussian(nn.Module):
    """An MLP that maps an input to a tanh-squashed Gaussian over (-1, 1)^out_dim."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (256, 256, 256)) -> None:
        super().__init__()
        self.body, width = layer_norm_mlp(in_dim, hidden)
        self.mean = nn.Linear(width, out_dim)
        self.log_std = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(sample u in (-1, 1), its log-probability (B,)); ``deterministic``: u = tanh(mean)."""
        features = self.body(x)
        mean = self.mean(features)
        log_std = self.log_std(features).clamp(*LOG_STD_RANGE)
        noise = torch.zeros_like(mean) if deterministic else torch.randn(
            mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        pre_tanh = mean + log_std.exp() * noise
        gaussian = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        # log|du/dx| of tanh, written stably: log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)).
        squash = 2 * (math.log(2) - pre_tanh - nn.functional.softplus(-2 * pre_tanh))
        return torch.tanh(pre_tanh), (gaussian - squash).sum(dim=-1)


class Temperature(nn.Module):
    """SAC's entropy weight alpha, tuned so the policy's entropy tracks ``target_entropy``."""

    def __init__(self, target_entropy: float, initial: float = 1.0) -> None:
        super().__init__()
        if initial <= 0:
            raise ValueError(f"the initial temperature must be > 0, got {initial}")
        self.target_entropy = target_entropy
        self.log_alpha = nn.Parameter(torch.tensor(math.log(initial)))

    @property
    def alpha(self) -> torch.Tensor:
        """The current weight, detached (for the policy's loss)."""
        return self.log_alpha.exp().detach()

    def loss(self, log_prob: torch.Tensor) -> torch.Tensor:
        """alpha * (entropy - target): raises alpha while the entropy is below the target."""
        return self.log_alpha.exp() * (-log_prob.detach() - self.target_entropy).mean()
