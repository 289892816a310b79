"""Residual MLPs: a plain regressor and a denoiser for flattened action chunks.

An MLP over the whole flattened chunk is the cheapest network a head can use (one matrix
product per layer, no convolution over time), which matters when a policy evaluates it ~10
times per chunk. Pre-norm residual blocks keep it trainable at any depth.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from robo_policies.nets.embeddings import SinusoidalEmbedding


class ResidualBlock(nn.Module):
    """``x + Linear(Mish(Linear(LayerNorm(x))))``: the skip keeps gradients flowing."""

    def __init__(self, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, dim),
            nn.Mish(),
            nn.Dropout(dropout),
            nn.Linear(dim, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class MLPResNet(nn.Module):
    """(B, in_dim) -> (B, out_dim) through ``n_blocks`` residual blocks of width ``hidden_dim``.

    The residual stream is normalised once more before the output projection, since the
    blocks only normalise their own inputs and the stream's scale grows with depth.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 256,
        n_blocks: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_proj = nn.Linear(in_dim, hidden_dim)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden_dim, dropout) for _ in range(n_blocks)))
        self.output_norm = nn.LayerNorm(hidden_dim)
        self.output_proj = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_proj(self.output_norm(self.blocks(self.input_proj(x))))


class MLPResNetDenoiser(nn.Module):
    """Predicts a (B, Tp, A) chunk-shaped target (noise, velocity, clean chunk) from a noisy
    chunk ``x``, its time ``t`` and the observation embedding ``cond``.

    The output layer starts at zero, so the untrained network predicts 0 (the mean of a
    normalised target) rather than large random values that dominate early gradients.

    Args:
        action_dim: A.
        horizon: Tp; fixed, because the chunk is flattened into the input layer.
        cond_dim: C.
        hidden_dim, n_blocks: width and depth of the MLPResNet.
        time_dim: size of the sinusoidal time embedding.
    """

    def __init__(
        self,
        action_dim: int,
        horizon: int,
        cond_dim: int,
        hidden_dim: int = 256,
        n_blocks: int = 3,
        time_dim: int = 64,
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.horizon = horizon
        self.time_embedding = SinusoidalEmbedding(time_dim)
        chunk_dim = horizon * action_dim
        self.mlp = MLPResNet(chunk_dim + time_dim + cond_dim, chunk_dim, hidden_dim, n_blocks)
        nn.init.zeros_(self.mlp.output_proj.weight)
        nn.init.zeros_(self.mlp.output_proj.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(
                f"expected x of shape (B, {self.horizon}, {self.action_dim}), got {tuple(x.shape)}"
            )
        h = torch.cat([rearrange(x, "b t a -> b (t a)"), self.time_embedding(t), cond], dim=-1)
        return rearrange(self.mlp(h), "b (t a) -> b t a", t=self.horizon)
