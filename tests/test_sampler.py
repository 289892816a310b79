"""SequenceSampler: padding and masks at episode edges; no window crosses an episode."""

import numpy as np
import pytest

from robo_policies.data import ReplayBuffer, SequenceSampler, episode_split, window_offsets


@pytest.fixture
def arrays():
    # Two episodes of lengths 3 and 5; each row stores (episode, step) so we can trace it.
    episode = np.array([0] * 3 + [1] * 5)
    step = np.array([0, 1, 2, 0, 1, 2, 3, 4])
    rows = np.stack([episode, step], axis=1).astype(np.float32)
    return {"obs": rows, "action": rows.copy()}, np.array([3, 8])


def test_offsets_follow_dp_convention():
    obs, action = window_offsets(n_obs_steps=2, horizon=4)
    assert obs.tolist() == [-1, 0] and action.tolist() == [-1, 0, 1, 2]
    with pytest.raises(ValueError, match="n_obs_steps"):
        window_offsets(n_obs_steps=3, horizon=2)


def test_window_at_episode_start_is_padded_before(arrays):
    data, ends = arrays
    obs_off, act_off = window_offsets(2, 4)
    sampler = SequenceSampler(data, ends, {"obs": obs_off, "action": act_off})
    first = sampler.sample(0)  # anchor = step 0 of episode 0
    assert first["obs"][:, 1].tolist() == [0, 0]
    assert first["obs_is_pad"].tolist() == [True, False]
    assert first["action"][:, 1].tolist() == [0, 0, 1, 2]
    assert first["action_is_pad"].tolist() == [True, False, False, False]


def test_window_at_episode_end_is_padded_after(arrays):
    data, ends = arrays
    obs_off, act_off = window_offsets(2, 4)
    sampler = SequenceSampler(data, ends, {"obs": obs_off, "action": act_off})
    last_of_first = sampler.sample(2)  # anchor = step 2 (last) of episode 0
    assert last_of_first["action"][:, 0].tolist() == [0, 0, 0, 0]
    assert last_of_first["action"][:, 1].tolist() == [1, 2, 2, 2]
    assert last_of_first["action_is_pad"].tolist() == [False, False, True, True]


def test_no_window_crosses_an_episode(arrays):
    data, ends = arrays
    sampler = SequenceSampler(data, ends, {"obs": np.arange(-3, 1), "action": np.arange(-3, 6)})
    assert len(sampler) == 8
    batch = sampler.sample(np.arange(len(sampler)))
    for key in ("obs", "action"):
        episode_of_rows = batch[key][:, :, 0]
        assert (episode_of_rows == episode_of_rows[:, :1]).all()
        # Unpadded entries are exactly anchor + offset within the episode.
        anchor_step = batch["obs"][:, -1, 1]
        expected = anchor_step[:, None] + sampler.key_offsets[key][None, :]
        pad = batch[f"{key}_is_pad"]
        assert np.array_equal(batch[key][:, :, 1][~pad], expected[~pad])
        assert ((expected < 0) | (expected >= np.where(episode_of_rows == 0, 3, 5)))[pad].all()


def test_zarr_arrays_stream_the_same_windows(tmp_path, arrays):
    data, ends = arrays
    buffer = ReplayBuffer.create(tmp_path / "d.zarr")
    buffer.add_episode({k: v[:3] for k, v in data.items()})
    buffer.add_episode({k: v[3:] for k, v in data.items()})
    offsets = {"obs": np.arange(-1, 1), "action": np.arange(-1, 3)}
    from_zarr = SequenceSampler({k: buffer[k] for k in data}, buffer.episode_ends, offsets)
    in_memory = SequenceSampler(data, ends, offsets)
    idx = np.arange(8)
    for key, value in in_memory.sample(idx).items():
        np.testing.assert_array_equal(from_zarr.sample(idx)[key], value)


def test_episode_subset_and_split(arrays):
    data, ends = arrays
    sampler = SequenceSampler(data, ends, {"obs": [0]}, episodes=[1])
    assert len(sampler) == 5 and (sampler.sample(np.arange(5))["obs"][:, 0, 0] == 1).all()
    train, val = episode_split(10, val_ratio=0.2, seed=3)
    assert len(val) == 2 and sorted([*train, *val]) == list(range(10))
    assert np.array_equal(episode_split(10, 0.2, 3)[1], val)
    assert len(episode_split(2, 0.01, 0)[1]) == 1  # at least one validation episode
    assert len(episode_split(2, 0.9, 0)[0]) == 1  # at least one training episode
