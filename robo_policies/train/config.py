"""Optimisation settings of a training run, kept apart from the trainer so that reading
configs (``robo --help``) does not import the training stack."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Optimisation settings (``train.<key>=...``)."""

    steps: int = 3000
    """Gradient steps in total (across resumes)."""
    batch_size: int = 256
    """Windows per step, summed over all processes."""
    lr: float = 1e-3
    """Peak AdamW learning rate (the published 1e-4 suits the much larger GPU-size UNet)."""
    weight_decay: float = 1e-6
    """AdamW weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.95, 0.999])
    """AdamW betas."""
    warmup_steps: int = 100
    """Linear warm-up before the cosine decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0: off)."""
    ema_power: float = 0.75
    """EMA warm-up power: decay = 1 - (1 + step)^-power, capped by ema_max_decay."""
    ema_max_decay: float = 0.9999
    """Upper bound of the EMA decay."""
    val_ratio: float = 0.05
    """Fraction of episodes held out for the validation loss."""
    log_every: int = 100
    """Steps between logged losses (TensorBoard, metrics.jsonl)."""
    checkpoint_every: int = 500
    """Steps between resumable checkpoints."""
    eval_every: int = 0
    """Steps between evaluations of the EMA policy in the dataset's task (0: off)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation (seeds 100000+, unseen in collection)."""
    keep_checkpoints: int = 2
    """Resumable checkpoints kept on disk."""
    threads: int = 0
    """torch CPU threads per process (0: torch's default)."""
    device: str = "auto"
    """auto, cpu or cuda."""
