"""Optimisation settings of a training run, kept apart from the trainer so that reading
configs (``robo --help``) does not import the training stack."""

from __future__ import annotations

from dataclasses import dataclass, field

from robo_policies.utils.errors import ConfigError


@dataclass
class TrainConfig:
    """Optimisation settings (``train.<key>=...``)."""

    steps: int = 3000
    """Gradient steps in total (across resumes)."""
    batch_size: int = 256
    """Windows (observations) per step, summed over all processes; the head trains on
    batch_size x policy.samples_per_obs noisy chunks (8 per window by default for image
    policies, whose recipes therefore use 64)."""
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
    """torch CPU threads per process (0: every core the process may use but one, so another
    busy program cannot stall the pool; utils/threads.py)."""
    loader_workers: int = -1
    """Processes reading batches ahead of the step (0: none; -1: one for a dataset with camera
    images, none for low-dim data, which is held in memory)."""
    device: str = "auto"
    """auto, cpu or cuda."""

    def __post_init__(self) -> None:
        """Range checks, each naming its key: a bad value fails before any data is read."""
        positive = ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints",
                    "eval_episodes", "lr")
        non_negative = ("warmup_steps", "eval_every", "threads", "grad_clip", "weight_decay")
        for key in (*positive, *non_negative, "val_ratio", "ema_max_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"train.{key}={value!r} must be a number")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ConfigError(f"train.{key}={getattr(self, key)} must be > 0")
        for key in non_negative:
            if not getattr(self, key) >= 0:
                raise ConfigError(f"train.{key}={getattr(self, key)} must be >= 0")
        if not 0 <= self.val_ratio < 1:
            raise ConfigError(f"train.val_ratio={self.val_ratio} must be in [0, 1)")
        if not 0 <= self.ema_max_decay <= 1:
            raise ConfigError(f"train.ema_max_decay={self.ema_max_decay} must be in [0, 1]")
        if self.loader_workers < -1:
            raise ConfigError(f"train.loader_workers={self.loader_workers} must be >= -1")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(f"train.betas={list(self.betas)} must be two values in [0, 1)")
