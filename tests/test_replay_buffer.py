"""ReplayBuffer: layout, round trips, atomic appends and recovery from interrupted writes."""

import numpy as np
import pytest
import zarr

from robo_policies.data import DatasetError, ReplayBuffer


def make_episode(length: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    steps = np.arange(length, dtype=np.float32)[:, None] + offset
    return {
        "action": np.repeat(steps, 2, axis=1),
        "obs": np.repeat(steps, 3, axis=1).astype(np.float64),
        "image": np.full((length, 4, 4, 3), int(offset) % 255, dtype=np.uint8),
    }


def test_layout_opens_with_plain_zarr(tmp_path):
    path = tmp_path / "demo.zarr"
    buffer = ReplayBuffer.create(path, attrs={"task": "t"})
    for i, length in enumerate([5, 3, 7]):
        buffer.add_episode(make_episode(length, offset=100 * i), {"seed": i})
    root = zarr.open_group(str(path), mode="r")
    assert root["meta/episode_ends"][:].tolist() == [5, 8, 15]
    assert root["data/action"].shape == (15, 2)
    assert root["data/image"].dtype == np.uint8
    assert root["meta/seed"][:].tolist() == [0, 1, 2]
    assert root.attrs["task"] == "t"


def test_round_trip_and_episode_access(tmp_path):
    path = tmp_path / "demo.zarr"
    buffer = ReplayBuffer.create(path)
    episodes = [make_episode(n, offset=10 * i) for i, n in enumerate([4, 6])]
    for episode in episodes:
        buffer.add_episode(episode)
    reopened = ReplayBuffer.open(path)
    assert reopened.n_episodes == 2 and reopened.n_steps == 10
    assert reopened.keys == ["action", "image", "obs"]
    assert reopened.episode_lengths.tolist() == [4, 6]
    for i, episode in enumerate(episodes):
        got = reopened.episode(i)
        for key, value in episode.items():
            np.testing.assert_array_equal(got[key], value)
            assert got[key].dtype == value.dtype
    assert reopened.episode_slice(-1) == slice(4, 10)


def test_in_memory_buffer():
    buffer = ReplayBuffer.create(None)
    buffer.add_episode(make_episode(3))
    assert buffer.location == "<memory>" and buffer.n_steps == 3
    np.testing.assert_array_equal(buffer.as_numpy(["action"])["action"][:, 0], [0, 1, 2])


def test_create_refuses_to_replace_existing(tmp_path):
    path = tmp_path / "demo.zarr"
    ReplayBuffer.create(path).add_episode(make_episode(3))
    with pytest.raises(FileExistsError, match="demo.zarr"):
        ReplayBuffer.create(path)
    assert ReplayBuffer.open(path).n_episodes == 1


@pytest.mark.parametrize(
    "episode, message",
    [
        ({"action": np.zeros((3, 2)), "obs": np.zeros((4, 3))}, "differ in length"),
        ({"action": np.zeros((0, 2))}, "no steps"),
        ({"action": np.zeros((3, 5)), "obs": np.zeros((3, 3)), "image": np.zeros((3, 4, 4, 3), np.uint8)}, "per-step shape"),
        ({"action": np.zeros((3, 2))}, "differ from the stored keys"),
    ],
)
def test_bad_episodes_are_rejected_and_lose_nothing(tmp_path, episode, message):
    buffer = ReplayBuffer.create(tmp_path / "demo.zarr")
    buffer.add_episode(make_episode(3))
    with pytest.raises(ValueError, match=message):
        buffer.add_episode(episode)
    assert ReplayBuffer.open(tmp_path / "demo.zarr").n_episodes == 1


def test_trailing_partial_data_is_ignored_then_overwritten(tmp_path):
    path = tmp_path / "demo.zarr"
    buffer = ReplayBuffer.create(path)
    buffer.add_episode(make_episode(4), {"seed": 0})
    # Simulate a crash after some data arrays of a second episode were written.
    root = zarr.open_group(str(path), mode="r+")
    root["data/action"].resize((9, 2))
    root["data/action"][4:] = -1
    with pytest.warns(UserWarning, match="trailing rows of 'data/action'"):
        reopened = ReplayBuffer.open(path, mode="a")
    assert reopened.n_episodes == 1 and reopened.n_steps == 4
    reopened.add_episode(make_episode(2, offset=50), {"seed": 1})
    final = ReplayBuffer.open(path)
    np.testing.assert_array_equal(final.episode(1)["action"][:, 0], [50, 51])
    assert final["action"].shape[0] == 6


def test_unset_trailing_episode_end_is_dropped(tmp_path):
    path = tmp_path / "demo.zarr"
    ReplayBuffer.create(path).add_episode(make_episode(4))
    ends = zarr.open_group(str(path), mode="r+")["meta/episode_ends"]
    ends.resize((2,))  # the shape was written, the value never was (reads as fill value 0)
    with pytest.warns(UserWarning, match="unfinished episode"):
        assert ReplayBuffer.open(path).n_episodes == 1


def test_structural_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        ReplayBuffer.open(tmp_path / "missing.zarr")
    path = tmp_path / "demo.zarr"
    ReplayBuffer.create(path).add_episode(make_episode(4))
    zarr.open_group(str(path), mode="r+")["meta/episode_ends"][0] = 9
    with pytest.raises(DatasetError, match=r"'data/action' has 4 rows but meta/episode_ends needs 9"):
        ReplayBuffer.open(path)
