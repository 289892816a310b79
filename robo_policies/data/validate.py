"""Whole-dataset checks behind ``robo dataset validate`` and ``robo dataset info``.

``ReplayBuffer.open`` checks structure (groups, ``episode_ends``, array lengths). This module
goes further: it reads every chunk of every array (a corrupt or truncated chunk fails to
decode, a deleted one is missing), rejects NaN and inf values, and requires at least one
episode and the keys a trainer reads. ``validate_dataset`` is the one check that ``robo train``,
``robo dataset convert`` and ``robo dataset validate`` run before doing anything else.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr.storage

from robo_policies.data.datasets import AnyDataset, open_dataset
from robo_policies.data.replay_buffer import CHUNK_BYTES, DatasetError, decoded
from robo_policies.utils.errors import DatasetKeyError

ACTION_KEY = "action"


@dataclass
class KeySummary:
    """Shape, dtype and value range of one per-step array."""

    shape: tuple[int, ...]
    dtype: str
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    sum: np.ndarray | None = None
    """Per element of a step, over every step (float64): with ``sum_sq`` the mean and std."""
    sum_sq: np.ndarray | None = None
    count: int = 0

    @property
    def mean(self) -> np.ndarray | None:
        return None if self.sum is None or not self.count else self.sum / self.count

    @property
    def std(self) -> np.ndarray | None:
        mean = self.mean
        if mean is None or self.sum_sq is None:
            return None
        return np.sqrt(np.maximum(self.sum_sq / self.count - mean ** 2, 0.0))


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


def summarize_dataset(path: str | Path, strict: bool = False,
                      keys: Sequence[str] | None = None, moments: bool = False) -> DatasetSummary:
    """Read a whole dataset and describe it.

    Every chunk of every array is read (a corrupt or truncated chunk is a DatasetError
    naming the array and its rows). With ``strict`` (``validate_dataset``) the dataset must
    also be usable for training: at least one episode, ``data/action`` and every one of
    ``keys`` present, every chunk of the episodes' rows stored (zarr reads a missing chunk
    back as its fill value, so a deleted chunk file would otherwise pass as zeros) and no
    NaN or inf. ``keys`` limits the scan to those arrays (plus ``action``). ``moments`` also
    sums what the mean and std need (``robo dataset stats``).
    """
    buffer = open_dataset(path)
    if strict and buffer.n_episodes == 0:
        raise DatasetError(f"{path}: no episodes (meta/episode_ends is empty); nothing to train on")
    wanted = list(buffer.keys) if keys is None else list(dict.fromkeys([*keys, ACTION_KEY]))
    missing = [key for key in dict.fromkeys([*wanted, ACTION_KEY]) if key not in buffer]
    if strict and missing:
        raise DatasetKeyError(f"{path}: missing key 'data/{missing[0]}' (keys: {buffer.keys})")
    summary = DatasetSummary(
        path=str(path),
        n_episodes=buffer.n_episodes,
        n_steps=buffer.n_steps,
        episode_lengths=buffer.episode_lengths,
        meta_keys=buffer.meta_keys,
        attrs=buffer.attrs,
    )
    for key in wanted:
        if key in buffer:
            summary.keys[key] = _scan_array(buffer, key, strict=strict, moments=moments)
    for name in buffer.meta_keys:
        decoded(buffer.location, f"meta/{name}", lambda name=name: buffer.meta(name))
    return summary


def validate_dataset(path: str | Path, keys: Sequence[str] | None = None,
                     name: str | Path | None = None) -> DatasetSummary:
    """The one check before a dataset is trained on, converted or declared valid: raise
    :class:`DatasetError` naming the first problem (see ``summarize_dataset``). ``name``: what
    errors call the dataset, when ``path`` is where it is being written (a converter's
    temporary output)."""
    try:
        return summarize_dataset(path, strict=True, keys=keys)
    except DatasetError as problem:
        if name is None:
            raise
        raise type(problem)(str(problem).replace(str(path), str(name))) from None


def _scan_array(buffer: AnyDataset, key: str, strict: bool, moments: bool = False) -> KeySummary:
    """Decode every chunk of ``data/<key>`` in the episodes' range; find missing chunks,
    NaN/inf and the value range (and the sums of the mean and std with ``moments``)."""
    array = buffer[key]
    summary = KeySummary(shape=tuple(array.shape[1:]), dtype=str(array.dtype))
    if strict:
        _require_stored_chunks(buffer, key)
    numeric = np.issubdtype(array.dtype, np.number)
    # Whole chunks, about CHUNK_BYTES at a time: one read per camera frame would take minutes.
    row_bytes = max(1, int(np.prod(array.shape[1:])) * array.dtype.itemsize)
    chunk_rows = array.chunks[0] if hasattr(array, "chunks") else len(array)  # numpy: one block
    step = chunk_rows * max(1, CHUNK_BYTES // (row_bytes * chunk_rows))
    for begin in range(0, buffer.n_steps, step):
        end = min(begin + step, buffer.n_steps)
        block = decoded(buffer.location, f"data/{key}", lambda: array[begin:end], where=f" in rows {begin}:{end}")
        if not numeric or block.size == 0:
            continue
        flat = block.reshape(len(block), -1)
        if strict:
            _require_finite_block(flat, begin, key, buffer.location, buffer.episode_ends)
        lo, hi = flat.min(0), flat.max(0)
        summary.min = lo if summary.min is None else np.minimum(summary.min, lo)
        summary.max = hi if summary.max is None else np.maximum(summary.max, hi)
        if not moments:
            continue
        wide = flat.astype(np.float64)
        total, total_sq = wide.sum(0), np.square(wide).sum(0)
        summary.sum = total if summary.sum is None else summary.sum + total
        summary.sum_sq = total_sq if summary.sum_sq is None else summary.sum_sq + total_sq
        summary.count += len(flat)
    return summary


def _require_stored_chunks(buffer: AnyDataset, key: str) -> None:
    """Every chunk file of ``data/<key>`` that holds episode rows exists (local stores written
    by this library: other writers may skip chunks of fill values, which then read as such)."""
    if not buffer.stores_every_chunk:
        return
    array = buffer[key]
    store = array.store
    if not isinstance(store, zarr.storage.LocalStore):
        return
    rows_chunks = -(-buffer.n_steps // array.chunks[0])
    for coords in itertools.product(range(rows_chunks), *map(range, array.cdata_shape[1:])):
        chunk_key = array.metadata.encode_chunk_key(coords)
        if not (Path(store.root) / array.path / chunk_key).is_file():
            begin = coords[0] * array.chunks[0]
            end = min(begin + array.chunks[0], buffer.n_steps)
            raise DatasetError(f"{buffer.location}: 'data/{key}' is missing its chunk file {chunk_key!r} "
                               f"(rows {begin}:{end}); it would read back as fill values")


def first_non_finite(array: np.ndarray) -> tuple[int, float] | None:
    """(row, value) of the first NaN or inf in ``array`` (rows along axis 0), or None."""
    if not np.issubdtype(array.dtype, np.floating) or np.isfinite(array).all():
        return None
    flat = array.reshape(len(array), -1)
    row = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
    return row, float(flat[row][~np.isfinite(flat[row])][0])


def _require_finite_block(flat: np.ndarray, begin: int, key: str, location: str,
                          episode_ends: np.ndarray) -> None:
    """The NaN/inf check of rows ``begin:begin+len(flat)`` of ``data/<key>``."""
    found = first_non_finite(flat)
    if found is None:
        return
    row = begin + found[0]
    episode = int(np.searchsorted(episode_ends, row, side="right"))
    raise DatasetError(f"{location}: 'data/{key}' has {found[1]} at step {row} (episode {episode})")
