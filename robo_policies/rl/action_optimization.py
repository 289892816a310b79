"""PA-RL's action optimisation: better actions found with the critic, to act with and to
distil back into the policy with its own loss.

1. *Global*: sample N actions from the base policy and keep the k the critic ensemble's mean
   scores highest.
2. *Local*: a few steps of gradient ascent on the ensemble mean (or min) from each kept
   action, clipped to the action bounds, keeping each candidate's best iterate (a step can
   overshoot; the kept action is never worse than where it started).

The argmax of the result acts in the environment and is the next action of the TD backup.
Actions live in the policy's normalised space [-1, 1].
"""

from __future__ import annotations

from typing import Protocol

import torch


class EnsembleQ(Protocol):
    """What optimisation needs from a critic (``CriticEnsemble`` qualifies)."""

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q-values (E, B) of each member."""


def score_actions(critic: EnsembleQ, obs: torch.Tensor, actions: torch.Tensor, use_min: bool = False) -> torch.Tensor:
    """(K, B) ensemble mean (or min) for candidates (K, B, A) at observations (B, O)."""
    k, batch, _ = actions.shape
    q = critic(obs.repeat(k, 1), actions.reshape(k * batch, -1))
    q = q.min(dim=0).values if use_min else q.mean(dim=0)
    return q.reshape(k, batch)


@torch.no_grad()
def top_k_indices(obs: torch.Tensor, samples: torch.Tensor, critic: EnsembleQ, k: int) -> torch.Tensor:
    """Which ``k`` of the N samples (N, B, A) have the highest ensemble-mean Q, best first:
    (k, B) indices into N."""
    if not 1 <= k <= samples.shape[0]:
        raise ValueError(f"k must be in [1, {samples.shape[0]}], got {k}")
    return score_actions(critic, obs, samples, use_min=False).topk(k, dim=0).indices


def top_k_actions(obs: torch.Tensor, samples: torch.Tensor, critic: EnsembleQ, k: int) -> torch.Tensor:
    """The ``k`` of the N samples (N, B, A) with the highest ensemble-mean Q: (k, B, A)."""
    best = top_k_indices(obs, samples, critic, k)
    return samples[best, torch.arange(samples.shape[1])]


def refine_actions(obs: torch.Tensor, actions: torch.Tensor, critic: EnsembleQ, steps: int,
                   step_size: float, use_min: bool = False) -> torch.Tensor:
    """``steps`` clipped gradient-ascent steps on Q from each candidate (K, B, A); returns each
    candidate's best iterate (K, B, A), detached."""
    if steps < 0 or step_size <= 0:
        raise ValueError(f"need steps >= 0 and step_size > 0, got {steps} and {step_size}")
    obs = obs.detach()
    current = actions.detach().clone()
    best = current.clone()
    with torch.no_grad():
        best_q = score_actions(critic, obs, best, use_min)
    for _ in range(steps):
        with torch.enable_grad():  # also when called under no_grad (the TD target)
            current.requires_grad_(True)
            q = score_actions(critic, obs, current, use_min)
            (grad,) = torch.autograd.grad(q.sum(), current)
        with torch.no_grad():
            current = (current + step_size * grad).clamp(-1.0, 1.0)
            q = score_actions(critic, obs, current, use_min)
            better = q > best_q
            best[better] = current[better]
            best_q = torch.where(better, q, best_q)
    return best


@torch.no_grad()
def best_action(obs: torch.Tensor, candidates: torch.Tensor, critic: EnsembleQ) -> torch.Tensor:
    """The candidate (K, B, A) with the highest ensemble-mean Q per observation: (B, A)."""
    return top_k_actions(obs, candidates, critic, 1)[0]
