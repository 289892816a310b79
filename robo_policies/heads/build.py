"""Build the action head a ``PolicyConfig`` names (``heads.registry``), with its backbone.

The policy, trainer and CLI pass the config through, so switching head is a config change;
each head class builds itself from its own config (``ActionHead.from_config``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from robo_policies.heads.base import ActionHead
from robo_policies.heads.registry import head_class
from robo_policies.nets import ConditionalUnet1D, MLPResNetDenoiser
from robo_policies.utils.errors import ConfigError

if TYPE_CHECKING:
    from robo_policies.policy import PolicyConfig


def build_head(config: PolicyConfig, action_dim: int, cond_dim: int) -> ActionHead:
    """The action head named by ``config.head.name``, built from ``config.head``."""
    return head_class(config.head.name).from_config(config.head, config, action_dim, cond_dim)


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
    raise ConfigError(f"unknown backbone net {config.net!r}; choose unet or mlp")
