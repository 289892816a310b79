"""A toy action head from outside the project: one module and one config file
(``configs/policy/toy.yaml``) are all a new head needs.

The toy head is rectified flow (it reuses ``FlowMatchingHead``'s loss, field and Euler
steps) on its own time grid: ``schedule_power`` p bends the even grid u = 1, .., 0 into
``t = start * u ** p``, so p > 1 spends more of the steps near the data. Composition and RTI
warm starts work for it because it is a ``DenoisingHead`` (``composes = "field"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robo_policies.heads import HeadConfig, register_head
from robo_policies.heads.base import BenchSampler
from robo_policies.heads.build import build_backbone
from robo_policies.heads.flow import FlowMatchingHead
from robo_policies.policy import PolicyConfig


@dataclass
class ToyConfig(HeadConfig):
    """Settings of the toy head (``policy=toy``: ``policy.head.<field>``)."""

    name: str = "toy"
    inference_steps: int = 3
    """Euler steps per model call."""
    schedule_power: float = 2.0
    """Bends the time grid: t = start * u ** schedule_power on an even grid u (1: flow's)."""


@register_head("toy", ToyConfig)
class ToyHead(FlowMatchingHead):
    """Rectified flow integrated on a power-law time grid (see the module docstring)."""

    bench_samplers = (BenchSampler("power", 3, {"inference_steps": 3}),)

    def __init__(self, action_dim: int, horizon: int, cond_dim: int, net: nn.Module,
                 inference_steps: int = 3, schedule_power: float = 2.0) -> None:
        super().__init__(action_dim, horizon, cond_dim, net, inference_steps=inference_steps)
        if schedule_power <= 0:
            raise ValueError(f"schedule_power must be > 0, got {schedule_power}")
        self.schedule_power = schedule_power

    @classmethod
    def from_config(cls, config: ToyConfig, policy: PolicyConfig, action_dim: int,
                    cond_dim: int) -> ToyHead:
        net = build_backbone(policy, action_dim, cond_dim)
        return cls(action_dim, policy.horizon, cond_dim, net, inference_steps=config.inference_steps,
                   schedule_power=config.schedule_power)

    def time_grid(self, steps: int | None, t_start: float | None, device: torch.device) -> torch.Tensor:
        even = super().time_grid(steps, t_start, device)
        start = even[0]
        return start * (even / start) ** self.schedule_power
