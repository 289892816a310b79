"""Conversions between what a denoising network predicts: noise, clean chunk or velocity.

Diffusion and flow heads both noise a clean chunk ``x0`` into ``x_t = alpha_t * x0 +
sigma_t * eps`` (diffusion: ``alpha_t = sqrt(alphas_cumprod[t])``, ``sigma_t =
sqrt(1 - alphas_cumprod[t])``; rectified flow: ``alpha_t = 1 - t``, ``sigma_t = t``). Given
``x_t``, any one of these predictions fixes the others, linearly:

- ``epsilon``: the noise ``eps``;
- ``sample``: the clean chunk ``x0`` (diffusers' name for x0-prediction);
- ``velocity``: the rectified-flow velocity ``eps - x0`` (the direction from data to noise).

So fields from different heads can be brought to one representation and combined (policy
composition), and a head can be sampled with another head's solver.
"""

from __future__ import annotations

import torch

PREDICTIONS = ("epsilon", "sample", "velocity")
"""The prediction kinds ``convert`` understands."""

_MIN_SCALE = 1e-4  # alpha_t or sigma_t below this is clamped: keeps divisions finite at t's ends


def to_sample_and_noise(
    prediction: torch.Tensor, kind: str, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0, eps)`` implied by ``prediction`` of ``kind`` at the noisy chunk ``x``.

    ``alpha`` and ``sigma`` broadcast against ``x`` (e.g. shape (B, 1, 1)).
    """
    _check(kind)
    if kind == "epsilon":
        eps = prediction
        return (x - sigma * eps) / alpha.clamp(min=_MIN_SCALE), eps
    if kind == "sample":
        x0 = prediction
        return x0, (x - alpha * x0) / sigma.clamp(min=_MIN_SCALE)
    # velocity v = eps - x0 together with x = alpha * x0 + sigma * eps:
    total = (alpha + sigma).clamp(min=_MIN_SCALE)
    return (x - sigma * prediction) / total, (x + alpha * prediction) / total


def from_sample_and_noise(x0: torch.Tensor, eps: torch.Tensor, kind: str) -> torch.Tensor:
    """The prediction of ``kind`` for a clean chunk ``x0`` and its noise ``eps``."""
    _check(kind)
    return {"epsilon": eps, "sample": x0, "velocity": eps - x0}[kind]


def convert(
    prediction: torch.Tensor,
    kind: str,
    to: str,
    x: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
) -> torch.Tensor:
    """Re-express ``prediction`` (of ``kind``) at noisy chunk ``x`` as a prediction of ``to``."""
    if kind == to:
        _check(kind)
        return prediction
    return from_sample_and_noise(*to_sample_and_noise(prediction, kind, x, alpha, sigma), to)


def _check(kind: str) -> None:
    if kind not in PREDICTIONS:
        raise ValueError(f"unknown prediction kind {kind!r}; choose from {list(PREDICTIONS)}")
