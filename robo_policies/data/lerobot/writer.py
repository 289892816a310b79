"""A dataset written as a LeRobotDataset v3.0 directory, as LeRobot's own loader reads it.

What goes where (one chunk and one file of each kind: ``chunk-000/file-000``)::

    data/chunk-000/file-000.parquet     our per-step keys (feature names from layout.default_feature),
                                        timestamp = frame_index / fps, frame_index, episode_index,
                                        index, task_index; cameras as PNG bytes with images="png"
    videos/<camera>/chunk-000/file-000.mp4   every episode of one camera, back to back
                                        (images="video": AV1 by default, or H.264; see video.py)
    meta/episodes/chunk-000/file-000.parquet  a row per episode: tasks, length, from/to indices,
                                        each camera's from/to timestamps, robo/<name> per-episode meta
    meta/tasks.parquet                  task_index, with the task strings as the pandas index
    meta/stats.json                     min, max, mean, std, count per feature (cameras per channel, 0..1)
    meta/info.json                      codebase_version, fps, features, paths, totals, and under
                                        "robo_policies" our exact key mapping, per-step shapes,
                                        per-episode meta names and dataset attrs (for the way back)

LeRobot's ``timestamp`` must be ``frame_index / fps`` (videos are indexed by it), so a recorded
clock (``robo record``'s ``timestamp``) travels as the feature ``robo.timestamp``. Tasks are
the dataset's ``tasks`` attribute and ``meta/task_index`` when present (``robo record``),
else its ``task`` attribute (``robo collect``), one task for every episode.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robo_policies.data.lerobot.layout import (DATA_V3, EPISODES_V3, META_COLUMN_PREFIX, ROBO_SECTION, TASKS_V3,
                                               VIDEO_V3, WRITTEN_VERSION, default_feature)
from robo_policies.data.lerobot.video import encode_video
from robo_policies.data.replay_buffer import ReplayBuffer, is_image
from robo_policies.utils.errors import ConfigError, DatasetError

RECORDED_TIMESTAMP = "robo.timestamp"
IMAGE_MODES = ("video", "png")
FILE = {"chunk_index": 0, "file_index": 0}


def write_lerobot(buffer: ReplayBuffer, root: Path, *, fps: float, codec: str = "av1", images: str = "video") -> None:
    """Write every episode of ``buffer`` as a v3.0 directory at ``root`` (see the module docstring)."""
    if images not in IMAGE_MODES:
        raise ConfigError(f"images={images!r}: choose one of {', '.join(IMAGE_MODES)}")
    if buffer.n_episodes == 0:
        raise DatasetError(f"{buffer.location}: no episodes to write")
    cameras = [key for key in buffer.keys if is_image(buffer[key].shape[1:], buffer[key].dtype)]
    names = {key: RECORDED_TIMESTAMP if key == "timestamp" else default_feature(key, key in cameras)
             for key in buffer.keys}
    ends = buffer.episode_ends
    starts = ends - buffer.episode_lengths
    tasks, task_of_episode = _tasks(buffer)
    features: dict[str, dict[str, Any]] = {}
    stats: dict[str, dict[str, list]] = {}
    columns: dict[str, pa.Array] = {}
    for key in buffer.keys:
        if key in cameras:
            continue
        values = np.asarray(buffer[key][: buffer.n_steps])
        features[names[key]] = {"dtype": str(values.dtype), "shape": list(values.shape[1:]) or [1], "names": None}
        columns[names[key]] = _arrow(values)
        stats[names[key]] = _stats(values.reshape(len(values), -1).astype(np.float64), values.shape[1:] or (1,))
    episode_columns: dict[str, Any] = {}
    for key in cameras:
        feature = names[key]
        features[feature] = _camera_feature(buffer[key].shape[1:], images, codec, fps)
        frames = _episode_frames(buffer, key)
        if images == "png":
            pngs = [_png(frame) for frame in frames]
            columns[feature] = pa.array([{"bytes": png, "path": None} for png in pngs],
                                        pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        else:
            encode_video(root / VIDEO_V3.format(video_key=feature, **FILE), frames, fps, codec)
            episode_columns |= {f"videos/{feature}/chunk_index": [0] * len(ends),
                                f"videos/{feature}/file_index": [0] * len(ends),
                                f"videos/{feature}/from_timestamp": (starts / fps).tolist(),
                                f"videos/{feature}/to_timestamp": (ends / fps).tolist()}
        stats[feature] = _camera_stats(buffer[key], buffer.n_steps)
    frame_index = np.arange(buffer.n_steps) - np.repeat(starts, buffer.episode_lengths)
    episode_of_row = np.repeat(np.arange(buffer.n_episodes), buffer.episode_lengths)
    structural = {"timestamp": (frame_index / fps).astype(np.float32), "frame_index": frame_index,
                  "episode_index": episode_of_row, "index": np.arange(buffer.n_steps),
                  "task_index": task_of_episode[episode_of_row]}
    for name, values in structural.items():
        features[name] = {"dtype": str(values.dtype), "shape": [1], "names": None}
        columns[name] = pa.array(values)
    _write_parquet(pa.table(columns), root / DATA_V3.format(**FILE))

    meta_names = [name for name in buffer.meta_keys if name != "task_index"]
    episodes = {"episode_index": np.arange(buffer.n_episodes), "tasks": [[tasks[t]] for t in task_of_episode],
                "length": buffer.episode_lengths, "data/chunk_index": [0] * len(ends), "data/file_index": [0] * len(ends),
                "dataset_from_index": starts, "dataset_to_index": ends, **episode_columns,
                "meta/episodes/chunk_index": [0] * len(ends), "meta/episodes/file_index": [0] * len(ends),
                **{META_COLUMN_PREFIX + name: buffer.meta(name) for name in meta_names}}
    _write_parquet(pa.table(episodes), root / EPISODES_V3.format(**FILE))
    _write_tasks(tasks, root / TASKS_V3)
    (root / "meta/stats.json").write_text(json.dumps(stats, indent=4))
    attrs = buffer.attrs
    info = {
        "codebase_version": WRITTEN_VERSION, "robot_type": attrs.get("robot_type", attrs.get("robot")),
        "total_episodes": buffer.n_episodes, "total_frames": buffer.n_steps, "total_tasks": len(tasks),
        "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
        "fps": int(fps) if float(fps).is_integer() else fps, "splits": {"train": f"0:{buffer.n_episodes}"},
        "data_path": DATA_V3,
        "video_path": VIDEO_V3 if cameras and images == "video" else None,
        "features": features,
        ROBO_SECTION: {"keys": {names[key]: {"key": key, "shape": list(buffer[key].shape[1:])} for key in buffer.keys},
                       "meta": list(buffer.meta_keys), "attrs": attrs},
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))


def _tasks(buffer: ReplayBuffer) -> tuple[list[str], np.ndarray]:
    """The task strings and each episode's index into them."""
    attrs = buffer.attrs
    if attrs.get("tasks") and "task_index" in buffer.meta_keys:
        return [str(task) for task in attrs["tasks"]], buffer.meta("task_index").astype(np.int64)
    return [str(attrs.get("task") or "")], np.zeros(buffer.n_episodes, np.int64)


