"""A 1-D convolutional UNet over the time axis of an action chunk, conditioned by FiLM.

Convolving along the chunk's time axis builds in that neighbouring actions are alike,
and the UNet's down/up path lets each output step see the whole chunk. The diffusion
time and the observation embedding enter every residual block as a per-channel scale and
bias (FiLM), rather than as extra input channels, so conditioning reaches every depth.
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
    ``h * (1 + scale) + bias`` per channel, plus a (1x1-projected) skip connection.

    ``1 + scale`` makes a freshly initialised block close to unconditioned rather than
    multiplying its features by a small random number.
    """

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
        h = self.conv1(x) * (1 + scale) + bias
        return self.conv2(h) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """Predicts a (B, Tp, A) chunk-shaped target from a noisy chunk ``x``, its time ``t``
    and the observation embedding ``cond`` (B, C).

    Level i has two FiLM residual blocks at ``down_dims[i]`` channels; between levels the
    chunk is halved by a stride-2 conv on the way down and doubled by a transposed conv on
    the way up, where it is concatenated with the same-resolution features from the way
    down. So Tp must be divisible by ``2 ** (len(down_dims) - 1)``: see ``check_horizon``.

    Args:
        action_dim: A.
        cond_dim: C.
        down_dims: channels per level, finest first.
        kernel_size: temporal kernel of the residual blocks' convolutions (odd).
        n_groups: GroupNorm groups (reduced where a layer has fewer channels; see group_norm).
        time_dim: size of the time embedding fed, with ``cond``, to every FiLM layer.
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

        def res_block(cin: int, cout: int) -> FiLMResBlock:
            return FiLMResBlock(cin, cout, film_dim, kernel_size, n_groups)

        # Way down: level i maps in_dims[i] -> down_dims[i] channels at length Tp / 2**i.
        in_dims = (action_dim, *self.down_dims[:-1])
        self.down_levels = nn.ModuleList(
            nn.ModuleList([res_block(cin, cout), res_block(cout, cout)])
            for cin, cout in zip(in_dims, self.down_dims)
        )
        self.downsamples = nn.ModuleList(
            nn.Conv1d(d, d, 3, stride=2, padding=1) for d in self.down_dims[:-1]
        )
        deepest = self.down_dims[-1]
        self.mid = nn.ModuleList([res_block(deepest, deepest), res_block(deepest, deepest)])
        # Way up, coarsest first: double the length of level i+1's output, concatenate
        # level i's skip features, and map back to down_dims[i] channels.
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose1d(d, d, 4, stride=2, padding=1) for d in reversed(self.down_dims[1:])
        )
        self.up_levels = nn.ModuleList(
            nn.ModuleList([res_block(coarse + fine, fine), res_block(fine, fine)])
            for coarse, fine in zip(reversed(self.down_dims[1:]), reversed(self.down_dims[:-1]))
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
        h = rearrange(x, "b t a -> b a t")
        skips = []
        for i, (block1, block2) in enumerate(self.down_levels):
            h = block2(block1(h, film), film)
            if i < len(self.downsamples):
                skips.append(h)
                h = self.downsamples[i](h)
        for block in self.mid:
            h = block(h, film)
        for upsample, (block1, block2) in zip(self.upsamples, self.up_levels):
            h = torch.cat([upsample(h), skips.pop()], dim=1)
            h = block2(block1(h, film), film)
        return rearrange(self.final(h), "b a t -> b t a")
