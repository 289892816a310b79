"""Transition replay for online fine-tuning, and batches that mix offline demonstrations in.

RLPD's recipe, used by EXPO and PA-RL too: every update batch takes a fixed share of rows
from the offline demonstrations and the rest from the online replay, so the demonstrations
keep anchoring the critic and the policy however much online data accumulates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")
"""What a transition holds; ``terminated`` is a true termination, never a time limit."""


class TransitionBuffer:
    """A fixed-capacity ring buffer of flat transitions (the oldest are overwritten).

    Args:
        obs_dim, action_dim: sizes of the flat observation and action.
        capacity: transitions kept.
    """

    def __init__(self, obs_dim: int, action_dim: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.data = {
            "obs": np.zeros((capacity, obs_dim), np.float32),
            "action": np.zeros((capacity, action_dim), np.float32),
            "reward": np.zeros(capacity, np.float32),
            "next_obs": np.zeros((capacity, obs_dim), np.float32),
            "terminated": np.zeros(capacity, np.float32),
        }
        self.size = 0
        self._next = 0

    def __len__(self) -> int:
        return self.size

    def add(self, transition: Mapping[str, np.ndarray | float | bool]) -> None:
        """Store one transition with the keys of ``FIELDS``."""
        missing = [key for key in FIELDS if key not in transition]
        if missing:
            raise KeyError(f"transition is missing {missing}; needs {list(FIELDS)}")
        for key in FIELDS:
            value = np.asarray(transition[key], dtype=np.float32)
            if value.shape != self.data[key].shape[1:]:
                raise ValueError(f"transition[{key!r}] has shape {value.shape}, expected "
                                 f"{self.data[key].shape[1:]}")
            self.data[key][self._next] = value
        self._next = (self._next + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        rows = rng.integers(0, self.size, size=n)
        return {key: value[rows] for key, value in self.data.items()}


def mixed_batch(offline: TransitionBuffer, online: TransitionBuffer, batch_size: int,
                offline_ratio: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``round(batch_size * offline_ratio)`` offline rows, then the rest from ``online``.

    While the online buffer is still empty the whole batch is offline.
    """
    if not 0.0 <= offline_ratio <= 1.0:
        raise ValueError(f"offline_ratio must be in [0, 1], got {offline_ratio}")
    n_offline = batch_size if len(online) == 0 else round(batch_size * offline_ratio)
    parts = [buffer.sample(n, rng) for buffer, n in ((offline, n_offline), (online, batch_size - n_offline)) if n]
    return {key: np.concatenate([part[key] for part in parts]) for key in FIELDS}
