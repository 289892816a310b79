"""Diffusion action head: denoise Gaussian noise into an action chunk (Diffusion Policy).

Training adds noise at a random diffusion step to the normalised chunk and regresses the
noise (epsilon prediction; ``prediction="sample"`` regresses the clean chunk instead).
Sampling runs diffusers' DDIM (few steps, deterministic) or DDPM scheduler, from pure noise
or, warm-started, from a given chunk at a given step. The schedulers come from diffusers, so
their noise schedules match what diffusion_policy and LeRobot users know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from robo_policies.heads.base import BenchSampler, DenoisingHead, Field, Generators, SolverStep, randn
from robo_policies.heads.build import build_backbone
from robo_policies.heads.registry import HeadConfig, register_head
from robo_policies.utils.errors import ConfigError

if TYPE_CHECKING:
    from robo_policies.policy import PolicyConfig

SCHEDULERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}
_TINY = 1e-12  # floor of alpha and sigma before taking logs


@dataclass
class DiffusionConfig(HeadConfig):
    """Settings of the diffusion head (``policy=diffusion``: ``policy.head.<field>``)."""

    name: str = "diffusion"
    train_steps: int = 100
    """Diffusion steps of the training noise schedule."""
    inference_steps: int = 10
    """Denoising steps per model call."""
    scheduler: str = "ddim"
    """Sampler: ``ddim`` (deterministic, few steps) or ``ddpm`` (stochastic)."""
    prediction: str = "epsilon"
    """What the network predicts: ``epsilon`` (noise) or ``sample`` (clean chunk)."""


@dataclass(frozen=True)
class DiffusionStep(SolverStep):
    """A DDIM or DDPM step's coefficients, computed as diffusers' ``step`` computes them (the
    same float32 operations, so the update is bit for bit diffusers')."""

    sqrt_alpha: torch.Tensor
    """``alphas_cumprod[t] ** 0.5``."""
    sqrt_beta: torch.Tensor
    """``(1 - alphas_cumprod[t]) ** 0.5``."""
    sample_coef: torch.Tensor
    """Weight of the (clipped) predicted clean chunk in the next chunk."""
    other_coef: torch.Tensor
    """Weight of the predicted noise (DDIM) or of the current chunk (DDPM) in the next chunk."""
    noise_std: torch.Tensor | None
    """DDPM before the last step: the standard deviation of the noise added; else None."""


@register_head("diffusion", DiffusionConfig)
class DiffusionHead(DenoisingHead):
    """Diffusion over action chunks; time ``t`` is the integer diffusion step.

    Args:
        net: denoiser ``net(x (B, Tp, A), t (B,), cond (B, C)) -> (B, Tp, A)``.
        train_steps: diffusion steps of the training noise schedule.
        inference_steps: denoising steps per sample (the head's ``nfe``).
        scheduler: ``"ddim"`` (deterministic, few steps) or ``"ddpm"`` (stochastic).
        beta_schedule: diffusers beta schedule name.
        clip_sample: clip predicted clean samples to [-1, 1] (actions are min-max normalised).
        prediction: what the network predicts: ``epsilon`` (the noise, Diffusion Policy's
            choice) or ``sample`` (the clean chunk).
    """

    bench_samplers = (
        BenchSampler("ddpm", 100, {"scheduler": "ddpm", "inference_steps": 100}),
        BenchSampler("ddim", 10, {"scheduler": "ddim", "inference_steps": 10}),
        BenchSampler("rti", 3, {"scheduler": "ddpm", "inference_steps": 100}, warm_steps=3),
    )

    def __init__(
        self,
        action_dim: int,
        horizon: int,
        cond_dim: int,
        net: nn.Module,
        train_steps: int = 100,
        inference_steps: int = 10,
        scheduler: str = "ddim",
        beta_schedule: str = "squaredcos_cap_v2",
        clip_sample: bool = True,
        prediction: str = "epsilon",
    ) -> None:
        super().__init__(action_dim, horizon, cond_dim, net)
        if prediction not in ("epsilon", "sample"):
            raise ConfigError(f"unknown diffusion prediction {prediction!r}; choose epsilon or sample")
        self.prediction = prediction
        if scheduler not in SCHEDULERS:
            raise ConfigError(f"unknown scheduler {scheduler!r}; choose from {sorted(SCHEDULERS)}")
        if not 1 <= inference_steps <= train_steps:
            raise ConfigError(
                f"need 1 <= inference_steps <= train_steps, got {inference_steps} and {train_steps}"
            )
        schedule = dict(
            num_train_timesteps=train_steps,
            beta_schedule=beta_schedule,
            clip_sample=clip_sample,
            prediction_type=prediction,
        )
        self.train_scheduler = DDPMScheduler(**schedule)
        self.sample_scheduler = SCHEDULERS[scheduler](**schedule)
        self.inference_steps = inference_steps

    @classmethod
    def from_config(
        cls, config: DiffusionConfig, policy: PolicyConfig, action_dim: int, cond_dim: int
    ) -> DiffusionHead:
        net = build_backbone(policy, action_dim, cond_dim)
        return cls(action_dim, policy.horizon, cond_dim, net, train_steps=config.train_steps,
                   inference_steps=config.inference_steps, scheduler=config.scheduler,
                   prediction=config.prediction)

    @property
    def nfe(self) -> int:
        return self.inference_steps

    def loss(
        self, cond: torch.Tensor, actions: torch.Tensor, action_is_pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        noise = torch.randn_like(actions)
        steps = self.train_scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (actions.shape[0],), device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, t)
        target = noise if self.prediction == "epsilon" else actions
        return F.mse_loss(self.net(noisy, t, cond), target)

    def noise_levels(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alphas_cumprod = self.train_scheduler.alphas_cumprod.to(t.device)
        abar = alphas_cumprod[t.long()].reshape(*t.shape, 1, 1)
        return abar.sqrt(), (1 - abar).sqrt()

    def time_for_noise_levels(self, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The training step nearest in log signal-to-noise ratio ``log(alpha^2 / sigma^2)``.

        A whole step rather than an interpolated fraction: the network was trained on whole
        steps only, and ``noise_levels`` reads the schedule's table at them. The caller then
        uses that step's own levels, so the price is a noise level off by under half a step.
        """
        alphas_cumprod = self.train_scheduler.alphas_cumprod.to(alpha.device)
        table = alphas_cumprod.log() - (1 - alphas_cumprod).log()
        # Clamped: alpha = 0 (pure noise, flow time 1) must map to the last step, not to nan.
        wanted = 2 * (alpha.clamp(min=_TINY).log() - sigma.clamp(min=_TINY).log())[..., 0, 0]
        return (table - wanted[..., None]).abs().argmin(dim=-1)

    def same_interpolant(self, other: DenoisingHead) -> bool:
        return super().same_interpolant(other) and torch.equal(
            self.train_scheduler.alphas_cumprod, other.train_scheduler.alphas_cumprod
        )

    def time_grid(self, steps: int | None, t_start: float | None, device: torch.device) -> torch.Tensor:
        """The scheduler's timesteps, then -1 (a marker: the last step lands on clean data).

        DDPM steps evenly from ``t_start`` (default: the last training step) down to 0 with
        ``steps`` network calls, e.g. RTI's short lists. DDIM's grid is evenly spaced over
        the whole schedule (diffusers' DDIM derives each step's predecessor from that
        spacing): from ``t_start`` the spacing is chosen so that at most ``steps`` grid times
        lie at or below ``t_start``, and the solve starts at the highest of them.
        """
        n = self.inference_steps if steps is None else steps
        last = self.train_scheduler.config.num_train_timesteps - 1
        start = last if t_start is None else int(t_start)
        if not (1 <= n and 0 <= start <= last):
            raise ValueError(f"need steps >= 1 and 0 <= t_start <= {last}, got {n} and {t_start}")
        scheduler = self.sample_scheduler
        if isinstance(scheduler, DDPMScheduler):
            grid = torch.linspace(start, 0, min(n, start + 1)).round().long().unique_consecutive()
            scheduler.set_timesteps(timesteps=grid.tolist(), device=device)
        elif t_start is None:
            scheduler.set_timesteps(n, device=device)
        else:  # a spacing that puts n grid times (0, s, .., (n-1)s) at or below start
            spacing = math.ceil((start + 1) / n)
            scheduler.set_timesteps(max(1, (last + 1) // spacing), device=device)
        timesteps = scheduler.timesteps[scheduler.timesteps <= start]
        return torch.cat([timesteps, timesteps.new_full((1,), -1)])

    def prepare_step(self, t: torch.Tensor, t_next: torch.Tensor) -> DiffusionStep:
        """diffusers' DDIM (eta 0) or DDPM (fixed_small variance) coefficients for the step from
        ``t`` to ``t_next`` (-1: the clean end, where diffusers uses ``final_alpha_cumprod``
        or ``one``). The grid's ``t_next`` is the step diffusers' scheduler would go to."""
        scheduler = self.sample_scheduler
        alphas_cumprod = scheduler.alphas_cumprod
        alpha_prod_t = alphas_cumprod[int(t)]
        ddim = isinstance(scheduler, DDIMScheduler)
        clean_end = scheduler.final_alpha_cumprod if ddim else scheduler.one
        alpha_prod_t_prev = alphas_cumprod[int(t_next)] if t_next >= 0 else clean_end
        beta_prod_t = 1 - alpha_prod_t
        coefficients = dict(sqrt_alpha=alpha_prod_t ** (0.5), sqrt_beta=beta_prod_t ** (0.5))
        if ddim:  # eta = 0: no noise, the "direction pointing to x_t" has weight sqrt(1 - alpha_prev)
            return DiffusionStep(t, t_next, **coefficients, sample_coef=alpha_prod_t_prev ** (0.5),
                                 other_coef=(1 - alpha_prod_t_prev) ** (0.5), noise_std=None)
        beta_prod_t_prev = 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t
        variance = torch.clamp((1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t, min=1e-20)
        return DiffusionStep(
            t, t_next, **coefficients,
            sample_coef=(alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t,
            other_coef=current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t,
            noise_std=variance ** 0.5 if t > 0 else None,
        )

    def solver_step(
        self, field: Field, x: torch.Tensor, step: DiffusionStep, generator: Generators
    ) -> torch.Tensor:
        """diffusers' DDIM or DDPM ``step`` with the step's precomputed coefficients."""
        prediction = field(x, step.t)
        x0 = (x - step.sqrt_beta * prediction) / step.sqrt_alpha if self.prediction == "epsilon" else prediction
        config = self.sample_scheduler.config
        clipped = x0.clamp(-config.clip_sample_range, config.clip_sample_range) if config.clip_sample else x0
        if isinstance(self.sample_scheduler, DDIMScheduler):  # eps from the unclipped x0, as diffusers
            eps = prediction if self.prediction == "epsilon" else (x - step.sqrt_alpha * x0) / step.sqrt_beta
            return step.sample_coef * clipped + step.other_coef * eps
        x_prev = step.sample_coef * clipped + step.other_coef * x
        if step.noise_std is None:
            return x_prev
        noise = randn(x.shape, generator, device=x.device, dtype=x.dtype)  # a row per generator, as diffusers
        return x_prev + step.noise_std * noise
