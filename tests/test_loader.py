"""The training data loader: camera frames stay on disk and are read window by window, and a
batch depends only on (seed, rank, step), not on workers or where a run resumed."""

import numpy as np
import pytest
import torch
import zarr

from robo_policies.data import ReplayBuffer, SequenceSampler, window_offsets
from robo_policies.data.loader import training_arrays, training_batches
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "nav.zarr"
    collect(get_task("diffdrive_nav_image"), path, episodes=2, seed=0, progress=False,
            env_kwargs={"image_size": 32})
    return path


class CountingArray:
    """A zarr array that records the rows of every read."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, rows):
        self.reads.append(rows.stop - rows.start)
        return self.array[rows]


def windows(arrays, buffer, n_obs_steps=2, horizon=8):
    obs, action = window_offsets(n_obs_steps, horizon)
    offsets = {"base_pose": obs, "front_image": obs, "action": action}
    return SequenceSampler(arrays, buffer.episode_ends, offsets)


def test_images_stay_on_disk_and_a_batch_reads_only_its_windows_frames(image_dataset):
    buffer = ReplayBuffer.open(image_dataset)
    arrays = training_arrays(buffer, ["base_pose", "front_image", "action"])
    assert isinstance(arrays["front_image"], zarr.Array)  # never materialised
    assert isinstance(arrays["base_pose"], np.ndarray) and isinstance(arrays["action"], np.ndarray)
    arrays["front_image"] = CountingArray(arrays["front_image"])
    batches = training_batches(windows(arrays, buffer), batch_size=16, seed=0, rank=0, first_step=0, steps=3,
                               workers=0)
    shapes = [tuple(batch["front_image"].shape) for batch in batches]
    assert shapes == [(16, 2, 32, 32, 3)] * 3
    reads = arrays["front_image"].reads
    assert len(reads) == 3 * 16 and max(reads) <= 2  # one span of To frames per window, never the array
    assert buffer["front_image"].shape[0] > 100


def test_a_batch_is_the_same_with_workers_and_after_a_resume(image_dataset):
    buffer = ReplayBuffer.open(image_dataset)
    sampler = windows(training_arrays(buffer, ["base_pose", "front_image", "action"]), buffer)
    in_process = list(training_batches(sampler, 8, seed=3, rank=0, first_step=0, steps=4, workers=0))
    in_worker = list(training_batches(sampler, 8, seed=3, rank=0, first_step=2, steps=4, workers=1))
    for expected, got in zip(in_process[2:], in_worker):
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), key
    other_rank = next(training_batches(sampler, 8, seed=3, rank=1, first_step=0, steps=1, workers=0))
    assert not torch.equal(other_rank["action"], in_process[0]["action"])
