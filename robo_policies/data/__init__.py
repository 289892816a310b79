"""Datasets: the zarr replay buffer, window sampling, normalisation, validation, converters."""

from robo_policies.data.normalizer import Normalizer
from robo_policies.data.replay_buffer import DatasetError, ReplayBuffer
from robo_policies.data.sampler import SequenceSampler, episode_split, window_offsets

__all__ = [
    "DatasetError",
    "Normalizer",
    "ReplayBuffer",
    "SequenceSampler",
    "episode_split",
    "window_offsets",
]
