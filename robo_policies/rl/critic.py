"""An ensemble of Q-functions, evaluated in one batched pass, with random-subset targets.

EXPO, PA-RL and RLPD all use E LayerNorm MLP critics Q_i(s, a) (E = 10 in the papers) and back
up the minimum over a random subset of K target critics (K = 2): the min fights
overestimation, the random subset keeps it from being as pessimistic as the min of all ten.
The members are one module whose linear layers hold a weight per member (E, in, out), so the
whole ensemble is a few batched matrix products instead of E small networks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robo_policies.rl.td import td_target


class EnsembleLinear(nn.Module):
    """E independent linear layers applied to E inputs at once: (E, B, in) -> (E, B, out)."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation, per member
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: (E', B, in), or (B, in) shared by every member (one wide matrix product
        instead of E copies of the input); ``members``: indices of the E' members to apply."""
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        if x.dim() == 2:
            count, width, out = weight.shape
            wide = x @ weight.transpose(0, 1).reshape(width, count * out)  # (B, E' * out)
            return wide.view(x.shape[0], count, out).transpose(0, 1) + bias
        return torch.baddbmm(bias, x, weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a scale and shift per member: (E, B, width) -> (E, B, width)."""

    def __init__(self, members: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, width))
        self.bias = nn.Parameter(torch.zeros(members, 1, width))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return torch.nn.functional.layer_norm(x, x.shape[-1:]) * weight + bias


class CriticEnsemble(nn.Module):
    """``members`` Q-networks Q_i(obs, action) -> (E, B): MLPs with LayerNorm and ReLU.

    Args:
        obs_dim: size of the flat observation.
        action_dim: size of the flat action (a whole chunk for chunk critics).
        members: E, the ensemble size.
        hidden: widths of the hidden layers.
    """

    def __init__(self, obs_dim: int, action_dim: int, members: int = 10,
                 hidden: tuple[int, ...] = (256, 256, 256)) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"a critic ensemble needs at least one member, got {members}")
        self.members = members
        layers: list[nn.Module] = []
        width = obs_dim + action_dim
        for size in hidden:
            layers += [EnsembleLinear(members, width, size), EnsembleLayerNorm(members, size), nn.ReLU()]
            width = size
        layers.append(EnsembleLinear(members, width, 1))
        self.net = nn.ModuleList(layers)

    def forward(self, obs: torch.Tensor, action: torch.Tensor,
                members: torch.Tensor | None = None) -> torch.Tensor:
        """Q-values (E, B) for observations (B, obs_dim) and actions (B, action_dim); with
        ``members`` (indices), only those members' values (len(members), B)."""
        x = torch.cat([obs, action], dim=-1)  # shared by every member until the first layer
        for layer in self.net:
            x = layer(x) if isinstance(layer, nn.ReLU) else layer(x, members)
        return x.squeeze(-1)

    def subset_min(self, obs: torch.Tensor, action: torch.Tensor, size: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """The minimum over ``size`` members drawn at random (one draw per call): (B,)."""
        if not 1 <= size <= self.members:
            raise ValueError(f"subset size must be in [1, {self.members}], got {size}")
        chosen = torch.randperm(self.members, generator=generator)[:size]
        return self(obs, action, chosen.to(obs.device)).min(dim=0).values


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source``, parameter by parameter."""
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    for target_param, param in zip(target.parameters(), source.parameters(), strict=True):
        target_param.lerp_(param, tau)


def critic_loss(
    critic: CriticEnsemble,
    target_critic: CriticEnsemble,
    batch: dict[str, torch.Tensor],
    next_action: torch.Tensor,
    subset_size: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared TD error of every member against one shared target.

    The target ``r + discount * (1 - terminated) * min_{K} Qbar(s', a')`` uses the target
    critics' random-subset minimum at ``next_action`` (EXPO: the on-the-fly argmax at s';
    PA-RL: its optimised action), with no gradient. ``batch`` holds flat ``obs``, ``action``
    and ``next_obs`` and per-row ``reward``, ``discount`` and ``terminated``.
    """
    with torch.no_grad():
        next_q = target_critic.subset_min(batch["next_obs"], next_action, subset_size, generator)
        target = td_target(batch["reward"], batch["terminated"], next_q, batch["discount"])
    return (critic(batch["obs"], batch["action"]) - target).pow(2).mean()
