"""EXPO's edit policy and on-the-fly action selection.

EXPO keeps the expressive base policy (any head) as an imitation learner and improves its
actions at test time in two cheap ways: a light tanh-Gaussian *edit policy* proposes a
bounded change ``a + beta * u`` (u in (-1, 1)) to a base sample, and the *on-the-fly* action
is the argmax of the critic over N base samples and their edits. The same selection acts in
the environment and picks the next action of the TD backup.

Actions live in the policy's normalised space [-1, 1]; edited actions are clipped to it (the
published code leaves them unclipped).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from robo_policies.rl.gaussian import TanhGaussian

class ScoresActions(Protocol):
    """What selection needs from a critic (``CriticEnsemble`` qualifies)."""

    def subset_min(self, obs: torch.Tensor, action: torch.Tensor, size: int,
                   generator: torch.Generator | None = None) -> torch.Tensor: ...


class EditPolicy(nn.Module):
    """pi_e(u | s, a): a tanh-Gaussian over edits, scaled by ``edit_scale`` (beta).

    Args:
        obs_dim, action_dim: sizes of the flat observation and action.
        edit_scale: beta, the largest edit per action dimension (normalised units).
        hidden: widths of the MLP's hidden layers (LayerNorm, ReLU).
    """

    def __init__(self, obs_dim: int, action_dim: int, edit_scale: float = 0.05,
                 hidden: tuple[int, ...] = (256, 256, 256)) -> None:
        super().__init__()
        if edit_scale <= 0:
            raise ValueError(f"edit_scale must be > 0, got {edit_scale}")
        self.edit_scale = edit_scale
        self.gaussian = TanhGaussian(obs_dim + action_dim, action_dim, hidden)

    def forward(self, obs: torch.Tensor, action: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(edited action clipped to [-1, 1], log-probability of the unscaled edit u) for (B, .)
        inputs.

        The sample is reparameterised, so the edit policy's loss can differentiate through
        the critic. The log-probability is u's, without the published code's ``- d log beta``:
        that constant changes no gradient, but it caps the entropy at d log(2 beta), below
        the -d/2 target for beta < 0.3, so the temperature grows without bound and the edits
        end up uniform noise. Measured on u, the target is reachable and edits follow Q.
        """
        u, log_prob = self.gaussian(torch.cat([obs, action], dim=-1), generator)
        return (action + self.edit_scale * u).clamp(-1.0, 1.0), log_prob


@torch.no_grad()
def on_the_fly_action(
    obs: torch.Tensor,
    base_samples: torch.Tensor,
    critic: ScoresActions,
    edit_policy: EditPolicy | None = None,
    n_edit: int = 0,
    subset_size: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The argmax of ``critic`` over N base samples (N, B, A) and edits of the first
    ``n_edit`` of them: (B, A).

    Every candidate is scored by the minimum over one random subset of critic members (drawn
    once per call, so all candidates of a state meet the same critics).
    """
    n, batch, _ = base_samples.shape
    candidates = base_samples
    if edit_policy is not None and n_edit > 0:
        if n_edit > n:
            raise ValueError(f"n_edit={n_edit} exceeds the {n} base samples")
        to_edit = base_samples[:n_edit].reshape(n_edit * batch, -1)
        edited, _ = edit_policy(obs.repeat(n_edit, 1), to_edit, generator)
        candidates = torch.cat([base_samples, edited.reshape(n_edit, batch, -1)])
    count = candidates.shape[0]
    scores = critic.subset_min(obs.repeat(count, 1), candidates.reshape(count * batch, -1),
                               subset_size, generator).reshape(count, batch)
    best = scores.argmax(dim=0)
    return candidates[best, torch.arange(batch)]
