"""Opening a dataset for reading, whatever its storage: a zarr ReplayBuffer or a LeRobot directory.

Training, validation and ``robo dataset info`` read datasets through :func:`open_dataset`, so
``robo train dataset=<lerobot_dir>`` trains from a LeRobotDataset directory in place (no
conversion). Both kinds answer the same reading interface: ``keys``, ``dataset[key]`` (an
array-like indexed by rows), ``episode_ends``, ``n_episodes``, ``n_steps``, ``meta(name)``,
``meta_keys``, ``attrs``, ``episode``, ``as_numpy`` and ``location``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Union

from robo_policies.data.lerobot import is_lerobot_dir
from robo_policies.data.replay_buffer import ReplayBuffer

if TYPE_CHECKING:
    from robo_policies.data.lerobot.dataset import LeRobotDataset

AnyDataset = Union[ReplayBuffer, "LeRobotDataset"]


def open_dataset(path: str | Path) -> AnyDataset:
    """A LeRobotDataset for a directory with ``meta/info.json``, else the zarr ReplayBuffer at
    ``path`` opened for reading."""
    if is_lerobot_dir(path):
        from robo_policies.data.lerobot.dataset import LeRobotDataset  # pyarrow and PyAV only when needed

        return LeRobotDataset(path)
    return ReplayBuffer.open(path, mode="r")
