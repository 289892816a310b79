"""Where things are in a LeRobot directory, and what its features are called here.

v2.1 (LeRobot's ``LEGACY_*`` paths)::

    meta/info.json                      codebase_version, fps, features, data_path, video_path, chunks_size
    meta/episodes.jsonl                 {"episode_index", "tasks": [str], "length"} a line
    meta/tasks.jsonl                    {"task_index", "task"} a line
    data/chunk-XXX/episode_XXXXXX.parquet                 one file per episode
    videos/chunk-XXX/<video_key>/episode_XXXXXX.mp4        one file per episode and camera

v3.0::

    meta/info.json                      as above, with data_path/video_path over chunk_index/file_index
    meta/tasks.parquet                  column task_index, the task strings as the pandas index
    meta/stats.json                     per feature: min, max, mean, std, count
    meta/episodes/chunk-XXX/file-XXX.parquet   a row per episode: episode_index, tasks, length,
                                        data/chunk_index, data/file_index, dataset_from_index,
                                        dataset_to_index, videos/<key>/{chunk_index, file_index,
                                        from_timestamp, to_timestamp}, ...
    data/chunk-XXX/file-XXX.parquet                        many episodes per file
    videos/<video_key>/chunk-XXX/file-XXX.mp4              many episodes per file, concatenated

A frame's video timestamp is its ``timestamp`` column (v2.1) or the episode's
``videos/<key>/from_timestamp`` plus it (v3.0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from robo_policies.data.lerobot import INFO_PATH
from robo_policies.utils.errors import DatasetError

SUPPORTED_VERSIONS = ("v2.1", "v3.0")
WRITTEN_VERSION = "v3.0"
STRUCTURAL = ("episode_index", "frame_index", "index", "task_index")
"""Columns that say where a frame belongs (episode, position, task); never stored as data."""
ROBO_SECTION = "robo_policies"
"""Our key in ``meta/info.json``: the exact key mapping, shapes, per-episode meta and attrs of a
directory this library wrote (LeRobot ignores keys it does not know)."""
META_COLUMN_PREFIX = "robo/"
"""Columns of the episodes parquet holding our per-episode meta (``robo/seed`` -> ``meta/seed``)."""
TASKS_V3 = "meta/tasks.parquet"
EPISODES_V3 = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_V3 = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_V3 = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CAMERA_PREFIX = "observation.images."
CAMERA_SUFFIX = "_image"
KEPT = ("action", "timestamp")
"""Our keys that LeRobot names the same (everything else is an ``observation.<key>``)."""
RENAMED = {"observation.state": "state", "observation.environment_state": "environment_state",
           "next.reward": "reward", "next.done": "done"}


def default_key(feature: str) -> str:
    """Our dataset key for LeRobot ``feature`` (see the package docstring)."""
    if feature in RENAMED:
        return RENAMED[feature]
    if feature.startswith(CAMERA_PREFIX):
        return feature[len(CAMERA_PREFIX):] + CAMERA_SUFFIX
    if feature.startswith("observation."):
        return feature[len("observation."):]
    return feature


def default_feature(key: str, camera: bool) -> str:
    """The LeRobot feature for our ``key``: :func:`default_key` read backwards. A camera key
    loses its ``_image``; ``action`` and ``timestamp`` keep their name, ``reward`` and ``done``
    take LeRobot's (``next.reward``)."""
    backwards = {ours: feature for feature, ours in RENAMED.items()}
    if key in backwards:
        return backwards[key]
    if camera:
        return CAMERA_PREFIX + key.removesuffix(CAMERA_SUFFIX)
    if key in KEPT:
        return key
    return f"observation.{key}"


