"""Training windows cut from episodes: ``To`` observations and ``Tp`` actions around a step.

For an anchor step ``t`` (the latest observation), a key with offsets ``o_0..o_k`` reads the
rows ``t + o_i``. Rows that fall outside ``t``'s episode repeat the episode's first or last
row (edge padding) and are flagged in ``<key>_is_pad``, so a loss can ignore them and no
window ever mixes two episodes. The default offsets follow diffusion_policy's convention:
observations ``t-To+1 .. t`` and actions ``t-To+1 .. t-To+Tp``, of which the policy executes
those from ``t`` on.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from robo_policies.utils.errors import ConfigError, DatasetKeyError


def episode_split(
    n_episodes: int, val_ratio: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split episode indices into (train, val) at random, whole episodes only.

    With ``val_ratio > 0`` and at least two episodes, validation gets at least one episode
    and training keeps at least one.
    """
    if not 0.0 <= val_ratio < 1.0:
        raise ConfigError(f"val_ratio must be in [0, 1), got {val_ratio}")
    n_val = int(round(n_episodes * val_ratio))
    if val_ratio > 0 and n_episodes > 1:
        n_val = min(max(n_val, 1), n_episodes - 1)
    order = np.random.default_rng(seed).permutation(n_episodes)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def window_offsets(n_obs_steps: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(observation offsets, action offsets) relative to the anchor step, DP convention."""
    if n_obs_steps < 1 or horizon < n_obs_steps:
        raise ValueError(
            f"need 1 <= n_obs_steps <= horizon, got n_obs_steps={n_obs_steps}, horizon={horizon}"
        )
    first = -(n_obs_steps - 1)
    return np.arange(first, 1), np.arange(first, first + horizon)


class SequenceSampler:
    """Windows over the chosen episodes of a buffer, one per step of each episode.

    Args:
        arrays: per-step arrays (numpy, or zarr arrays to stream from disk), all indexed by
            the same concatenated time axis.
        episode_ends: exclusive end index of each episode (``ReplayBuffer.episode_ends``).
        key_offsets: for each key to read, its step offsets relative to the anchor.
        episodes: indices of the episodes to draw windows from (default: all).
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        episode_ends: np.ndarray,
        key_offsets: Mapping[str, Sequence[int]],
        episodes: Sequence[int] | None = None,
    ) -> None:
        missing = sorted(set(key_offsets) - set(arrays))
        if missing:
            raise DatasetKeyError(f"no array for keys {missing}; available: {sorted(arrays)}")
        ends = np.asarray(episode_ends, dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        chosen = np.arange(len(ends)) if episodes is None else np.asarray(episodes, dtype=np.int64)
        lengths = ends[chosen] - starts[chosen]
        self.arrays = arrays
        self.key_offsets = {key: np.asarray(off, dtype=np.int64) for key, off in key_offsets.items()}
        # One anchor per step of every chosen episode, with that episode's bounds.
        spans = [np.arange(starts[e], ends[e]) for e in chosen]
        self.anchor = np.concatenate([np.zeros(0, dtype=np.int64), *spans])
        self.episode_start = np.repeat(starts[chosen], lengths)
        self.episode_end = np.repeat(ends[chosen], lengths)

    def __len__(self) -> int:
        return len(self.anchor)

    def indices(self, i: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(row index, is_pad) of shape (len(i), n_offsets) for windows ``i`` of ``key``."""
        rows = self.anchor[i, None] + self.key_offsets[key][None, :]
        first, last = self.episode_start[i, None], self.episode_end[i, None] - 1
        return np.clip(rows, first, last), (rows < first) | (rows > last)

    def sample(self, i: int | np.ndarray) -> dict[str, np.ndarray]:
        """Window(s) ``i``: ``{key: (B, n_offsets, ...), key_is_pad: (B, n_offsets)}``.

        A scalar ``i`` returns arrays without the batch dimension.
        """
        batch = np.atleast_1d(np.asarray(i, dtype=np.int64))
        if batch.size and (batch.min() < -len(self) or batch.max() >= len(self)):
            raise IndexError(f"window index out of range for {len(self)} windows")
        out: dict[str, np.ndarray] = {}
        for key in self.key_offsets:
            rows, is_pad = self.indices(batch, key)
            out[key] = _gather(self.arrays[key], rows)
            out[f"{key}_is_pad"] = is_pad
        if np.ndim(i) == 0:
            out = {key: value[0] for key, value in out.items()}
        return out


def _gather(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` for a (B, K) index, reading one contiguous span per window.

    Numpy arrays take fancy indexing directly; other arrays (zarr) are read span by span,
    so only the rows a window touches leave the disk.
    """
    if isinstance(array, np.ndarray):
        return array[rows]
    windows = []
    for window_rows in rows:
        lo, hi = int(window_rows.min()), int(window_rows.max()) + 1
        windows.append(np.asarray(array[lo:hi])[window_rows - lo])
    return np.stack(windows)
