"""`robo dataset validate` and `info`: a clean dataset passes; each defect exits 1 naming it."""

import shutil

import numpy as np
import pytest
import zarr

from robo_policies.data import ReplayBuffer


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "demo.zarr"
    buffer = ReplayBuffer.create(path, attrs={"task": "toy"})
    rng = np.random.default_rng(0)
    for length in (6, 4, 5):
        buffer.add_episode(
            {
                "action": rng.uniform(-2, 3, size=(length, 2)).astype(np.float32),
                "state": rng.normal(size=(length, 3)).astype(np.float32),
            }
        )
    return path


def test_clean_dataset_validates_and_describes(robo, dataset):
    result = robo("dataset", "validate", str(dataset))
    assert result.code == 0 and "3 episodes, 15 steps" in result.text
    result = robo("dataset", "info", str(dataset))
    assert result.code == 0
    assert "episodes  3" in result.text and "steps     15" in result.text
    assert "action                   (2,)             float32" in result.text
    assert "state                    (3,)             float32" in result.text
    action = zarr.open_group(str(dataset))["data/action"][:]
    assert np.array2string(action.min(0), precision=3) in result.text


def test_nan_action(robo, dataset):
    zarr.open_group(str(dataset), mode="r+")["data/action"][7, 1] = np.nan
    result = robo("dataset", "validate", str(dataset))
    assert result.code == 1 and "'data/action' has nan at step 7 (episode 1)" in result.text


def test_keys_of_mismatched_length(robo, dataset):
    zarr.open_group(str(dataset), mode="r+")["data/state"].resize((12, 3))
    result = robo("dataset", "validate", str(dataset))
    assert result.code == 1 and "'data/state' has 12 rows but meta/episode_ends needs 15" in result.text


def test_non_monotonic_episode_ends(robo, dataset):
    zarr.open_group(str(dataset), mode="r+")["meta/episode_ends"][:] = [6, 5, 15]
    result = robo("dataset", "validate", str(dataset))
    assert result.code == 1 and "not strictly increasing: episode_ends[1] = 5 after 6" in result.text


def test_missing_action_key(robo, tmp_path):
    path = tmp_path / "noaction.zarr"
    ReplayBuffer.create(path).add_episode({"state": np.zeros((3, 2), np.float32)})
    result = robo("dataset", "validate", str(path))
    assert result.code == 1 and "missing key 'data/action'" in result.text


def test_truncated_chunk(robo, dataset):
    chunk = dataset / "data" / "action" / "0.0"
    chunk.write_bytes(chunk.read_bytes()[:20])
    result = robo("dataset", "validate", str(dataset))
    assert result.code == 1 and "'data/action' is corrupt or truncated" in result.text


def test_a_corrupt_chunk_stops_training_naming_the_array(robo, dataset, tmp_path):
    chunk = dataset / "data" / "action" / "0.0"
    chunk.write_bytes(chunk.read_bytes()[:20])
    result = robo("train", f"dataset={dataset}", f"out={tmp_path / 'run'}", "train.steps=1", "progress=false")
    assert result.code == 2 and "demo.zarr: 'data/action' is corrupt or truncated" in result.err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_corrupt_metadata(robo, dataset):
    (dataset / "meta" / "episode_ends" / ".zarray").write_text("{not json")
    result = robo("dataset", "validate", str(dataset))
    assert result.code == 1 and "demo.zarr" in result.text and "episode_ends" in result.text


def test_missing_store_and_missing_group(robo, tmp_path, dataset):
    result = robo("dataset", "validate", str(tmp_path / "nothing.zarr"))
    assert result.code == 1 and "nothing.zarr: no such dataset" in result.text
    shutil.rmtree(dataset / "meta")
    result = robo("dataset", "validate", str(dataset))
    assert result.code == 1 and "missing group 'meta/'" in result.text


def test_a_dataset_without_episodes_does_not_validate(robo, tmp_path):
    path = tmp_path / "empty.zarr"
    ReplayBuffer.create(path)
    result = robo("dataset", "validate", str(path))
    assert result.code == 1 and f"{path}: no episodes" in result.text
    assert "OK" not in result.text


def test_an_hdf5_file_is_named_with_the_command_that_converts_it(robo, tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "demos.hdf5"
    with h5py.File(path, "w") as f:
        f["data/demo_0/actions"] = np.zeros((3, 2))
    result = robo("dataset", "validate", str(path))
    assert result.code == 1 and f"{path}: this is an HDF5 file" in result.text
    assert f"robo dataset convert {path} {tmp_path / 'demos.zarr'}" in result.text
    assert "not a readable zarr group" not in result.text


def test_chunks_of_zeros_are_stored_so_only_a_deleted_chunk_is_missing(robo, tmp_path):
    # zarr skips chunks that hold only the fill value; this library's datasets (format 2)
    # store them, so a robot that stood still (all-zero actions) validates and a deleted
    # chunk does not. Datasets of other writers may skip them: there a missing chunk is zeros.
    path = tmp_path / "still.zarr"
    ReplayBuffer.create(path).add_episode({"action": np.zeros((5, 2), np.float32)})
    assert robo("dataset", "validate", path).code == 0
    (path / "data" / "action" / "0.0").unlink()
    result = robo("dataset", "validate", path)
    assert result.code == 1 and "'data/action' is missing its chunk file '0.0' (rows 0:5)" in result.err
    root = zarr.open_group(str(path), mode="r+")
    root.attrs["version"] = 1  # as written before format 2, or by a tool that skips empty chunks
    assert robo("dataset", "validate", path).code == 0
