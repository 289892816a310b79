"""The one-step TD target, with the episode's end handled the way the MDP means it."""

from __future__ import annotations

import torch


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_value: torch.Tensor,
              gamma: float) -> torch.Tensor:
    """``r + gamma * (1 - terminated) * V(s')``.

    Only a true termination (success, failure the task defines) stops the bootstrap. A time
    limit (Gymnasium's ``truncated``) does not: the state after it still has a future, and
    treating it as terminal teaches the critic that the clock is part of the state.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    return reward + gamma * (1.0 - terminated.to(reward.dtype)) * next_value
