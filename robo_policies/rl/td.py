"""The TD target, with the episode's end handled the way the MDP means it."""

from __future__ import annotations

import torch


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_value: torch.Tensor,
              discount: float | torch.Tensor) -> torch.Tensor:
    """``r + discount * (1 - terminated) * V(s')``.

    ``discount`` is gamma for one-step transitions, or per row gamma^k for a chunk of k steps
    (k < Ta where a time limit cut the chunk short). Only a true termination (success, a
    failure the task defines) stops the bootstrap. A time limit (Gymnasium's ``truncated``)
    does not: the state after it still has a future, and treating it as terminal teaches the
    critic that the clock is part of the state.
    """
    discount = torch.as_tensor(discount, dtype=reward.dtype)
    if discount.numel() and not bool(((discount >= 0) & (discount <= 1)).all()):
        raise ValueError(f"discount must be in [0, 1], got {discount}")
    return reward + discount * (1.0 - terminated.to(reward.dtype)) * next_value
