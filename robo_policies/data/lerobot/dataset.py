"""A LeRobot directory read in place, with the reading interface of ReplayBuffer.

``LeRobotDataset(dir)`` reads the meta files and every data parquet once: low-dimensional
columns become in-memory arrays under our keys (see the package docstring for the mapping),
cameras become lazy array-likes that decode only the rows asked for (:mod:`.video`,
:mod:`.frames`). The trainer, the window sampler, the validator and the converters use it as
they use a :class:`~robo_policies.data.replay_buffer.ReplayBuffer` opened for reading:
``keys``, ``dataset[key][rows]``, ``episode_ends``, ``meta(name)``, ``attrs``, ``as_numpy``.

Episode boundaries come from the ``episode_index`` column: each episode's frames must be one
contiguous run, episodes in increasing order, ``frame_index`` counting 0, 1, ... within each
and ``index`` counting up by one over the dataset; a violation is an error naming the file
and row. Lengths must agree with the episodes meta.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from robo_policies.data.lerobot.frames import LazyFrames, PngFrames
from robo_policies.data.lerobot.layout import (META_COLUMN_PREFIX, ROBO_SECTION, STRUCTURAL, Layout, default_key,
                                               read_parquet)
from robo_policies.data.lerobot.video import VideoFrames
from robo_policies.utils.errors import DatasetError, DatasetKeyError

SCALAR_KEYS = ("timestamp", "reward", "done")
"""Keys kept as (N,) arrays when their feature has shape (1,); other features of shape (1,)
become (N, 1), the per-step vector a policy reads."""


class LeRobotDataset:
    """A read-only LeRobot dataset (v2.1 or v3.0) at ``root``; ``keys`` overrides the key
    mapping (``{feature: our_key}``)."""

    def __init__(self, root: str | Path, keys: Mapping[str, str] | None = None) -> None:
        self.layout = Layout.read(root)
        self.location = str(root)
        stored = self.layout.info.get(ROBO_SECTION) or {}
        table, frames = _read_frames(self.layout)
        self._ends = frames.episode_ends
        self._arrays = _arrays(self.layout, table, frames, _key_mapping(self.layout, stored, keys or {}))
        self._meta = _episode_meta(self.layout, table, frames, stored)
        self._attrs = _attrs(self.layout, self._meta, stored)

    # -- the ReplayBuffer reading interface ------------------------------------------------

    @property
    def attrs(self) -> dict[str, Any]:
        """``fps``, ``robot_type``, ``tasks`` (task strings by ``meta/task_index``), ``source``,
        and the attributes a zarr dataset had when this library wrote the directory."""
        return dict(self._attrs)

    @property
    def stores_every_chunk(self) -> bool:
        """No chunk files to check (the validator asks zarr stores this)."""
        return False

    @property
    def n_episodes(self) -> int:
        return len(self._ends)

    @property
    def episode_ends(self) -> np.ndarray:
        return self._ends.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self._ends, prepend=0)

    @property
    def n_steps(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def keys(self) -> list[str]:
        return sorted(self._arrays)

    @property
    def meta_keys(self) -> list[str]:
        return sorted(self._meta)

    def __contains__(self, key: str) -> bool:
        return key in self._arrays

    def __getitem__(self, key: str) -> np.ndarray | LazyFrames:
        """Low-dim keys as in-memory arrays, cameras as lazy (N, H, W, 3) uint8 array-likes."""
        if key not in self._arrays:
            raise DatasetKeyError(f"{self.location}: no key {key!r}; keys: {', '.join(self.keys)}")
        return self._arrays[key]

    def meta(self, name: str) -> np.ndarray:
        if name not in self._meta:
            raise DatasetKeyError(f"{self.location}: no per-episode array {name!r}; per-episode: {self.meta_keys}")
        return self._meta[name].copy()

    def episode_slice(self, index: int) -> slice:
        if not -self.n_episodes <= index < self.n_episodes:
            raise IndexError(f"episode {index} out of range ({self.n_episodes} episodes)")
        index %= self.n_episodes
        return slice(int(self._ends[index - 1]) if index else 0, int(self._ends[index]))

    def episode(self, index: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        rows = self.episode_slice(index)
        return {key: np.asarray(self[key][rows]) for key in (keys or self.keys)}

    def as_numpy(self, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        return {key: np.asarray(self[key][:]) for key in (keys or self.keys)}


class _Frames:
    """Where each frame of the concatenated data files sits: file, row, episode."""

    def __init__(self, layout: Layout, files: list[Path], rows: list[int], table: pa.Table) -> None:
        self.root = layout.root
        self.files = files
        self.file_starts = np.cumsum([0, *rows])
        for column in ("episode_index", "frame_index", "index", "timestamp"):
            if column not in table.column_names:
                raise DatasetError(f"{files[0]}: no column {column!r}")
        episode = table["episode_index"].to_numpy()
        starts = np.flatnonzero(np.diff(episode, prepend=episode[0] - 1) != 0)
        backwards = np.flatnonzero(np.diff(episode[starts]) <= 0)
        if len(backwards):
            row = int(starts[backwards[0] + 1])
            raise DatasetError(f"{self.where(row)}: episode_index {episode[row]} follows episode "
                               f"{episode[row - 1]}; each episode's frames must be contiguous and in order")
        self.episode_ends = np.append(starts[1:], len(episode)).astype(np.int64)
        self.episode_numbers = episode[starts]
        self.episode_of_row = np.repeat(np.arange(len(starts)), np.diff(self.episode_ends, prepend=0))
        expected_frame = np.arange(len(episode)) - starts[self.episode_of_row]
        self._require_equal(table["frame_index"].to_numpy(), expected_frame, "frame_index")
        index = table["index"].to_numpy()
        self._require_equal(index, index[0] + np.arange(len(index)), "index")
        self._require_meta_agrees(layout)

    def where(self, row: int) -> str:
        """``<file> row <r>`` for global row ``row``."""
        file = int(np.searchsorted(self.file_starts, row, side="right")) - 1
        return f"{self.files[file]} row {row - self.file_starts[file]}"

    def _require_equal(self, values: np.ndarray, expected: np.ndarray, column: str) -> None:
        bad = np.flatnonzero(values != expected)
        if len(bad):
            row = int(bad[0])
            raise DatasetError(f"{self.where(row)}: {column} is {values[row]}, expected {expected[row]} "
                               f"(episode_index {self.episode_numbers[self.episode_of_row[row]]})")

    def _require_meta_agrees(self, layout: Layout) -> None:
        meta_file = layout.root / ("meta/episodes.jsonl" if layout.version == "v2.1" else "meta/episodes")
        listed = [int(row["episode_index"]) for row in layout.episodes]
        if listed != self.episode_numbers.tolist():
            raise DatasetError(f"{meta_file}: lists episodes {listed[:10]}..., the data files hold "
                               f"{self.episode_numbers.tolist()[:10]}...")
        for row, length in zip(layout.episodes, np.diff(self.episode_ends, prepend=0)):
            if "length" in row and int(row["length"]) != length:
                raise DatasetError(f"{meta_file}: episode {row['episode_index']} has length {row['length']}, "
                                   f"the data files hold {length} frames")


def _read_frames(layout: Layout) -> tuple[pa.Table, _Frames]:
    files = layout.data_files()
    tables = [read_parquet(path) for path in files]
    try:
        table = pa.concat_tables(tables)
    except pa.ArrowInvalid as err:
        raise DatasetError(f"{layout.root / 'data'}: the data files have different columns ({err})") from err
    if table.num_rows == 0:
        raise DatasetError(f"{layout.root / 'data'}: no frames")
    return table, _Frames(layout, files, [t.num_rows for t in tables], table)


def _key_mapping(layout: Layout, stored: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, tuple[str, tuple | None]]:
    """``{feature: (our key, per-step shape or None for the default)}`` for every data feature."""
    unknown = sorted(set(overrides) - set(layout.features))
    if unknown:
        raise DatasetKeyError(f"{layout.root}: keys= names features {unknown} that meta/info.json does not have "
                              f"(features: {', '.join(layout.features)})")
    stored_keys = stored.get("keys") or {}
    mapping: dict[str, tuple[str, tuple | None]] = {}
    for feature in layout.features:
        if feature in STRUCTURAL or (stored_keys and feature not in stored_keys and feature not in overrides):
            continue  # our own directories list every feature they keep (LeRobot's timestamp may be extra)
        spec = stored_keys.get(feature, {})
        key = overrides.get(feature) or spec.get("key") or default_key(feature)
        mapping[feature] = (key, tuple(spec["shape"]) if "shape" in spec else None)
    taken: dict[str, str] = {}
    for feature, (key, _) in mapping.items():
        if key in taken:
            raise DatasetKeyError(f"{layout.root}: features {taken[key]!r} and {feature!r} both map to key {key!r}; "
                                  f"rename one with keys={{{feature}: <key>}}")
        taken[key] = feature
    return mapping


def _arrays(layout: Layout, table: pa.Table, frames: _Frames,
            mapping: dict[str, tuple[str, tuple | None]]) -> dict[str, np.ndarray | LazyFrames]:
    arrays: dict[str, np.ndarray | LazyFrames] = {}
    for feature, (key, shape) in mapping.items():
        spec = layout.features[feature]
        dtype = spec.get("dtype")
        if dtype == "video":
            arrays[key] = _video(layout, feature, table, frames)
        elif feature not in table.column_names:
            raise DatasetError(f"{frames.files[0]}: no column {feature!r} (a feature of meta/info.json)")
        elif dtype == "image":
            images = table[feature].combine_chunks().field("bytes").to_pylist()
            arrays[key] = PngFrames(images, _frame_shape(spec, feature), f"{layout.root}: {feature}")
        elif dtype in ("string", "str"):
            warnings.warn(f"{layout.root}: feature {feature!r} holds strings; not read", stacklevel=4)
        else:
            default = () if key in SCALAR_KEYS and tuple(spec.get("shape", ())) == (1,) else tuple(spec.get("shape", ()))
            arrays[key] = _column(table[feature], shape if shape is not None else default, feature, frames)
    return arrays


def _column(column: pa.ChunkedArray, shape: tuple, feature: str, frames: _Frames) -> np.ndarray:
    """A numeric column (scalars or nested fixed-length lists) as an (N, *shape) array."""
    values = column.combine_chunks()
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or pa.types.is_fixed_size_list(values.type):
        values = values.flatten()
    array = values.to_numpy(zero_copy_only=False)
    if array.size != len(column) * int(np.prod(shape)):
        raise DatasetError(f"{frames.files[0]}: column {feature!r} holds {array.size // max(len(column), 1)} values "
                           f"a frame, meta/info.json says shape {list(shape)}")
    return array.reshape(len(column), *shape)


def _frame_shape(spec: dict[str, Any], feature: str) -> tuple[int, int, int]:
    """(H, W, 3) of a camera feature, whose shape LeRobot lists in the order of its ``names``."""
    shape = tuple(int(n) for n in spec.get("shape", ()))
    names = spec.get("names") or ["height", "width", "channels"]
    if len(shape) != 3 or len(names) != 3:
        raise DatasetError(f"meta/info.json: camera {feature!r} has shape {list(shape)}, expected (H, W, 3)")
    by_name = dict(zip([str(n).lower() for n in names], shape))
    if {"height", "width"} <= set(by_name):
        return by_name["height"], by_name["width"], 3
    return shape[0], shape[1], 3


def _video(layout: Layout, feature: str, table: pa.Table, frames: _Frames) -> VideoFrames:
    """Row ``i``'s frame: the episode's file, at its offset plus the row's timestamp."""
    places = [layout.video(feature, episode) for episode in range(len(frames.episode_ends))]
    files = list(dict.fromkeys(path for path, _ in places))
    file_of_episode = np.array([files.index(path) for path, _ in places], np.int32)
    offset_of_episode = np.array([offset for _, offset in places], np.float64)
    times = table["timestamp"].to_numpy().astype(np.float64) + offset_of_episode[frames.episode_of_row]
    codec = (layout.features[feature].get("info") or {}).get("video.codec")
    return VideoFrames(layout.root, files, file_of_episode[frames.episode_of_row], times,
                       _frame_shape(layout.features[feature], feature), layout.fps, codec)


