"""Observation encoders: a stack of To observation dicts -> one conditioning vector (B, C).

Low-dim observations are used as they are (already normalised by the dataset's normaliser);
each camera gets its own small CNN, applied to every observation step independently.
Everything is concatenated per step in a fixed order (sorted low-dim keys, then sorted
image keys) and then flattened over time, so the layout of ``cond`` never depends on the
order of a dict.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


def _check_obs(
    obs: dict[str, torch.Tensor], key: str, n_steps: int, shapes: list[tuple[int, ...]]
) -> torch.Tensor:
    """Return ``obs[key]``, raising KeyError if absent and ValueError unless its shape is
    (B, n_steps, *s) for one of ``shapes``."""
    if key not in obs:
        raise KeyError(f"observation key {key!r} missing; got keys {sorted(obs)}")
    value = obs[key]
    if value.ndim < 2 or value.shape[1] != n_steps or tuple(value.shape[2:]) not in shapes:
        expected = " or ".join(str(("B", n_steps, *s)) for s in shapes)
        raise ValueError(f"observation {key!r} has shape {tuple(value.shape)}, expected {expected}")
    return value


class LowDimEncoder(nn.Module):
    """Concatenates low-dim observations (B, To, d_key): (B, To * sum(d)) as ``forward``,
    or (B, To, sum(d)) from ``per_step``. No parameters: diffusion_policy conditions on the
    raw normalised state, and a head's own first layer already mixes it."""

    def __init__(self, key_dims: dict[str, int], n_obs_steps: int) -> None:
        super().__init__()
        if not key_dims:
            raise ValueError("LowDimEncoder needs at least one key")
        self.key_dims = dict(sorted(key_dims.items()))
        self.n_obs_steps = n_obs_steps
        self.step_dim = sum(self.key_dims.values())
        self.out_dim = n_obs_steps * self.step_dim

    def per_step(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [_check_obs(obs, k, self.n_obs_steps, [(d,)]) for k, d in self.key_dims.items()]
        return torch.cat(parts, dim=-1)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return rearrange(self.per_step(obs), "b t d -> b (t d)")


class SpatialSoftmax(nn.Module):
    """(N, C, H, W) feature maps -> (N, 2K) expected (x, y) image coordinates in [-1, 1]
    of K learned keypoints. Unlike global average pooling it keeps *where* things are,
    which is what a manipulation policy mostly needs from a camera."""

    def __init__(self, in_channels: int, n_keypoints: int) -> None:
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, n_keypoints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        attention = rearrange(self.keypoints(x), "n k h w -> n k (h w)").softmax(dim=-1)
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, height, device=x.device, dtype=attention.dtype),
            torch.linspace(-1, 1, width, device=x.device, dtype=attention.dtype),
            indexing="ij",
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # (h*w, 2)
        return rearrange(attention @ grid, "n k xy -> n (k xy)")


class ImageEncoder(nn.Module):
    """A small CNN: float images (N, C, H, W) scaled to [0, 1] -> (N, out_dim).

    One stride-2 Conv -> GroupNorm -> Mish stage per entry of ``channels`` (GroupNorm,
    not BatchNorm, so statistics never depend on the batch or need EMA special-casing),
    spatial-softmax keypoints, then a Linear. Needs no torchvision.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_dim: int = 64,
        channels: tuple[int, ...] = (32, 64, 128),
        n_keypoints: int = 32,
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        for cin, cout in zip((in_channels, *channels[:-1]), channels):
            stages += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                nn.GroupNorm(math.gcd(8, cout), cout),  # gcd: any width works
                nn.Mish(),
            ]
        self.cnn = nn.Sequential(*stages)
        self.pool = SpatialSoftmax(channels[-1], n_keypoints)
        self.proj = nn.Linear(2 * n_keypoints, out_dim)
        self.out_dim = out_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Centre [0, 1] inputs so the first conv sees zero-mean data.
        return self.proj(self.pool(self.cnn(images * 2 - 1)))


class ObservationEncoder(nn.Module):
    """The encoder a policy owns: dict of (B, To, ...) observations -> (B, out_dim).

    ``out_dim = To * (sum(low_dim dims) + len(images) * image_feature_dim)``.

    Images may arrive as uint8 (B, To, H, W, C), as the datasets and envs store them, or as
    float already in [0, 1], either HWC or CHW; uint8 is scaled by 1/255 and HWC permuted
    to CHW here, so callers never preprocess.

    Args:
        low_dim: key -> size, for vector observations.
        images: key -> (C, H, W), one ImageEncoder each.
        n_obs_steps: To, observation steps stacked per sample.
        image_feature_dim: output size of each ImageEncoder.
    """

    def __init__(
        self,
        low_dim: dict[str, int],
        images: dict[str, tuple[int, int, int]],
        n_obs_steps: int,
        image_feature_dim: int = 64,
    ) -> None:
        super().__init__()
        if not low_dim and not images:
            raise ValueError("ObservationEncoder needs at least one low-dim or image key")
        self.low_dim = LowDimEncoder(low_dim, n_obs_steps) if low_dim else None
        self.image_shapes = {k: tuple(s) for k, s in sorted(images.items())}
        self.image_encoders = nn.ModuleDict(
            {k: ImageEncoder(s[0], image_feature_dim) for k, s in self.image_shapes.items()}
        )
        self.n_obs_steps = n_obs_steps
        low_dim_size = self.low_dim.step_dim if self.low_dim else 0
        self.out_dim = n_obs_steps * (low_dim_size + len(images) * image_feature_dim)

    def _image_features(self, obs: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        """(B, To, H, W, C) or (B, To, C, H, W) -> (B, To, image_feature_dim)."""
        c, h, w = self.image_shapes[key]
        value = _check_obs(obs, key, self.n_obs_steps, [(h, w, c), (c, h, w)])
        # HWC wins the (rare) tie where both layouts fit, as the stored layout is HWC.
        if tuple(value.shape[2:]) == (h, w, c):
            value = rearrange(value, "b t h w c -> b t c h w")
        images = value.float() / 255 if value.dtype == torch.uint8 else value
        features = self.image_encoders[key](rearrange(images, "b t c h w -> (b t) c h w"))
        return rearrange(features, "(b t) d -> b t d", b=value.shape[0])

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.low_dim.per_step(obs)] if self.low_dim else []
        parts += [self._image_features(obs, key) for key in self.image_shapes]
        return rearrange(torch.cat(parts, dim=-1), "b t d -> b (t d)")

