"""Observation encoders: a stack of To observation dicts -> one conditioning vector (B, C).

Low-dim observations are used as they are (already normalised by the dataset's normaliser).
Camera images are augmented here (random crop and colour jitter in training, the centre crop
in evaluation), so data stays uint8 until the model and acting needs no preprocessing; then
each camera's images go through a CNN (``IMAGE_ENCODERS``: a small one or a ResNet-18, both
with GroupNorm and spatial-softmax keypoints), every observation step independently.
Everything is concatenated per step in a fixed order (sorted low-dim keys, then sorted
image keys) and then flattened over time, so the layout of ``cond`` never depends on the
order of a dict.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from einops import rearrange
from torch import nn

from robo_policies.utils.errors import ConfigError


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
        return self.per_step(obs).flatten(start_dim=1)  # b t d -> b (t d)


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


class ImageAugmentation(nn.Module):
    """diffusion_policy's image augmentation in torch ops, on the model's device: in training a
    random crop of ``crop_ratio`` of each side (84 -> 76 at 0.9) and, when ``color_jitter`` j > 0,
    brightness and contrast each scaled by a random factor in [1 - j, 1 + j]; in evaluation the
    centre crop of the same size and nothing else, so acting needs no preprocessing.

    One crop and one jitter per sample, shared by its To steps: the frames of a window then
    differ only by what moved, as when acting, where the camera does not jump between steps.
    Each camera draws its own. The draws come from torch's global CPU RNG, also for images on
    a GPU, so seeded training is reproducible and a resumed run, which restores that RNG,
    continues bit-exactly. At ``crop_ratio=1`` and ``color_jitter=0`` it draws nothing and
    returns its input.
    """

    def __init__(self, crop_ratio: float = 1.0, color_jitter: float = 0.0) -> None:
        super().__init__()
        if not 0 < crop_ratio <= 1:
            raise ConfigError(f"crop_ratio={crop_ratio} must be in (0, 1] (1: no crop)")
        if not 0 <= color_jitter < 1:
            raise ConfigError(f"color_jitter={color_jitter} must be in [0, 1) (0: off)")
        self.crop_ratio = crop_ratio
        self.color_jitter = color_jitter

    def crop_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the crop of a (height, width) image."""
        return max(1, round(height * self.crop_ratio)), max(1, round(width * self.crop_ratio))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, To, C, H, W) floats in [0, 1] -> (B, To, C, h, w) floats in [0, 1]."""
        if not self.training:
            return self._centre_crop(images)
        images = self._random_crop(images)
        return self._jitter(images) if self.color_jitter > 0 else images

    def _centre_crop(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        crop_h, crop_w = self.crop_size(height, width)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        return images[..., top:top + crop_h, left:left + crop_w]

    def _random_crop(self, images: torch.Tensor) -> torch.Tensor:
        batch, height, width = images.shape[0], *images.shape[-2:]
        crop_h, crop_w = self.crop_size(height, width)
        if (crop_h, crop_w) == (height, width):
            return images
        tops = torch.randint(0, height - crop_h + 1, (batch,)).tolist()
        lefts = torch.randint(0, width - crop_w + 1, (batch,)).tolist()
        # A slice per sample: on CPU 8x faster than one gather with index grids.
        return torch.stack([sample[..., top:top + crop_h, left:left + crop_w]
                            for sample, top, left in zip(images, tops, lefts)])

    def _jitter(self, images: torch.Tensor) -> torch.Tensor:
        """Brightness, then contrast about each image's mean intensity (torchvision's order)."""
        spread = 2 * torch.rand(2, images.shape[0], 1, 1, 1, 1) - 1
        brightness, contrast = (1 + self.color_jitter * spread).to(images.device)
        images = (images * brightness).clamp(0, 1)
        mean = images.mean(dim=(-3, -2, -1), keepdim=True)
        return ((images - mean) * contrast + mean).clamp(0, 1)


class KeypointEncoder(nn.Module):
    """A convolutional trunk, spatial-softmax keypoints, then a Linear: images in [-1, 1]
    (N, C, H, W) -> (N, out_dim). The keypoints make any image size work (crops included)."""

    def __init__(self, cnn: nn.Module, cnn_channels: int, out_dim: int, n_keypoints: int) -> None:
        super().__init__()
        self.cnn = cnn
        self.pool = SpatialSoftmax(cnn_channels, n_keypoints)
        self.proj = nn.Linear(2 * n_keypoints, out_dim)
        self.out_dim = out_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.cnn(images)))


class ImageEncoder(KeypointEncoder):
    """The CPU-sized encoder (``encoder=cnn``, ~0.1 M parameters at the defaults).

    One stride-2 Conv -> GroupNorm -> Mish stage per entry of ``channels`` (GroupNorm, not
    BatchNorm, so statistics never depend on the batch or need EMA special-casing).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_dim: int = 64,
        channels: tuple[int, ...] = (32, 64, 128),
        n_keypoints: int = 32,
    ) -> None:
        stages: list[nn.Module] = []
        for cin, cout in zip((in_channels, *channels[:-1]), channels):
            stages += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                nn.GroupNorm(math.gcd(8, cout), cout),  # gcd: any width works
                nn.Mish(),
            ]
        super().__init__(nn.Sequential(*stages), channels[-1], out_dim, n_keypoints)


