"""The interface every action head implements, so trainers and samplers need no special cases.

A head turns an observation embedding ``cond`` (B, C) into action chunks (B, Tp, A) in the
normalised action space. Generative heads (diffusion, flow matching, energy) learn a
distribution over chunks; a deterministic head (MLP behaviour cloning) regresses one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class ActionHead(nn.Module, ABC):
    """Maps an observation embedding to action chunks.

    Args:
        action_dim: A, size of one action.
        horizon: Tp, actions per predicted chunk.
        cond_dim: C, size of the observation embedding.
    """

    def __init__(self, action_dim: int, horizon: int, cond_dim: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.horizon = horizon
        self.cond_dim = cond_dim

    @abstractmethod
    def loss(
        self, cond: torch.Tensor, actions: torch.Tensor, action_is_pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scalar training loss for normalised ``actions`` (B, Tp, A) given ``cond`` (B, C).

        ``action_is_pad`` (B, Tp) marks padded steps past an episode's end; they still count
        (the policy should learn to stay put there) unless a head documents otherwise.
        """

    @abstractmethod
    def sample(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised action chunks (B, Tp, A) for ``cond`` (B, C)."""

    @property
    @abstractmethod
    def nfe(self) -> int:
        """Network evaluations per ``sample`` call (1 for a regression head)."""
