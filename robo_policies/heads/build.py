"""Build the action head a ``PolicyConfig`` names, with its backbone network.

The only place that maps head names to classes: the policy, trainer and CLI pass the
config through, so switching head is a config change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from robo_policies.heads.base import ActionHead
from robo_policies.heads.diffusion import DiffusionHead
from robo_policies.heads.energy import EnergyHead
from robo_policies.heads.flow import FlowMatchingHead
from robo_policies.heads.mlp_bc import MLPBCHead
from robo_policies.nets import ConditionalUnet1D, MLPResNetDenoiser

if TYPE_CHECKING:
    from robo_policies.policy import PolicyConfig

HEADS = ("diffusion", "flow", "energy", "mlp_bc")


def build_head(config: PolicyConfig, action_dim: int, cond_dim: int) -> ActionHead:
    """The action head named by ``config.head``."""
    if config.head == "mlp_bc":
        return MLPBCHead(action_dim, config.horizon, cond_dim, config.hidden_dim, config.n_blocks)
    if config.head not in HEADS:
        raise ValueError(f"unknown policy head {config.head!r}; choose from {list(HEADS)}")
    net = build_backbone(config, action_dim, cond_dim)
    if config.head == "diffusion":
        return DiffusionHead(
            action_dim, config.horizon, cond_dim, net,
            train_steps=config.train_steps, inference_steps=config.inference_steps,
            scheduler=config.scheduler, prediction=config.prediction,
        )
    if config.head == "flow":
        return FlowMatchingHead(
            action_dim, config.horizon, cond_dim, net, inference_steps=config.inference_steps,
            solver=config.flow_solver, time_sampling=config.flow_time_sampling,
        )
    train_min, train_random = config.energy_train_steps
    return EnergyHead(
        action_dim, config.horizon, cond_dim, net,
        inference_steps=config.inference_steps, min_grad_norm=config.energy_min_grad_norm,
        train_steps_min=train_min, train_steps_random=train_random,
        step_size=config.energy_step_size, max_step_size=config.energy_max_step_size,
        langevin_sigma=tuple(config.energy_langevin_sigma), best_of=config.energy_best_of,
    )


def build_backbone(config: PolicyConfig, action_dim: int, cond_dim: int) -> nn.Module:
    """The chunk-shaped network ``net(x, t, cond)`` a generative head wraps."""
    if config.net == "unet":
        return ConditionalUnet1D(
            action_dim, cond_dim, down_dims=tuple(config.down_dims),
            kernel_size=config.kernel_size, time_dim=config.time_dim,
        )
    if config.net == "mlp":
        return MLPResNetDenoiser(
            action_dim, config.horizon, cond_dim, hidden_dim=config.hidden_dim,
            n_blocks=config.n_blocks, time_dim=config.time_dim,
        )
    raise ValueError(f"unknown backbone net {config.net!r}; choose unet or mlp")
