"""Transition replay for online fine-tuning, and batches that mix offline demonstrations in.

RLPD's recipe, used by EXPO and PA-RL too: every update batch takes a fixed share of rows
from the offline demonstrations and the rest from the online replay, so the demonstrations
keep anchoring the critic and the policy however much online data accumulates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class TransitionBuffer:
    """A fixed-capacity ring buffer of transitions with named fields (the oldest are
    overwritten once it is full).

    Args:
        shapes: each field's per-transition shape, e.g. ``{"reward": (), "obs": (10,)}``.
        capacity: transitions kept.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.data = {key: np.zeros((capacity, *shape), np.float32) for key, shape in shapes.items()}
        self.size = 0
        self._next = 0

    def __len__(self) -> int:
        return self.size

    def add(self, transition: Mapping[str, np.ndarray | float | bool]) -> None:
        """Store one transition (a value for every field)."""
        self.extend({key: np.asarray(value, np.float32)[None] for key, value in transition.items()})

    def extend(self, transitions: Mapping[str, np.ndarray]) -> None:
        """Store a batch of transitions: every field as an array with a leading count."""
        missing = [key for key in self.data if key not in transitions]
        if missing:
            raise KeyError(f"transition is missing {missing}; needs {list(self.data)}")
        count = len(transitions[next(iter(self.data))])
        for key, store in self.data.items():
            value = np.asarray(transitions[key], dtype=np.float32)
            if value.shape != (count, *store.shape[1:]):
                raise ValueError(f"transition[{key!r}] has shape {value.shape[1:]}, expected "
                                 f"{store.shape[1:]}")
        rows = (self._next + np.arange(count)) % self.capacity
        for key, store in self.data.items():
            store[rows] = transitions[key]
        self._next = int((self._next + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        rows = rng.integers(0, self.size, size=n)
        return {key: value[rows] for key, value in self.data.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """What ``load_state_dict`` needs to restore the buffer (for resuming a run)."""
        return {**{key: value[: self.size] for key, value in self.data.items()},
                "_cursor": np.array([self._next, self.size])}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        cursor, size = (int(v) for v in state["_cursor"])
        for key, store in self.data.items():
            store[:size] = state[key]
        self._next, self.size = cursor, size


def mixed_batch(offline: TransitionBuffer, online: TransitionBuffer, batch_size: int,
                offline_ratio: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``round(batch_size * offline_ratio)`` offline rows, then the rest from ``online``;
    the field ``offline`` marks which rows are demonstrations (1) or online data (0).

    While the online buffer is still empty the whole batch is offline.
    """
    if not 0.0 <= offline_ratio <= 1.0:
        raise ValueError(f"offline_ratio must be in [0, 1], got {offline_ratio}")
    n_offline = batch_size if len(online) == 0 else round(batch_size * offline_ratio)
    parts = [buffer.sample(n, rng) for buffer, n in ((offline, n_offline), (online, batch_size - n_offline)) if n]
    batch = {key: np.concatenate([part[key] for part in parts]) for key in offline.data}
    batch["offline"] = (np.arange(batch_size) < n_offline).astype(np.float32)
    return batch
