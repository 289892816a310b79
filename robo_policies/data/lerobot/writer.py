"""Episodes written one at a time into a LeRobotDataset v3.0 directory, as LeRobot's own loader reads it.

:class:`LeRobotWriter` is the one code path for both writers: ``robo record format=lerobot``
adds each episode as it ends, ``robo dataset convert in.zarr out format=lerobot`` adds every
episode of a zarr dataset. Each episode gets its own files, numbered on (file ``k`` is
``chunk-{k // chunks_size}/file-{k % chunks_size}``)::

    data/chunk-XXX/file-YYY.parquet     the episode's steps: our per-step keys (feature names from
                                        layout.default_feature), timestamp = frame_index / fps,
                                        frame_index, episode_index, index, task_index; cameras as
                                        PNG bytes with images="png"
    videos/<camera>/chunk-XXX/file-YYY.mp4   the episode's frames of one camera, from time 0
                                        (images="video": AV1 by default, or H.264; see video.py)
    meta/episodes/chunk-000/file-000.parquet  a row per episode: tasks, length, from/to indices,
                                        where its files are, each camera's from/to timestamps,
                                        robo/<name> per-episode meta, stats/<feature>/<stat>
    meta/tasks.parquet                  task_index, with the task strings as the pandas index
    meta/stats.json                     min, max, mean, std, count per feature (cameras per channel,
                                        0..1): the episodes' stats/ columns aggregated
    meta/info.json                      codebase_version, fps, features, paths, totals, and under
                                        "robo_policies" our exact key mapping, per-step shapes,
                                        per-episode meta names and dataset attrs (for the way back)

Crash safety: every file is written under a temporary name and renamed into place, new episode
files first, then the meta files: tasks, the episodes parquet (the commit: readers find episodes
through it), stats and info.json last. A kill at any point leaves every episode added before it
readable; files of an episode that was not committed are removed when the directory is opened
for appending (LeRobot's loader reads every parquet under ``data/``), and stale stats or totals
are rewritten from the episodes parquet.

LeRobot's ``timestamp`` must be ``frame_index / fps`` (videos are indexed by it), so a recorded
clock (``robo record``'s ``timestamp``) travels as the feature ``robo.timestamp``. Tasks are
the dataset's ``tasks`` attribute and ``meta/task_index`` when present (``robo record``),
else its ``task`` attribute (``robo collect``), one task for every episode.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robo_policies.data.lerobot import INFO_PATH
from robo_policies.data.lerobot.layout import (DATA_V3, EPISODES_V3, META_COLUMN_PREFIX, ROBO_SECTION, TASKS_V3,
                                               VIDEO_V3, WRITTEN_VERSION, Layout, default_feature, read_parquet)
from robo_policies.data.lerobot.video import encode_video
from robo_policies.data.replay_buffer import is_image
from robo_policies.utils.atomic import atomic_output
from robo_policies.utils.errors import ConfigError, DatasetError

RECORDED_TIMESTAMP = "robo.timestamp"
IMAGE_MODES = ("video", "png")
CHUNKS_SIZE = 1000
"""Files per chunk directory (LeRobot's default)."""
STATS_PREFIX = "stats/"
EPISODES_FILE = EPISODES_V3.format(chunk_index=0, file_index=0)
STATS_PATH = "meta/stats.json"


class LeRobotWriter:
    """A v3.0 directory that episodes are added to; each :meth:`add_episode` leaves it a
    complete dataset holding that episode (see the module docstring)."""

    def __init__(self, root: Path, *, fps: float, attrs: Mapping[str, Any], codec: str = "av1",
                 images: str = "video") -> None:
        """A writer of a new directory at ``root``, created with the first episode. ``attrs``
        (the dataset attributes: ``robot``, ``tasks``, ...) travel in info.json; ``codec`` and
        ``images`` as in :func:`~robo_policies.data.convert.lerobot.zarr_to_lerobot`."""
        if images not in IMAGE_MODES:
            raise ConfigError(f"images={images!r}: choose one of {', '.join(IMAGE_MODES)}")
        self.root = Path(root)
        self.fps = float(fps)
        self.codec = codec
        self.images = images
        self.chunks_size = CHUNKS_SIZE
        self._attrs = dict(attrs)
        self._episodes: list[dict[str, Any]] = []
        """A row of the episodes parquet per episode, stats columns included."""
        self._features: dict[str, dict[str, Any]] = {}
        """meta/info.json's features, fixed by the first episode."""
        self._keys: dict[str, dict[str, Any]] = {}
        """``{feature: {"key": our key, "shape": per-step shape}}``, fixed by the first episode."""
        self._meta_names: list[str] = []

    @classmethod
    def open(cls, root: str | Path) -> LeRobotWriter:
        """A writer appending to the directory at ``root``, which this library wrote (its
        info.json keeps the key mapping that new episodes must follow)."""
        layout = Layout.read(root)
        stored = layout.info.get(ROBO_SECTION)
        if layout.version != WRITTEN_VERSION or not stored or "keys" not in stored:
            raise DatasetError(f"{layout.root / INFO_PATH}: not a {WRITTEN_VERSION} directory written by "
                               f"robo_policies (no {ROBO_SECTION!r} section); only those can be appended to")
        videos = [spec for spec in layout.features.values() if spec.get("dtype") == "video"]
        images = "png" if any(spec.get("dtype") == "image" for spec in layout.features.values()) else "video"
        writer = cls(layout.root, fps=layout.fps, attrs=stored.get("attrs", {}), images=images,
                     codec=(videos[0].get("info") or {}).get("video.codec", "av1") if videos else "av1")
        writer.chunks_size = int(layout.info.get("chunks_size", CHUNKS_SIZE))
        writer._episodes = read_parquet(layout.root / EPISODES_FILE).to_pylist()
        writer._features = layout.features
        writer._keys = stored["keys"]
        writer._meta_names = list(stored.get("meta", []))
        writer._remove_uncommitted()
        if layout.info.get("total_episodes") != writer.n_episodes:  # killed between the commit and info.json
            writer._write_meta()
        return writer

    # -- what the recorder asks of its dataset (as of a ReplayBuffer) ------------------------------

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._attrs)

    def update_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Change attributes; they are written with the next episode."""
        self._attrs.update(attrs)

    @property
    def n_episodes(self) -> int:
        return len(self._episodes)

    @property
    def meta_keys(self) -> list[str]:
        return list(self._meta_names)

    @property
    def step_shapes(self) -> dict[str, tuple[int, ...]]:
        """Our key -> per-step shape of every key the episodes hold."""
        return {spec["key"]: tuple(spec["shape"]) for spec in self._keys.values()}

    # -- writing -----------------------------------------------------------------------------------

    def add_episode(self, data: Mapping[str, np.ndarray], episode_meta: Mapping[str, Any] | None = None) -> None:
        """Write one episode's files, then commit it (the directory then holds it)."""
        self.add_episodes([(data, episode_meta or {})])

    def add_episodes(self, episodes: Iterable[tuple[Mapping[str, np.ndarray], Mapping[str, Any]]]) -> None:
        """Write each episode's files, then commit them all at once (one meta rewrite)."""
        added = 0
        for data, meta in episodes:
            self._write_episode({key: np.asarray(value) for key, value in data.items()}, dict(meta))
            added += 1
        if added:
            self._write_meta()

    # -- one episode's files -----------------------------------------------------------------------

    @property
    def tasks(self) -> list[str]:
        """Task strings by task_index: the ``tasks`` attribute when episodes carry ``task_index``
        (``robo record``), else the one ``task`` attribute (``robo collect``)."""
        if self._uses_task_index:
            return [str(task) for task in self._attrs["tasks"]]
        return [str(self._attrs.get("task") or "")]

    @property
    def _uses_task_index(self) -> bool:
        return bool(self._attrs.get("tasks")) and "task_index" in self.meta_keys

    def _write_episode(self, data: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """The episode's data parquet and videos, each renamed into place, and its episodes row
        (kept in memory until :meth:`_write_meta` commits it)."""
        if not self._keys:
            self._define(data, meta)
        length = self._check(data, meta)
        number = self._next_file()
        place = {"chunk_index": number // self.chunks_size, "file_index": number % self.chunks_size}
        episode = self.n_episodes
        start = int(self._episodes[-1]["dataset_to_index"]) if self._episodes else 0
        task_index = int(meta["task_index"]) if self._uses_task_index else 0
        if not 0 <= task_index < len(self.tasks):
            raise DatasetError(f"{self.root}: episode {episode} has task_index {task_index}, "
                               f"but the tasks attribute lists {len(self.tasks)} tasks")
        row: dict[str, Any] = {"episode_index": episode, "tasks": [self.tasks[task_index]], "length": length,
                               "data/chunk_index": place["chunk_index"], "data/file_index": place["file_index"],
                               "dataset_from_index": start, "dataset_to_index": start + length}
        columns: dict[str, pa.Array] = {}
        stats: dict[str, dict[str, list]] = {}
        for feature, spec in self._keys.items():
            values = data[spec["key"]]
            dtype = self._features[feature]["dtype"]
            if dtype == "video":
                _atomic(self.root / VIDEO_V3.format(video_key=feature, **place),
                        lambda tmp, frames=values: encode_video(tmp, frames, self.fps, self.codec))
                row |= {f"videos/{feature}/chunk_index": place["chunk_index"],
                        f"videos/{feature}/file_index": place["file_index"],
                        f"videos/{feature}/from_timestamp": 0.0, f"videos/{feature}/to_timestamp": length / self.fps}
            elif dtype == "image":
                columns[feature] = pa.array([{"bytes": _png(frame), "path": None} for frame in values],
                                            pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
            else:
                columns[feature] = _arrow(values)
            stats[feature] = _camera_stats(values) if dtype in ("video", "image") else _stats(values)
        frame_index = np.arange(length)
        columns |= {"timestamp": pa.array((frame_index / self.fps).astype(np.float32)),
                    "frame_index": pa.array(frame_index), "episode_index": pa.array(np.full(length, episode)),
                    "index": pa.array(start + frame_index), "task_index": pa.array(np.full(length, task_index))}
        _atomic(self.root / DATA_V3.format(**place), lambda tmp: pq.write_table(pa.table(columns), tmp))
        row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                **{META_COLUMN_PREFIX + name: np.asarray(meta[name]).item()
                   for name in self.meta_keys if name != "task_index"},
                **{f"{STATS_PREFIX}{feature}/{stat}": value
                   for feature, values in stats.items() for stat, value in values.items()}}
        self._episodes.append(row)

    def _define(self, data: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Features, key mapping and per-episode meta names, from the first episode."""
        for key, values in data.items():
            camera = is_image(values.shape[1:], values.dtype)
            feature = RECORDED_TIMESTAMP if key == "timestamp" else default_feature(key, camera)
            self._keys[feature] = {"key": key, "shape": list(values.shape[1:])}
            self._features[feature] = (_camera_feature(values.shape[1:], self.images, self.codec, self.fps) if camera
                                       else {"dtype": str(values.dtype), "shape": list(values.shape[1:]) or [1],
                                             "names": None})
        for name, dtype in STRUCTURAL_DTYPES.items():
            self._features[name] = {"dtype": dtype, "shape": [1], "names": None}
        self._meta_names = sorted(meta)

    def _check(self, data: dict[str, np.ndarray], meta: dict[str, Any]) -> int:
        """The episode's length, after checking it has the stored keys, shapes and meta names."""
        shapes = self.step_shapes
        if set(data) != set(shapes):
            raise DatasetError(f"{self.root}: the episode has keys {sorted(data)}, the stored episodes "
                               f"{sorted(shapes)}")
        for key, shape in shapes.items():
            if data[key].shape[1:] != shape:
                raise DatasetError(f"{self.root}: key {key!r} is {data[key].shape[1:]} per step, the stored "
                                   f"episodes' is {shape}")
        if sorted(meta) != self.meta_keys:
            raise DatasetError(f"{self.root}: the episode has meta {sorted(meta)}, the stored episodes "
                               f"{self.meta_keys}")
        lengths = {len(values) for values in data.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise DatasetError(f"{self.root}: an episode's keys need one length >= 1, got "
                               f"{ {key: len(values) for key, values in data.items()} }")
        return lengths.pop()

    def _next_file(self) -> int:
        """The number of the next episode's files: one past the last committed episode's."""
        if not self._episodes:
            return 0
        last = self._episodes[-1]
        return int(last["data/chunk_index"]) * self.chunks_size + int(last["data/file_index"]) + 1

    def _remove_uncommitted(self) -> None:
        """Delete what a kill left behind: temporary files, and episode files numbered from
        :meth:`_next_file` on (written, never committed)."""
        first_free = self._next_file()
        for path in [*self.root.glob("data/chunk-*/file-*"), *self.root.glob("videos/*/chunk-*/file-*"),
                     *self.root.glob("meta/**/*.tmp-*")]:
            chunk = re.fullmatch(r"chunk-(\d+)", path.parent.name)
            file = re.fullmatch(r"file-(\d+)\.(parquet|mp4)", path.name)
            if ".tmp-" in path.name or (chunk and file and
                                        int(chunk[1]) * self.chunks_size + int(file[1]) >= first_free):
                path.unlink()

    # -- the meta files ----------------------------------------------------------------------------

    def _write_meta(self) -> None:
        """Tasks, then the episodes parquet (the commit), then stats and info.json."""
        _write_tasks(self.tasks, self.root / TASKS_V3)
        _atomic(self.root / EPISODES_FILE, lambda tmp: pq.write_table(pa.Table.from_pylist(self._episodes), tmp))
        _atomic(self.root / STATS_PATH, lambda tmp: tmp.write_text(json.dumps(self._stats(), indent=4)))
        _atomic(self.root / INFO_PATH, lambda tmp: tmp.write_text(json.dumps(self._info(), indent=4)))

    def _stats(self) -> dict[str, dict[str, list]]:
        """Every feature's statistics over all episodes, from their ``stats/`` columns."""
        return {feature: _aggregate([{stat: np.asarray(row[f"{STATS_PREFIX}{feature}/{stat}"], np.float64)
                                      for stat in STAT_NAMES} for row in self._episodes])
                for feature in self._keys}

    def _info(self) -> dict[str, Any]:
        n_episodes = self.n_episodes
        videos = any(spec["dtype"] == "video" for spec in self._features.values())
        return {
            "codebase_version": WRITTEN_VERSION,
            "robot_type": self._attrs.get("robot_type", self._attrs.get("robot")),
            "total_episodes": n_episodes, "total_frames": int(self._episodes[-1]["dataset_to_index"]),
            "total_tasks": len(self.tasks), "chunks_size": self.chunks_size,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
            "fps": int(self.fps) if float(self.fps).is_integer() else self.fps,
            "splits": {"train": f"0:{n_episodes}"},
            "data_path": DATA_V3, "video_path": VIDEO_V3 if videos else None,
            "features": self._features,
            ROBO_SECTION: {"keys": self._keys, "meta": self.meta_keys, "attrs": self._attrs},
        }


STRUCTURAL_DTYPES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                     "task_index": "int64"}
STAT_NAMES = ("min", "max", "mean", "std", "count")


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary sibling, then rename it to ``path``: a reader (or a kill)
    sees the old file or the whole new one, never part of one."""
    with atomic_output(path, overwrite=True) as tmp:
        write(tmp)


def _aggregate(parts: list[dict[str, np.ndarray]]) -> dict[str, list]:
    """Statistics of the union of episodes from each one's min, max, mean, std and count."""
    counts = np.array([float(part["count"][0]) for part in parts])
    means = np.stack([part["mean"] for part in parts])
    weights = counts.reshape(-1, *[1] * (means.ndim - 1)) / counts.sum()
    mean = (weights * means).sum(0)
    variance = (weights * (np.stack([part["std"] for part in parts]) ** 2 + (means - mean) ** 2)).sum(0)
    return {"min": np.stack([part["min"] for part in parts]).min(0).tolist(),
            "max": np.stack([part["max"] for part in parts]).max(0).tolist(),
            "mean": mean.tolist(), "std": np.sqrt(variance).tolist(), "count": [int(counts.sum())]}


def _arrow(values: np.ndarray) -> pa.Array:
    """Per-step scalars (or 1-vectors) as a plain column, vectors as nested fixed-size lists."""
    if values.ndim == 1 or values.shape[1:] == (1,):
        return pa.array(values.reshape(len(values)))
    column = pa.array(values.reshape(-1))
    for size in reversed(values.shape[1:]):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column


def _stats(values: np.ndarray) -> dict[str, list]:
    """One episode's per-element statistics of a low-dimensional key (scalars as shape (1,))."""
    shape = values.shape[1:] or (1,)
    flat = values.reshape(len(values), -1).astype(np.float64)
    return {"min": flat.min(0).reshape(shape).tolist(), "max": flat.max(0).reshape(shape).tolist(),
            "mean": flat.mean(0).reshape(shape).tolist(), "std": flat.std(0).reshape(shape).tolist(),
            "count": [len(flat)]}


def _camera_stats(frames: np.ndarray) -> dict[str, list]:
    """One episode's per-channel statistics of a camera in 0..1, shaped (3, 1, 1) as LeRobot
    keeps them (summed 256 frames at a time: a float64 copy of a whole episode is gigabytes)."""
    n_steps = len(frames)
    total = np.zeros(3)
    squares = np.zeros(3)
    low, high = np.full(3, 255.0), np.zeros(3)
    for begin in range(0, n_steps, 256):
        block = np.asarray(frames[begin:min(begin + 256, n_steps)], dtype=np.float64).reshape(-1, 3)
        total += block.sum(0)
        squares += (block**2).sum(0)
        low, high = np.minimum(low, block.min(0)), np.maximum(high, block.max(0))
    pixels = n_steps * int(np.prod(frames.shape[1:3]))
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean**2, 0))
    return {"min": _per_channel(low), "max": _per_channel(high), "mean": _per_channel(mean),
            "std": _per_channel(std), "count": [n_steps]}


def _per_channel(values: np.ndarray) -> list:
    """0..255 channel values as LeRobot's (3, 1, 1) image statistics in 0..1."""
    return (values / 255).reshape(3, 1, 1).tolist()


def _camera_feature(shape: tuple[int, ...], images: str, codec: str, fps: float) -> dict[str, Any]:
    feature: dict[str, Any] = {"dtype": "video" if images == "video" else "image", "shape": list(shape),
                               "names": ["height", "width", "channels"]}
    if images == "video":
        feature["info"] = {"video.height": shape[0], "video.width": shape[1], "video.codec": codec,
                           "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                           "video.channels": shape[2], "has_audio": False}
    return feature


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="png")
    return out.getvalue()


def _write_tasks(tasks: list[str], path: Path) -> None:
    """``meta/tasks.parquet`` as pandas writes ``DataFrame({"task_index": ...}, index=Index(tasks,
    name="task"))``: LeRobot reads it with ``pd.read_parquet`` and looks tasks up by the index."""
    pandas_meta = {"index_columns": ["task"], "column_indexes": [], "pandas_version": "2.2.0", "creator": {},
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": "task", "field_name": "task", "pandas_type": "unicode",
                                "numpy_type": "object", "metadata": None}]}
    table = pa.table({"task_index": pa.array(np.arange(len(tasks))), "task": pa.array(tasks, pa.string())})
    table = table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    _atomic(path, lambda tmp: pq.write_table(table, tmp))