@dataclass
class Layout:
    """The meta files of one LeRobot directory, read and checked."""

    root: Path
    info: dict[str, Any]
    version: str
    fps: float
    features: dict[str, dict[str, Any]]
    tasks: list[str]
    """Task strings by task_index."""
    episodes: list[dict[str, Any]]
    """One row per episode, in episode_index order (the v3.0 episodes parquet row, or the
    v2.1 episodes.jsonl line)."""

    @classmethod
    def read(cls, root: str | Path) -> Layout:
        root = Path(root)
        if not (root / INFO_PATH).is_file():
            raise DatasetError(f"{root}: not a LeRobot dataset (no {INFO_PATH})")
        info = read_json(root / INFO_PATH)
        version = require(info, "codebase_version", root / INFO_PATH)
        if version not in SUPPORTED_VERSIONS:
            raise DatasetError(f"{root / INFO_PATH}: codebase_version {version!r} is not supported "
                               f"(supported: {', '.join(SUPPORTED_VERSIONS)})")
        for key in ("fps", "features", "data_path"):
            require(info, key, root / INFO_PATH)
        features = info["features"]
        if any(spec.get("dtype") == "video" for spec in features.values()):
            require(info, "video_path", root / INFO_PATH)
        if version == "v2.1":
            tasks = _tasks_jsonl(root / "meta/tasks.jsonl")
            episodes = _read_jsonl(root / "meta/episodes.jsonl")
        else:
            tasks = _tasks_parquet(root / TASKS_V3)
            episodes = _episodes_parquet(root)
        episodes.sort(key=lambda row: int(require(row, "episode_index", root / "meta/episodes")))
        return cls(root, info, version, float(info["fps"]), features, tasks, episodes)

    @property
    def video_features(self) -> list[str]:
        return [name for name, spec in self.features.items() if spec.get("dtype") == "video"]

    def data_files(self) -> list[Path]:
        """The data parquet files, in the order of their rows in the dataset."""
        if self.version == "v2.1":
            return [self.root / self.info["data_path"].format(episode_chunk=self._chunk(row),
                                                              episode_index=int(row["episode_index"]))
                    for row in self.episodes]
        where = self.root / "meta/episodes"
        places = dict.fromkeys((int(require(row, "data/chunk_index", where)), int(require(row, "data/file_index", where)))
                               for row in self.episodes)
        return [self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
                for chunk, file in places]

    def video(self, feature: str, episode: int) -> tuple[str, float]:
        """(the mp4 holding ``feature`` of the episode in row ``episode`` of :attr:`episodes`,
        relative to the root; the video time of the episode's timestamp 0)."""
        row = self.episodes[episode]
        if self.version == "v2.1":
            path = self.info["video_path"].format(episode_chunk=self._chunk(row), video_key=feature,
                                                  episode_index=int(row["episode_index"]))
            return path, 0.0
        prefix = f"videos/{feature}/"
        where = self.root / "meta/episodes"
        path = self.info["video_path"].format(video_key=feature,
                                              chunk_index=int(require(row, prefix + "chunk_index", where)),
                                              file_index=int(require(row, prefix + "file_index", where)))
        return path, float(require(row, prefix + "from_timestamp", where))

    def _chunk(self, row: dict[str, Any]) -> int:
        return int(row["episode_index"]) // int(self.info.get("chunks_size", 1000))


def require(mapping: dict[str, Any], key: str, where: Path | str) -> Any:
    """``mapping[key]``, or a DatasetError naming the file and the key."""
    if key not in mapping:
        raise DatasetError(f"{where}: missing key {key!r}")
    return mapping[key]


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: unreadable JSON ({err})") from err


def read_parquet(path: Path) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise DatasetError(f"{path}: unreadable parquet ({err})") from err


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}: line {number} is not JSON ({err})") from err
    return rows


def _tasks_jsonl(path: Path) -> list[str]:
    rows = _read_jsonl(path)
    return _task_list({int(require(row, "task_index", path)): str(require(row, "task", path)) for row in rows}, path)


def _tasks_parquet(path: Path) -> list[str]:
    """The task strings of ``meta/tasks.parquet``: LeRobot writes them as the pandas index
    (a column named after the index, ``task`` or ``__index_level_0__``)."""
    table = read_parquet(path)
    names = [name for name in table.column_names if name != "task_index"]
    if "task_index" not in table.column_names or len(names) != 1:
        raise DatasetError(f"{path}: expected columns task_index and the task strings, got {table.column_names}")
    indices = table["task_index"].to_pylist()
    return _task_list(dict(zip(indices, table[names[0]].to_pylist())), path)


def _task_list(by_index: dict[int, str], path: Path) -> list[str]:
    if sorted(by_index) != list(range(len(by_index))):
        raise DatasetError(f"{path}: task_index values {sorted(by_index)} are not 0..{len(by_index) - 1}")
    return [by_index[index] for index in range(len(by_index))]


def _episodes_parquet(root: Path) -> list[dict[str, Any]]:
    """Every row of every ``meta/episodes/chunk-*/file-*.parquet``, without the stats columns."""
    files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{root / 'meta/episodes'}: no episodes parquet files (chunk-*/file-*.parquet)")
    rows = []
    for path in files:
        table = read_parquet(path)
        table = table.select([name for name in table.column_names if not name.startswith("stats/")])
        rows.extend(table.to_pylist())
    return rows