def _arrow(values: np.ndarray) -> pa.Array:
    """Per-step scalars (or 1-vectors) as a plain column, vectors as nested fixed-size lists."""
    if values.ndim == 1 or values.shape[1:] == (1,):
        return pa.array(values.reshape(len(values)))
    column = pa.array(values.reshape(-1))
    for size in reversed(values.shape[1:]):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column


def _stats(flat: np.ndarray, shape: tuple[int, ...]) -> dict[str, list]:
    return {"min": flat.min(0).reshape(shape).tolist(), "max": flat.max(0).reshape(shape).tolist(),
            "mean": flat.mean(0).reshape(shape).tolist(), "std": flat.std(0).reshape(shape).tolist(),
            "count": [len(flat)]}


def _camera_stats(frames: Any, n_steps: int) -> dict[str, list]:
    """Per-channel statistics of a camera in 0..1, shaped (3, 1, 1) as LeRobot keeps them."""
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


def _episode_frames(buffer: ReplayBuffer, key: str) -> Any:
    """Every frame of ``key`` in order, read one episode at a time."""
    for episode in range(buffer.n_episodes):
        yield from np.asarray(buffer[key][buffer.episode_slice(episode)])


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="png")
    return out.getvalue()


def _write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _write_tasks(tasks: list[str], path: Path) -> None:
    """``meta/tasks.parquet`` as pandas writes ``DataFrame({"task_index": ...}, index=Index(tasks,
    name="task"))``: LeRobot reads it with ``pd.read_parquet`` and looks tasks up by the index."""
    pandas_meta = {"index_columns": ["task"], "column_indexes": [], "pandas_version": "2.2.0", "creator": {},
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": "task", "field_name": "task", "pandas_type": "unicode",
                                "numpy_type": "object", "metadata": None}]}
    table = pa.table({"task_index": pa.array(np.arange(len(tasks))), "task": pa.array(tasks, pa.string())})
    _write_parquet(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)
