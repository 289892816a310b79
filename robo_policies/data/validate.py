"""Whole-dataset checks behind ``robo dataset validate`` and ``robo dataset info``.

``ReplayBuffer.open`` checks structure (groups, ``episode_ends``, array lengths). This module
goes further: it reads every chunk of every array (a corrupt or truncated chunk fails to
decode), rejects NaN and inf values, and requires the ``action`` key that every trainer reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robo_policies.data.replay_buffer import DatasetError, ReplayBuffer, decoded

ACTION_KEY = "action"


@dataclass
class KeySummary:
    """Shape, dtype and value range of one per-step array."""

    shape: tuple[int, ...]
    dtype: str
    min: np.ndarray | None = None
    max: np.ndarray | None = None


@dataclass
class DatasetSummary:
    """What ``robo dataset info`` prints."""

    path: str
    n_episodes: int
    n_steps: int
    episode_lengths: np.ndarray
    keys: dict[str, KeySummary] = field(default_factory=dict)
    meta_keys: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    def format(self) -> str:
        """A human-readable multi-line report."""
        lengths = self.episode_lengths
        lines = [
            f"dataset   {self.path}",
            f"episodes  {self.n_episodes}",
            f"steps     {self.n_steps}",
        ]
        if len(lengths):
            lines.append(
                f"lengths   min {lengths.min()}  mean {lengths.mean():.1f}  max {lengths.max()}"
            )
        lines.append("keys")
        for key, info in self.keys.items():
            lines.append(f"  {key:<24} {str(info.shape):<16} {info.dtype}")
        if self.meta_keys:
            lines.append(f"per-episode meta/: {', '.join(self.meta_keys)}")
        action = self.keys.get(ACTION_KEY)
        if action is not None and action.min is not None:
            lines.append("action range (per dimension)")
            lines.append(f"  min {np.array2string(action.min, precision=3)}")
            lines.append(f"  max {np.array2string(action.max, precision=3)}")
        for name, value in self.attrs.items():
            lines.append(f"attr {name}: {value}")
        return "\n".join(lines)


def summarize_dataset(path: str | Path, strict: bool = False) -> DatasetSummary:
    """Read a whole dataset and describe it.

    With ``strict`` (``robo dataset validate``) also reject a missing ``data/action`` and
    NaN/inf values; either way a structural problem or an undecodable chunk raises
    :class:`DatasetError` naming the first problem.
    """
    buffer = ReplayBuffer.open(path, mode="r")
    if strict and buffer.n_episodes == 0:
        raise DatasetError(f"{path}: no episodes (meta/episode_ends is empty); nothing to train on")
    if strict and ACTION_KEY not in buffer:
        raise DatasetError(f"{path}: missing key 'data/{ACTION_KEY}' (keys: {buffer.keys})")
    summary = DatasetSummary(
        path=str(path),
        n_episodes=buffer.n_episodes,
        n_steps=buffer.n_steps,
        episode_lengths=buffer.episode_lengths,
        meta_keys=buffer.meta_keys,
        attrs=buffer.attrs,
    )
    for key in buffer.keys:
        summary.keys[key] = _scan_array(buffer, key, check_finite=strict)
    for name in buffer.meta_keys:
        decoded(buffer.location, f"meta/{name}", lambda name=name: buffer.meta(name))
    return summary


def validate_dataset(path: str | Path) -> DatasetSummary:
    """Check a whole dataset; raise :class:`DatasetError` naming the first problem."""
    return summarize_dataset(path, strict=True)


def _scan_array(buffer: ReplayBuffer, key: str, check_finite: bool) -> KeySummary:
    """Decode every chunk of ``data/<key>`` in the episodes' range; find NaN/inf and the range."""
    array = buffer[key]
    summary = KeySummary(shape=tuple(array.shape[1:]), dtype=str(array.dtype))
    numeric = np.issubdtype(array.dtype, np.number)
    step = array.chunks[0]
    for begin in range(0, buffer.n_steps, step):
        end = min(begin + step, buffer.n_steps)
        block = decoded(buffer.location, f"data/{key}", lambda: array[begin:end])
        if not numeric or block.size == 0:
            continue
        flat = block.reshape(len(block), -1)
        if check_finite:
            _require_finite_block(flat, begin, key, buffer.location, buffer.episode_ends)
        lo, hi = flat.min(0), flat.max(0)
        summary.min = lo if summary.min is None else np.minimum(summary.min, lo)
        summary.max = hi if summary.max is None else np.maximum(summary.max, hi)
    return summary


def require_finite(arrays: dict[str, np.ndarray], location: str, episode_ends: np.ndarray) -> None:
    """Raise :class:`DatasetError` naming key, step and episode of the first NaN/inf in the
    floating-point ``arrays`` (in-memory rows of ``data/<key>``, episodes concatenated)."""
    for key, array in arrays.items():
        array = np.asarray(array)
        if len(array):
            _require_finite_block(array.reshape(len(array), -1), 0, key, location, episode_ends)


def _require_finite_block(flat: np.ndarray, begin: int, key: str, location: str,
                          episode_ends: np.ndarray) -> None:
    """The NaN/inf check of rows ``begin:begin+len(flat)`` of ``data/<key>``, flattened per row."""
    if not np.issubdtype(flat.dtype, np.floating) or np.isfinite(flat).all():
        return
    bad_rows = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    row = begin + int(bad_rows[0])
    episode = int(np.searchsorted(episode_ends, row, side="right"))
    value = flat[bad_rows[0]][~np.isfinite(flat[bad_rows[0]])][0]
    raise DatasetError(f"{location}: 'data/{key}' has {value} at step {row} (episode {episode})")


