"""Training batches, gathered from the dataset while the model trains.

Low-dimensional arrays and actions are small and live in memory. Camera images stay in the
zarr store, one frame per chunk, and a batch reads only the frames of its windows, so an
image dataset larger than the machine's memory still trains. With ``workers > 0`` worker
processes read and decode the next batches while the model steps on the current one.

Batch ``step`` holds the windows drawn from the seed sequence ``(seed, rank, step)``: the
same in every run, whatever the number of workers or how far ahead they read, so a resumed
run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from robo_policies.data.datasets import AnyDataset
from robo_policies.data.replay_buffer import is_image
from robo_policies.data.sampler import SequenceSampler

PREFETCH_BATCHES = 4
"""Batches each worker reads ahead of the training step."""


def training_arrays(buffer: AnyDataset, keys: list[str]) -> dict[str, Any]:
    """``keys`` of ``buffer`` as a window sampler reads them: camera images as the dataset's
    own arrays (zarr arrays, or a LeRobot directory's lazy frames: read frame by frame when a
    batch needs them), everything else in memory."""
    images = [key for key in keys if is_image(buffer[key].shape[1:], buffer[key].dtype)]
    in_memory = buffer.as_numpy([key for key in keys if key not in images])
    return {**in_memory, **{key: buffer[key] for key in images}}


def batch_indices(n_windows: int, batch_size: int, seed: int, rank: int, step: int) -> np.ndarray:
    """The windows of batch ``step`` of process ``rank`` (drawn with replacement)."""
    return np.random.default_rng([seed, rank, step]).integers(0, n_windows, batch_size)


class StepBatches(Dataset):
    """Batch ``step`` of a run, as tensors (see the module docstring)."""

    def __init__(self, windows: SequenceSampler, batch_size: int, seed: int, rank: int) -> None:
        self.windows = windows
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        index = batch_indices(len(self.windows), self.batch_size, self.seed, self.rank, step)
        return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in self.windows.sample(index).items()}


def training_batches(windows: SequenceSampler, batch_size: int, seed: int, rank: int, first_step: int,
                     steps: int, workers: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches ``first_step`` .. ``steps - 1``; read by ``workers`` processes (0: in this one)."""
    batches = StepBatches(windows, batch_size, seed, rank)
    if workers == 0:
        yield from (batches[step] for step in range(first_step, steps))
        return
    # Spawned, not forked: the zarr store's I/O thread does not survive a fork. The loader's
    # own generator seeds its workers, so it never draws from the training noise's global RNG.
    loader = DataLoader(batches, batch_size=None, sampler=range(first_step, steps), num_workers=workers,
                        prefetch_factor=PREFETCH_BATCHES, multiprocessing_context=multiprocessing.get_context("spawn"),
                        worker_init_fn=_one_thread, generator=torch.Generator().manual_seed(seed))
    yield from loader


def _one_thread(_: int) -> None:
    """Workers only read and decode: one torch thread each leaves the cores to training."""
    torch.set_num_threads(1)
