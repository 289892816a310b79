"""A 1-D convolutional UNet over the time axis of an action chunk, conditioned by FiLM.

Convolving along the chunk's time axis builds in that neighbouring actions are alike,
and the UNet's down/up path lets each output step see the whole chunk. The diffusion
time and the observation embedding enter every residual block as a per-channel scale and
bias (FiLM), rather than as extra input channels, so conditioning reaches every depth.

The layout is diffusion_policy's ConditionalUnet1D (Chi et al., 2023), so the
``diffusion_dp_paper`` preset trains the published network: its low-dim configuration
(action 7, global condition 40, down_dims 256/512/1024, kernel 5, step embedding 256) has
65,792,263 parameters here as there (tests/test_nets.py pins it).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from robo_policies.nets.embeddings import SinusoidalEmbedding


def group_norm(channels: int, n_groups: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count dividing ``channels`` that is at most
    ``n_groups`` (their gcd), so narrow layers (e.g. 6 channels with 8 groups) still work."""
    return nn.GroupNorm(math.gcd(channels, n_groups), channels)


class ConvBlock(nn.Sequential):
    """Conv1d (length-preserving) -> GroupNorm -> Mish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int) -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            group_norm(out_channels, n_groups),
            nn.Mish(),
        )


class FiLMResBlock(nn.Module):
    """Two ConvBlocks with the conditioning vector applied between them as
    ``scale * h + bias`` per channel (the published FiLM form), plus a (1x1-projected)
    skip connection, which keeps the block's input flowing however the scale starts."""

    def __init__(
        self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, n_groups: int
    ) -> None:
        super().__init__()
        self.conv1 = ConvBlock(in_channels, out_channels, kernel_size, n_groups)
        self.conv2 = ConvBlock(out_channels, out_channels, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.skip = (
            nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, bias = rearrange(self.film(cond), "b (two c) -> two b c 1", two=2)
        h = scale * self.conv1(x) + bias
        return self.conv2(h) + self.skip(x)


class ResBlockPair(nn.Module):
    """Two FiLM residual blocks, ``in -> out -> out`` channels: the work done at one level."""

    def __init__(
        self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, n_groups: int
    ) -> None:
        super().__init__()
        self.first = FiLMResBlock(in_channels, out_channels, cond_dim, kernel_size, n_groups)
        self.second = FiLMResBlock(out_channels, out_channels, cond_dim, kernel_size, n_groups)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x, cond), cond)


class ConditionalUnet1D(nn.Module):
    """Predicts a (B, Tp, A) chunk-shaped target from a noisy chunk ``x``, its time ``t``
    and the observation embedding ``cond`` (B, C).

    Level i works at ``down_dims[i]`` channels and length Tp / 2**i. Way down: level 0 runs
    on the chunk; each deeper level halves the length (stride-2 conv) and runs. Two more
    blocks (the mid path) run at the coarsest level. Way up, coarsest first: the features
    are concatenated with the output level i had on the way down, mapped to
    ``down_dims[i - 1]`` channels at level i's length, and only then doubled in length
    (transposed conv) to reach level i - 1. So the finest level's output feeds only the way
    down (no skip from it), and the up path runs one level coarser than its output, as in
    diffusion_policy. Tp must be divisible by ``2 ** (len(down_dims) - 1)``: ``check_horizon``.

    Args:
        action_dim: A.
        cond_dim: C.
        down_dims: channels per level, finest first.
        kernel_size: temporal kernel of the residual blocks' convolutions (odd).
        n_groups: GroupNorm groups (reduced where a layer has fewer channels; see group_norm).
        time_dim: size of the time embedding (sinusoidal -> Linear to 4x -> Mish -> Linear)
            fed, concatenated with ``cond``, to every FiLM layer.
    """

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        down_dims: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        n_groups: int = 8,
        time_dim: int = 64,
    ) -> None:
        super().__init__()
        if not down_dims:
            raise ValueError("down_dims must name at least one level")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to preserve the chunk length, got {kernel_size}")
        self.down_dims = tuple(down_dims)
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(time_dim),
            nn.Linear(time_dim, 4 * time_dim),
            nn.Mish(),
            nn.Linear(4 * time_dim, time_dim),
        )
        film_dim = time_dim + cond_dim

        def pair(cin: int, cout: int) -> ResBlockPair:
            return ResBlockPair(cin, cout, film_dim, kernel_size, n_groups)

        coarser, finer = self.down_dims[1:], self.down_dims[:-1]
        self.down_levels = nn.ModuleList(
            pair(cin, cout) for cin, cout in zip((action_dim, *finer), self.down_dims)
        )
        # downsamples[i] halves level i's output on its way into level i + 1.
        self.downsamples = nn.ModuleList(nn.Conv1d(d, d, 3, stride=2, padding=1) for d in finer)
        deepest = self.down_dims[-1]
        self.mid = pair(deepest, deepest)
        # Coarsest first: up_levels[j] takes [features, skip] at level L-1-j's length and
        # width, and upsamples[j] doubles its output's length.
        self.up_levels = nn.ModuleList(
            pair(2 * coarse, fine) for coarse, fine in zip(reversed(coarser), reversed(finer))
        )
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose1d(d, d, 4, stride=2, padding=1) for d in reversed(finer)
        )
        finest = self.down_dims[0]
        self.final = nn.Sequential(
            ConvBlock(finest, finest, kernel_size, n_groups), nn.Conv1d(finest, action_dim, 1)
        )

    def check_horizon(self, horizon: int) -> None:
        """Raise ValueError unless ``horizon`` survives every halving on the way down."""
        factor = 2 ** (len(self.down_dims) - 1)
        if horizon % factor:
            raise ValueError(
                f"horizon {horizon} must be divisible by 2**(len(down_dims)-1) = {factor} "
                f"for down_dims {self.down_dims}"
            )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.check_horizon(x.shape[1])
        film = torch.cat([self.time_mlp(t), cond], dim=-1)
        h = self.down_levels[0](rearrange(x, "b t a -> b a t"), film)
        skips = []
        for downsample, level in zip(self.downsamples, self.down_levels[1:]):
            h = level(downsample(h), film)
            skips.append(h)
        h = self.mid(h, film)
        for level, upsample in zip(self.up_levels, self.upsamples):
            h = upsample(level(torch.cat([h, skips.pop()], dim=1), film))
        return rearrange(self.final(h), "b a t -> b t a")
