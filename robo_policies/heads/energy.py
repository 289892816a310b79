"""Energy-based action head after EBT-Policy: predict by descending a learned energy.

The network scores a (chunk, observation) pair with a scalar energy ``E`` (the mean of the
backbone's (Tp, A) output, as in EBT-Policy). An action chunk is *found* by gradient descent
on ``E`` from Gaussian noise, with Nesterov momentum and an energy-scaled step size
``eta = step_size * exp(E)`` (high energy: far from data, big steps). Training unrolls that
descent and regresses its end point onto the demonstrated chunk:

- a random number of steps per batch (``train_steps_min`` + U{0..``train_steps_random``});
- the chunk and momentum are detached between steps, so the loss only differentiates the
  last step (second order inside it): memory does not grow with the step count;
- annealed Langevin noise (cosine from ``langevin_sigma[0]`` to ``[1]``) and a step size
  jittered in [eta / 1.5, 1.5 eta], in training only;
- MSE of the final chunk against the demonstration.

Inference runs the noise-free descent and stops when every sample's gradient norm is below
``min_grad_norm`` (after at least 2 evaluations) or after ``inference_steps`` energy
evaluations; ``best_of`` candidates per observation keep the lowest-energy one.
``last_energy`` holds the chosen chunks' energies, an uncertainty score (high = unlike the
demonstrations), and ``last_nfe`` the evaluations the call used.

Numerics are guarded: the step size is capped at ``max_step_size`` and each sample's energy
gradient is clipped to norm ``max_grad_norm``, so a spiking energy cannot throw the chunk
away. EBT-Policy's whole-batch RMS normalisation of the chunk is left out on purpose: it
mixes samples, which mini-batched denoising (independent copies) forbids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from robo_policies.heads.base import ActionHead, BenchSampler, Generators
from robo_policies.heads.build import build_backbone
from robo_policies.heads.registry import HeadConfig, register_head
from robo_policies.utils.errors import ConfigError

if TYPE_CHECKING:
    from robo_policies.policy import PolicyConfig

Energy = Callable[[torch.Tensor], torch.Tensor]
"""``energy(x) -> (B,)``: an energy of chunks with the observations already bound."""


@dataclass
class EnergyConfig(HeadConfig):
    """Settings of the energy head (``policy=energy``: ``policy.head.<field>``)."""

    name: str = "energy"
    inference_steps: int = 4
    """Cap on energy evaluations per model call (at least 2)."""
    min_grad_norm: float = 1e-3
    """Sampling stops once every sample's energy-gradient norm is below this."""
    train_steps: list[int] = field(default_factory=lambda: [2, 2])
    """Unrolled descent steps in training: [minimum, extra drawn from U{0..extra}]."""
    step_size: float = 1.0
    """Descent step: step_size * exp(E), capped at max_step_size."""
    max_step_size: float = 2.0
    """Cap on the descent step size."""
    langevin_sigma: list[float] = field(default_factory=lambda: [0.2, 0.002])
    """Training-only Langevin noise, cosine-annealed from the first to the second value."""
    best_of: int = 1
    """Candidates per observation at inference; the lowest energy is executed."""


