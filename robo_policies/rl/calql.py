"""Cal-QL's conservative penalty (Nakamoto et al., 2023), for pre-training a critic offline.

A critic trained by TD on demonstrations alone overrates actions it has never seen, and the
first online steps then chase those errors. CQL adds ``alpha * (logsumexp_i Q(s, a_i) -
Q(s, a_data))``: it pushes down the Q-values of candidate actions (uniform random ones and the
policy's own samples) and up those of the demonstrated actions. Cal-QL floors the policy
candidates' values at the Monte-Carlo return of the demonstration from ``s``, so the critic
is conservative but never below what the demonstrator achieved, which is what lets
fine-tuning start without the dip that plain CQL pre-training causes.
"""

from __future__ import annotations

import torch

from robo_policies.rl.critic import CriticEnsemble


def calql_penalty(critic: CriticEnsemble, obs: torch.Tensor, data_action: torch.Tensor,
                  random_actions: torch.Tensor, policy_actions: torch.Tensor,
                  mc_return: torch.Tensor) -> torch.Tensor:
    """Mean over members and rows of ``logsumexp(Q(s, candidates)) - Q(s, a_data)``.

    Args:
        obs: flat observations (B, O); data_action: the demonstrated chunks (B, D).
        random_actions: uniform candidates (R, B, D); policy_actions: the policy's samples
            (P, B, D), at ``s`` or ``s'`` but all scored at ``s`` (as in CQL).
        mc_return: the Monte-Carlo return from each row's state (B,), the floor of the
            policy candidates' values.
    """
    candidates = torch.cat([random_actions, policy_actions])  # (R + P, B, D)
    n, batch, dim = candidates.shape
    q = critic(obs.repeat(n, 1), candidates.reshape(n * batch, dim)).reshape(-1, n, batch)  # (E, N, B)
    floor = mc_return.to(q.dtype)[None, None]
    calibrated = torch.cat([q[:, : len(random_actions)], torch.maximum(q[:, len(random_actions):], floor)], dim=1)
    data_q = critic(obs, data_action)  # (E, B)
    return (torch.logsumexp(calibrated, dim=1) - data_q).mean()
