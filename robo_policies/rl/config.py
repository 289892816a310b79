"""Every hyperparameter of online fine-tuning, in one typed config (``robo finetune rl.*``).

The defaults are CPU-sized (2 cores, tens of thousands of env steps); the published settings
are presets in ``configs/rl/`` (``rl=expo_paper``, ``rl=parl_paper``, ``rl=rlpd_paper``) for GPU
machines. Action quantities (edit bound, gradient step) are in the policy's normalised action
space [-1, 1]; one decision is one executed chunk of Ta actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class RLConfig:
    """Hyperparameters shared by EXPO, PA-RL and the RLPD baseline, then per method."""

    gamma: float = 0.99
    """Discount per env step (a chunk of k steps is discounted by gamma^k)."""
    batch_size: int = 128
    """Transitions per gradient update."""
    offline_ratio: float = 0.5
    """Share of every batch drawn from the demonstrations (RLPD's 50/50)."""
    utd: int = 4
    """Update-to-data ratio: critic updates per decision (per executed chunk)."""
    start_steps: int = 5000
    """Env steps at the start that act with the base policy's own samples while the critic
    learns (EXPO's start_training): selecting with an untrained critic is a biased choice that
    lowers the start (measured: 46% -> 30% on arm_pick_place). Evaluations then use the base too."""
    actor_updates: int = 1
    """Policy-side updates (base policy, edit policy, actor, temperature) per decision."""
    critic_members: int = 5
    """Q-networks in the ensemble (10 in the papers; 5 halves PA-RL's mean-Q scoring on CPU)."""
    critic_subset: int = 2
    """Target = min over this many randomly drawn members."""
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """Widths of each critic's hidden layers (LayerNorm MLP)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    policy_lr: float = 3e-4
    """Learning rate of the base policy's own loss (EXPO's imitation, PA-RL's distillation)."""
    policy_ema: float = 0.005
    """Rate of the acting policy's moving average of the training base policy, per update."""
    inference_steps: int = 5
    """Solver steps of the base policy's head during fine-tuning (and in the saved policy)."""
    n_samples: int = 8
    """N: base-policy samples per state for acting and for the TD target."""
    sample_refresh_every: int = 5000
    """The TD target's policy samples are drawn once per transition and redrawn for the whole
    replay every this many env steps (the policy keeps changing; the denoiser then runs once
    per transition instead of inside every critic update)."""
    offline_critic_steps: Optional[int] = None
    """Critic updates on the demonstrations alone, with Cal-QL's conservative penalty, before
    the first env step (PA-RL's offline phase). The policy does not change; the critic's
    optimiser restarts when the online phase begins. None: the method's own, 5000 for PA-RL
    (measured on arm_pick_place: 52% at 15k env steps with it, 38% without) and 0 for EXPO;
    RLPD learns from scratch and refuses any."""
    cql_alpha: float = 0.05
    """Weight of Cal-QL's penalty in the offline phase (0.005 in PA-RL, whose returns are in
    the tens; Q-values of 0/1 success rewards need a larger weight for the same effect)."""
    cql_samples: int = 4
    """Cal-QL: uniform chunks, and policy samples at s and at s', per row (10 each in PA-RL)."""
    # -- EXPO --
    imitation_data: str = "offline"
    """EXPO: what the base policy keeps imitating: ``offline`` (the demonstrations' rows of each
    batch) or ``mixed`` (the whole batch, online chunks included, as the published code does).
    Measured on arm_pick_place from a 22% start: ``mixed`` imitated the long failed episodes
    and fell to 2% by 15k env steps."""
    n_edit: int = 8
    """EXPO: base samples that also get an edited copy (N + n_edit candidates)."""
    edit_scale: float = 0.05
    """EXPO: beta, the largest edit per action dimension."""
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """Widths of the Gaussian networks (EXPO's edit policy, RLPD's actor)."""
    actor_lr: float = 3e-4
    """Learning rate of the Gaussian networks."""
    initial_temperature: float = 1.0
    """Starting entropy weight alpha (EXPO's edit policy, RLPD's actor)."""
    temperature_lr: float = 3e-4
    """Learning rate of log alpha."""
    target_entropy_scale: float = 0.5
    """Target entropy = -scale * (chunk size); EXPO and RLPD use 0.5."""
    # -- PA-RL --
    top_k: int = 2
    """PA-RL: candidates kept after global optimisation (of N samples)."""
    refine_steps: int = 3
    """PA-RL: gradient-ascent steps on Q per kept candidate (local optimisation)."""
    refine_step_size: float = 0.1
    """PA-RL: step size of the local optimisation. Q-values of 0/1 success rewards have action
    gradients of about 0.3 (norm over a 48-D chunk), so 0.1 moves a chunk by up to ~0.03 per
    step, like EXPO's edits; 0.01 (1 step) barely moved it (the published 3e-4 suits returns in
    the tens)."""
    label_temperature: float = 0.05
    """PA-RL: the distillation label is drawn from softmax(Q / T) over the k candidates (T = 1
    is the published raw-Q softmax, whose returns are in the tens; 0/1 success rewards give Q
    differences of hundredths, where T = 1 is nearly uniform)."""
    distill_argmax: bool = False
    """PA-RL: distil the argmax candidate instead of a sample from softmax(Q) over the k (the
    published default; its raw-Q logits suit returns in the tens, and with 0/1 success
    rewards the softmax is nearly uniform). Measured on arm_pick_place with the CPU defaults:
    argmax labels from the young critic took the policy from 46% to 0% within 5k env steps."""
