"""The settings every fine-tuning method shares, and the parts some of them share.

Each algorithm has its own typed config (``ExpoConfig`` in ``expo.py``, ``ParlConfig`` in
``parl.py``, ...), built from ``RLConfig`` plus the groups below that it uses, and registered
with it (``registry.register_algorithm``): ``robo finetune algo=<name>`` chooses it and
``rl.<setting>=...`` sets its fields, so a setting the chosen method does not have is an
error. The defaults are CPU-sized (2 cores, tens of thousands of env steps); the published
settings are presets in ``configs/rl/`` (``rl=expo_paper``, ``rl=parl_paper``,
``rl=rlpd_paper``) for GPU machines. Action quantities (edit bound, gradient step) are in the
policy's normalised action space [-1, 1]; one decision is one executed chunk of Ta actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RLConfig:
    """Settings of the online loop, the critic ensemble and the base policy, for every method."""

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
    lowers the start. Evaluations then use the base too."""
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
    """Solver steps of the base policy's head during fine-tuning (and in the saved policy);
    a head without solver steps (mlp_bc) ignores it."""
    n_samples: int = 8
    """N: base-policy samples per state for acting and for the TD target."""
    sample_refresh_every: int = 5000
    """The TD target's policy samples are drawn once per transition and redrawn for the whole
    replay every this many env steps (the policy keeps changing; the denoiser then runs once
    per transition instead of inside every critic update)."""


@dataclass
class CalQLConfig(RLConfig):
    """Settings of methods whose critic can first learn offline (``calql.py``)."""

    offline_critic_steps: int = 0
    """Critic updates on the demonstrations alone, with Cal-QL's conservative penalty, before
    the first env step (PA-RL's offline phase). The policy does not change; the critic's
    optimiser restarts when the online phase begins."""
    cql_alpha: float = 0.05
    """Weight of Cal-QL's penalty in the offline phase (0.005 in PA-RL, whose returns are in
    the tens; Q-values of 0/1 success rewards need a larger weight for the same effect)."""
    cql_samples: int = 4
    """Cal-QL: uniform chunks, and policy samples at s and at s', per row (10 each in PA-RL)."""


@dataclass
class GaussianConfig(RLConfig):
    """Settings of methods that learn a tanh-Gaussian with a tuned entropy temperature
    (``gaussian.py``: EXPO's edit policy, RLPD's actor)."""

    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """Widths of the Gaussian network's hidden layers."""
    actor_lr: float = 3e-4
    """Learning rate of the Gaussian network."""
    initial_temperature: float = 1.0
    """Starting entropy weight alpha."""
    temperature_lr: float = 3e-4
    """Learning rate of log alpha."""
    target_entropy_scale: float = 0.5
    """Target entropy = -scale * (chunk size); EXPO and RLPD use 0.5."""