@register_head("energy", EnergyConfig)
class EnergyHead(ActionHead):
    """Scalar energy over (chunk, observation), sampled by momentum gradient descent.

    Args:
        net: backbone ``net(x (B, Tp, A), t (B,), cond (B, C)) -> (B, Tp, A)``; its output's
            mean is the energy. It is called with ``t`` = 0 (the energy has no time).
        inference_steps: cap on energy evaluations per sample (each is a forward and an
            input-gradient backward pass); at least 2.
        min_grad_norm: stop early once every sample's gradient norm is below this.
        train_steps_min, train_steps_random: unrolled steps in training.
        step_size: ``eta = step_size * exp(E)`` before the cap.
        max_step_size: cap on ``eta``.
        max_grad_norm: per-sample clip of the energy gradient.
        momentum: Nesterov momentum ``mu``.
        langevin_sigma: (start, end) of the training noise, cosine annealed over the steps.
        best_of: candidates per observation at inference; the lowest energy wins.
    """

    composes = "energy"
    samples_with_grad = True
    bench_samplers = (
        BenchSampler("adaptive", 4, {"inference_steps": 4, "min_grad_norm": 1e-3}),
        BenchSampler("fixed", 2, {"inference_steps": 2, "min_grad_norm": 0.0}),
    )

    def __init__(
        self,
        action_dim: int,
        horizon: int,
        cond_dim: int,
        net: nn.Module,
        inference_steps: int = 4,
        min_grad_norm: float = 1e-3,
        train_steps_min: int = 2,
        train_steps_random: int = 2,
        step_size: float = 1.0,
        max_step_size: float = 2.0,
        max_grad_norm: float = 10.0,
        momentum: float = 0.9,
        langevin_sigma: tuple[float, float] = (0.2, 0.002),
        best_of: int = 1,
    ) -> None:
        super().__init__(action_dim, horizon, cond_dim)
        if inference_steps < 2:
            raise ConfigError(f"energy inference_steps must be >= 2, got {inference_steps}")
        if train_steps_min < 1 or train_steps_random < 0:
            raise ConfigError(
                f"need train_steps_min >= 1 and train_steps_random >= 0, got {train_steps_min}, {train_steps_random}"
            )
        if best_of < 1:
            raise ConfigError(f"best_of must be >= 1, got {best_of}")
        self.net = net
        self.inference_steps = inference_steps
        self.min_grad_norm = min_grad_norm
        self.train_steps_min, self.train_steps_random = train_steps_min, train_steps_random
        self.step_size, self.max_step_size = step_size, max_step_size
        self.max_grad_norm = max_grad_norm
        self.momentum = momentum
        self.langevin_sigma = tuple(langevin_sigma)
        self.best_of = best_of
        self.last_energy: torch.Tensor | None = None

    @classmethod
    def from_config(
        cls, config: EnergyConfig, policy: PolicyConfig, action_dim: int, cond_dim: int
    ) -> EnergyHead:
        net = build_backbone(policy, action_dim, cond_dim)
        train_min, train_random = config.train_steps
        return cls(
            action_dim, policy.horizon, cond_dim, net, inference_steps=config.inference_steps,
            min_grad_norm=config.min_grad_norm, train_steps_min=train_min,
            train_steps_random=train_random, step_size=config.step_size,
            max_step_size=config.max_step_size, langevin_sigma=tuple(config.langevin_sigma),
            best_of=config.best_of,
        )

    @property
    def nfe(self) -> int:
        return self.inference_steps

    def warm_start_time(self, noise_to_signal: float, steps: int, device: torch.device) -> None:
        """None: an energy has no time; a warm start descends from the guess for ``steps``."""
        return None

    def energy(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Energy (B,) of chunks ``x`` (B, Tp, A) under observations ``cond`` (B, C)."""
        t = torch.zeros(x.shape[0], device=x.device)
        return self.net(x, t, cond).mean(dim=(1, 2))

    def descent_step(
        self,
        x: torch.Tensor,
        velocity: torch.Tensor,
        energy: Energy,
        step_scale: float = 1.0,
        create_graph: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One Nesterov step on the energy: ``(x, velocity, energy, grad_norm)`` after it.

        The energy and gradient are taken at the look-ahead point ``x + mu * velocity``.
        """
        with torch.enable_grad():
            lookahead = (x + self.momentum * velocity).detach().requires_grad_(True)
            value = energy(lookahead)
            (grad,) = torch.autograd.grad(value.sum(), lookahead, create_graph=create_graph)
        norm = grad.flatten(1).norm(dim=1)
        clip = (self.max_grad_norm / norm.clamp(min=1e-12)).clamp(max=1.0)
        # exp of a clamped energy: the cap on eta applies long before exp could overflow.
        eta = (step_scale * self.step_size * value.clamp(max=20.0).exp()).clamp(max=self.max_step_size)
        velocity = self.momentum * velocity - (eta * clip)[:, None, None] * grad
        return x + velocity, velocity, value, norm

    def loss(
        self, cond: torch.Tensor, actions: torch.Tensor, action_is_pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        steps = self.train_steps_min + int(torch.randint(0, self.train_steps_random + 1, ()).item())
        x = self.initial_noise(cond, None)
        velocity = torch.zeros_like(x)
        start_sigma, end_sigma = self.langevin_sigma
        energy = partial(self.energy, cond=cond)
        for k in range(steps):
            # Detach between steps: only the last one is differentiated (second order inside).
            progress = k / max(steps - 1, 1)
            sigma = end_sigma + 0.5 * (start_sigma - end_sigma) * (1 + math.cos(math.pi * progress))
            x = x.detach() + sigma * torch.randn_like(x)
            scale = float(torch.empty(()).uniform_(1 / 1.5, 1.5))
            x, velocity, _, _ = self.descent_step(
                x, velocity.detach(), energy, step_scale=scale, create_graph=k == steps - 1
            )
        return F.mse_loss(x, actions)

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        x_init: torch.Tensor | None = None,
        t_start: float | None = None,
        steps: int | None = None,
        generator: Generators = None,
        energy: Energy | None = None,
    ) -> torch.Tensor:
        """Descend the energy from noise (or ``x_init``); ``t_start`` is unused (no time).

        ``steps`` overrides the cap on energy evaluations. With ``best_of`` > 1 each
        observation gets that many candidates and keeps the one with the lowest energy.
        ``energy`` replaces this head's own (it is called on the candidates: each row of
        ``cond`` repeated ``best_of`` times in a row), which is how several energy heads
        compose: a weighted sum of their energies.
        """
        cap = self.inference_steps if steps is None else steps
        if cap < 1:
            raise ValueError(f"energy sampling needs steps >= 1, got {cap}")
        n = cond.shape[0]
        cond = cond.repeat_interleave(self.best_of, dim=0)
        energy = partial(self.energy, cond=cond) if energy is None else energy
        if x_init is None:
            x = self.initial_noise(cond, generator)
        else:
            x = x_init.repeat_interleave(self.best_of, dim=0).clone()
        velocity = torch.zeros_like(x)
        for step in range(1, cap + 1):
            x, velocity, value, grad_norm = self.descent_step(x, velocity, energy)
            if step >= 2 and bool((grad_norm < self.min_grad_norm).all()):
                break
        self.last_nfe = step
        x = x.clamp(-1.0, 1.0)
        # Score candidates by the last evaluated energy (at the final look-ahead point): an
        # extra evaluation at the end point would cost one more network call per sample.
        value = value.view(n, self.best_of)
        best = value.argmin(dim=1)
        self.last_energy = value[torch.arange(n), best]
        return x.view(n, self.best_of, *x.shape[1:])[torch.arange(n), best]