def _episode_meta(layout: Layout, table: pa.Table, frames: _Frames, stored: dict[str, Any]) -> dict[str, np.ndarray]:
    """``task_index`` (the task of each episode's first frame) and our ``robo/<name>`` columns."""
    meta: dict[str, np.ndarray] = {}
    if "task_index" in table.column_names:
        tasks = table["task_index"].to_numpy()
        starts = np.append(0, frames.episode_ends[:-1])
        mixed = np.flatnonzero(np.maximum.reduceat(tasks, starts) != np.minimum.reduceat(tasks, starts))
        if len(mixed):
            warnings.warn(f"{layout.root}: episodes {frames.episode_numbers[mixed].tolist()} change task_index "
                          f"mid-episode; meta/task_index keeps each one's first", stacklevel=4)
        meta["task_index"] = tasks[starts].astype(np.int64)
    for column in layout.episodes[0]:
        if column.startswith(META_COLUMN_PREFIX):
            meta[column[len(META_COLUMN_PREFIX):]] = np.asarray([row[column] for row in layout.episodes])
    if "meta" in stored:
        meta = {name: value for name, value in meta.items() if name in stored["meta"]}
    return meta


def _attrs(layout: Layout, meta: dict[str, np.ndarray], stored: dict[str, Any]) -> dict[str, Any]:
    """The attributes a directory we wrote kept, else fps, robot_type and tasks; and the source."""
    source = {"source": f"lerobot {layout.version} {layout.root}"}
    if "attrs" in stored:
        return {**stored["attrs"], **source}
    attrs: dict[str, Any] = {"fps": layout.fps}
    if layout.info.get("robot_type"):
        attrs["robot_type"] = layout.info["robot_type"]
    if "task_index" in meta:
        attrs["tasks"] = layout.tasks
    return {**attrs, **source}
