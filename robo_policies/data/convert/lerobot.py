"""LeRobotDataset directory <-> zarr ReplayBuffer.

``robo dataset convert <lerobot_dir> out.zarr`` reads a v2.1 or v3.0 directory (any directory
with ``meta/info.json``) through :class:`~robo_policies.data.lerobot.dataset.LeRobotDataset`
and stores every key it maps (cameras decoded to (H, W, 3) uint8 frames), the per-episode meta
and the attributes. ``robo dataset convert in.zarr out_dir format=lerobot`` writes a v3.0
directory with :class:`~robo_policies.data.lerobot.writer.LeRobotWriter`, the writer ``robo
record format=lerobot`` adds its episodes with. The key mapping and the layouts are
documented in :mod:`robo_policies.data.lerobot`.
"""

from __future__ import annotations

from pathlib import Path

from robo_policies.data.lerobot.dataset import LeRobotDataset
from robo_policies.data.lerobot.writer import LeRobotWriter
from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.data.validate import validate_dataset
from robo_policies.utils.atomic import atomic_output
from robo_policies.utils.errors import ConfigError, DatasetError


def lerobot_to_zarr(src: str | Path, dst: str | Path, *, keys: dict[str, str] | None = None,
                    overwrite: bool = False) -> Path:
    """Convert the LeRobot directory ``src`` to a zarr dataset at ``dst`` (atomically);
    ``keys`` overrides the key mapping (``{feature: our_key}``)."""
    dataset = LeRobotDataset(src, keys=keys)
    with atomic_output(dst, overwrite=overwrite) as tmp:
        buffer = ReplayBuffer.create(tmp, attrs=dataset.attrs)
        meta = {name: dataset.meta(name) for name in dataset.meta_keys}
        for episode in range(dataset.n_episodes):
            buffer.add_episode(dataset.episode(episode), {name: values[episode] for name, values in meta.items()})
        validate_dataset(tmp, name=dst)  # what training would refuse never lands at dst
    return Path(dst)


def zarr_to_lerobot(src: str | Path, dst: str | Path, *, codec: str = "av1", images: str = "video",
                    fps: float | None = None, overwrite: bool = False) -> Path:
    """Write the zarr dataset ``src`` as a LeRobot v3.0 directory at ``dst`` (atomically).

    Args:
        codec: ``av1`` (libsvtav1, LeRobot's default) or ``h264`` (libx264) for the videos.
        images: ``video`` (one mp4 per camera) or ``png`` (lossless PNG bytes in the parquet).
        fps: the recording rate; the dataset's ``fps`` attribute by default.
    """
    validate_dataset(src)
    buffer = ReplayBuffer.open(src)
    rate = fps or buffer.attrs.get("fps")
    if not rate:
        raise ConfigError(f"{src} has no fps attribute; pass fps=<Hz> (LeRobot datasets need the frame rate)")
    if buffer.n_episodes == 0:
        raise DatasetError(f"{src}: no episodes to write")
    meta = {name: buffer.meta(name) for name in buffer.meta_keys}
    with atomic_output(dst, overwrite=overwrite) as tmp:
        writer = LeRobotWriter(tmp, fps=float(rate), attrs=buffer.attrs, codec=codec, images=images)
        writer.add_episodes((buffer.episode(episode), {name: values[episode] for name, values in meta.items()})
                            for episode in range(buffer.n_episodes))
    return Path(dst)