def _group_norm(channels: int) -> nn.GroupNorm:
    """diffusion_policy's stand-in for a ResNet's BatchNorm: 16 channels per group."""
    return nn.GroupNorm(channels // 16, channels)


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convolutions around a skip connection, with GroupNorm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.norm1 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _group_norm(out_channels)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), _group_norm(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.skip(x))


class ResNet18Encoder(KeypointEncoder):
    """diffusion_policy's image encoder (``encoder=resnet18``, ~11.2 M parameters), trained
    from scratch: ResNet-18's stem and four stages of two BasicBlocks (64, 128, 256, 512
    channels) with GroupNorm instead of BatchNorm, and robomimic's spatial softmax instead of
    global average pooling. A 76x76 crop leaves 3x3 maps at the last stage."""

    def __init__(self, in_channels: int = 3, out_dim: int = 64, n_keypoints: int = 32) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            _group_norm(64),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        for cin, cout in zip((64, 64, 128, 256), (64, 128, 256, 512)):
            layers += [BasicBlock(cin, cout, stride=1 if cin == cout else 2), BasicBlock(cout, cout, 1)]
        super().__init__(nn.Sequential(*layers), 512, out_dim, n_keypoints)


IMAGE_ENCODERS: dict[str, Callable[[int, int], KeypointEncoder]] = {
    "cnn": ImageEncoder,
    "resnet18": ResNet18Encoder,
}
"""Image encoders by name (``policy.encoder``): (in_channels, out_dim) -> encoder."""

SHARED = "shared"
"""Name of the one image encoder when ``shared_encoder`` is set."""


class ObservationEncoder(nn.Module):
    """The encoder a policy owns: dict of (B, To, ...) observations -> (B, out_dim).

    ``out_dim = To * (sum(low_dim dims) + len(images) * image_feature_dim)``.

    Images may arrive as uint8 (B, To, H, W, C), as the datasets and envs store them, or as
    float already in [0, 1], either HWC or CHW; uint8 is scaled by 1/255, HWC permuted to
    CHW and the augmentation applied here, so callers never preprocess.

    Args:
        low_dim: key -> size, for vector observations.
        images: key -> (C, H, W), full (uncropped) size.
        n_obs_steps: To, observation steps stacked per sample.
        image_feature_dim: features per camera image.
        encoder: name in ``IMAGE_ENCODERS``.
        shared_encoder: one encoder for every camera (their channel counts must agree)
            instead of one each. Each camera's features keep their own place in ``cond``,
            which is how the head tells the cameras apart: no camera embedding is needed.
        crop_ratio, color_jitter: ``ImageAugmentation``'s settings (default: none).
    """

    def __init__(
        self,
        low_dim: dict[str, int],
        images: dict[str, tuple[int, int, int]],
        n_obs_steps: int,
        image_feature_dim: int = 64,
        encoder: str = "cnn",
        shared_encoder: bool = False,
        crop_ratio: float = 1.0,
        color_jitter: float = 0.0,
    ) -> None:
        super().__init__()
        if not low_dim and not images:
            raise ValueError("ObservationEncoder needs at least one low-dim or image key")
        if encoder not in IMAGE_ENCODERS:
            raise ConfigError(f"encoder={encoder!r} is not one of {sorted(IMAGE_ENCODERS)}")
        self.low_dim = LowDimEncoder(low_dim, n_obs_steps) if low_dim else None
        self.image_shapes = {k: tuple(s) for k, s in sorted(images.items())}
        self.augment = ImageAugmentation(crop_ratio, color_jitter)
        self.shared_encoder = shared_encoder
        build = IMAGE_ENCODERS[encoder]
        channels = {key: shape[0] for key, shape in self.image_shapes.items()}
        if shared_encoder and len(set(channels.values())) > 1:
            raise ConfigError(f"shared_encoder needs cameras with one channel count, got {channels}")
        names = {SHARED: next(iter(channels.values()))} if shared_encoder and images else channels
        self.image_encoders = nn.ModuleDict({name: build(c, image_feature_dim) for name, c in names.items()})
        self.n_obs_steps = n_obs_steps
        low_dim_size = self.low_dim.step_dim if self.low_dim else 0
        self.out_dim = n_obs_steps * (low_dim_size + len(images) * image_feature_dim)

    def _images(self, obs: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        """(B, To, H, W, C) or (B, To, C, H, W), uint8 or float -> (B, To, C, H, W) in [0, 1]."""
        c, h, w = self.image_shapes[key]
        value = _check_obs(obs, key, self.n_obs_steps, [(h, w, c), (c, h, w)])
        # HWC wins the (rare) tie where both layouts fit, as the stored layout is HWC.
        if tuple(value.shape[2:]) == (h, w, c):
            value = rearrange(value, "b t h w c -> b t c h w")
        return value.float() / 255 if value.dtype == torch.uint8 else value

    def _image_features(self, obs: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        """One camera's (augmented) images -> (B, To, image_feature_dim)."""
        images = self.augment(self._images(obs, key)) * 2 - 1  # centred for the first conv
        encoder = self.image_encoders[SHARED if self.shared_encoder else key]
        features = encoder(rearrange(images, "b t c h w -> (b t) c h w"))
        return rearrange(features, "(b t) d -> b t d", t=self.n_obs_steps)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.low_dim.per_step(obs)] if self.low_dim else []
        parts += [self._image_features(obs, key) for key in self.image_shapes]
        return torch.cat(parts, dim=-1).flatten(start_dim=1)  # b t d -> b (t d), without einops' per-call cost
