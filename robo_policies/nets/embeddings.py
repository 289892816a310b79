"""Sinusoidal features for the scalar "time" of a denoising or flow process.

A network conditioned on a raw scalar sees only one number per sample; sine and cosine
features at geometrically spaced frequencies give it a smooth, multi-scale code instead.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """Maps timesteps (B,) to (B, dim) features ``[sin(t * f_k), cos(t * f_k)]``.

    Frequencies run from 1 down to ``1 / max_period``, so integer diffusion steps in 0..999
    are resolved by the high frequencies and still distinct under the low ones. Continuous
    flow times in [0, 1] should be scaled by the caller (e.g. ``t * 1000``): unscaled, every
    feature would sit in the first fraction of a period and the steps would look alike.

    Args:
        dim: output size; must be even (half sines, half cosines).
        max_period: period of the slowest feature.
    """

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"SinusoidalEmbedding dim must be a positive even number, got {dim}")
        self.dim = dim
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        # A buffer follows the module across devices, but is not a learnable parameter.
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if t.ndim != 1:
            raise ValueError(f"timesteps must have shape (B,), got {tuple(t.shape)}")
        args = t.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)
