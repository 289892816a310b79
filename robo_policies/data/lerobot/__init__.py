"""LeRobotDataset directories (codebase v2.1 and v3.0), read in place and written.

A LeRobot dataset is a directory with ``meta/info.json`` (fps, features, path templates),
per-frame parquet files under ``data/`` and one mp4 per camera under ``videos/`` (v2.1: one
file per episode; v3.0: episodes concatenated, located by per-episode from/to timestamps in
``meta/episodes/``). Modules, in reading order:

* :mod:`.layout`: where things are (the two versions' paths and meta files) and the key
  mapping between LeRobot feature names and our dataset keys;
* :mod:`.video`: decoding frames by timestamp (as LeRobot seeks) and encoding mp4s;
* :mod:`.dataset`: :class:`~.dataset.LeRobotDataset`, a read-only dataset with the reading
  interface of :class:`~robo_policies.data.replay_buffer.ReplayBuffer`, so ``robo train
  dataset=<dir>`` trains from the directory without converting it;
* :mod:`.writer`: episodes added one at a time to a v3.0 directory, crash-safe (``robo
  record format=lerobot``; ``robo dataset convert in.zarr out_dir format=lerobot``).

Key mapping (LeRobot feature -> our key), :func:`.layout.default_key`:

* ``observation.state`` -> ``state``, ``observation.environment_state`` -> ``environment_state``;
* ``observation.images.<cam>`` -> ``<cam>_image`` ((H, W, 3) uint8, from video or PNG);
* any other ``observation.<x>`` -> ``<x>``;
* ``next.reward`` -> ``reward``, ``next.done`` -> ``done``; any other name is kept
  (``action``, ``timestamp``);
* ``episode_index``, ``frame_index`` and ``index`` give the episode boundaries and are not
  stored; ``task_index`` becomes the per-episode ``meta/task_index`` and the task strings
  the dataset attribute ``tasks`` (as ``robo record`` stores them).

Override it with ``keys={feature: our_key}`` (``keys={observation.images.top: agentview_image}``
on the command line). A directory written by :mod:`.writer` stores its exact mapping, per-step
shapes, per-episode meta and dataset attributes, so zarr -> LeRobot -> zarr gives back the
same dataset.
"""

from __future__ import annotations

from pathlib import Path

INFO_PATH = "meta/info.json"


def is_lerobot_dir(path: str | Path) -> bool:
    """Whether ``path`` is a LeRobot dataset directory (it has ``meta/info.json``). Cheap: it
    imports neither pyarrow nor PyAV."""
    return (Path(path) / INFO_PATH).is_file()
