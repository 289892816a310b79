"""Diffusion action head: denoise Gaussian noise into an action chunk (Diffusion Policy).

Training adds noise at a random diffusion step to the normalised chunk and regresses the
noise (epsilon prediction). Sampling runs diffusers' DDIM (few steps, deterministic) or
DDPM scheduler from pure noise. The schedulers come from diffusers, so their noise schedules
match what diffusion_policy and LeRobot users know.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from robo_policies.heads.base import ActionHead

SCHEDULERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}


class DiffusionHead(ActionHead):
    """Epsilon-prediction diffusion over action chunks.

    Args:
        net: denoiser ``net(x (B, Tp, A), t (B,), cond (B, C)) -> (B, Tp, A)``.
        train_steps: diffusion steps of the training noise schedule.
        inference_steps: denoising steps per sample (the head's ``nfe``).
        scheduler: ``"ddim"`` (deterministic, few steps) or ``"ddpm"`` (stochastic).
        beta_schedule: diffusers beta schedule name.
        clip_sample: clip predicted clean samples to [-1, 1] (actions are min-max normalised).
    """

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
    ) -> None:
        super().__init__(action_dim, horizon, cond_dim)
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose from {sorted(SCHEDULERS)}")
        if not 1 <= inference_steps <= train_steps:
            raise ValueError(
                f"need 1 <= inference_steps <= train_steps, got {inference_steps} and {train_steps}"
            )
        self.net = net
        schedule = dict(
            num_train_timesteps=train_steps,
            beta_schedule=beta_schedule,
            clip_sample=clip_sample,
            prediction_type="epsilon",
        )
        self.train_scheduler = DDPMScheduler(**schedule)
        self.sample_scheduler = SCHEDULERS[scheduler](**schedule)
        self.inference_steps = inference_steps

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
        return F.mse_loss(self.net(noisy, t, cond), noise)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        shape = (cond.shape[0], self.horizon, self.action_dim)
        x = torch.randn(shape, generator=generator, device=cond.device, dtype=cond.dtype)
        scheduler = self.sample_scheduler
        scheduler.set_timesteps(self.inference_steps, device=cond.device)
        for t in scheduler.timesteps:
            eps = self.net(x, t.expand(shape[0]), cond)
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
        return x
