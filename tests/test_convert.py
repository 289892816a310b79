"""Dataset converters: robomimic HDF5 <-> zarr, OGBench npz -> zarr, and the dispatcher."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from robo_policies.data.convert import convert
from robo_policies.data.observation_keys import default_observation_keys
from robo_policies.utils.errors import ConfigError
from robo_policies.data.convert.ogbench_npz import npz_to_zarr
from robo_policies.data.convert.robomimic_hdf5 import robomimic_to_zarr, zarr_to_robomimic
from robo_policies.data.replay_buffer import DatasetError, ReplayBuffer

DEMO_LENGTHS = {10: 5, 0: 3, 2: 4}  # written out of order on purpose
ENV_ARGS = json.dumps(
    {"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20, "reward_shaping": False}},
    indent=4,
)


def make_robomimic(path: Path, lengths: dict[int, int] = DEMO_LENGTHS, seed: int = 0) -> Path:
    """A small robomimic-style file: several obs dtypes/shapes, next_obs, states and masks."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for number, steps in lengths.items():
            demo = data.create_group(f"demo_{number}")
            demo["obs/robot0_eef_pos"] = rng.normal(size=(steps, 3))  # float64
            demo["obs/robot0_joint_pos"] = rng.normal(size=(steps, 7)).astype(np.float32)
            demo["obs/agentview_image"] = rng.integers(0, 256, (steps, 8, 8, 3), dtype=np.uint8)
            demo["next_obs/robot0_eef_pos"] = rng.normal(size=(steps, 3))
            demo["next_obs/robot0_joint_pos"] = rng.normal(size=(steps, 7)).astype(np.float32)
            demo["next_obs/agentview_image"] = rng.integers(0, 256, (steps, 8, 8, 3), np.uint8)
            demo["actions"] = rng.uniform(-1, 1, size=(steps, 7))
            demo["rewards"] = np.r_[np.zeros(steps - 1), 1.0]
            demo["dones"] = np.r_[np.zeros(steps - 1, dtype=np.int64), 1]
            demo["states"] = rng.normal(size=(steps, 32))
            demo.attrs["num_samples"] = steps
            demo.attrs["model_file"] = f"<mujoco model='demo_{number}'/>"
        data.attrs["total"] = sum(lengths.values())
        data.attrs["env_args"] = ENV_ARGS
        f["mask/train"] = np.array(["demo_10", "demo_0"], dtype="S")
        f["mask/valid"] = np.array(["demo_2"], dtype="S")
    return path


def hdf5_contents(path: Path) -> dict[str, tuple]:
    """Every group and dataset: (kind, dtype, shape, values, attrs) for exact comparison."""
    contents: dict[str, tuple] = {}

    def visit(name: str, item: h5py.Group | h5py.Dataset) -> None:
        attrs = {key: _attr(value) for key, value in item.attrs.items()}
        if isinstance(item, h5py.Dataset):
            value = item[()]
            contents[name] = ("dataset", value.dtype.str, value.shape, value.tobytes(), attrs)
        else:
            contents[name] = ("group", None, None, None, attrs)

    with h5py.File(path, "r") as f:
        contents["/"] = ("group", None, None, None, {k: _attr(v) for k, v in f.attrs.items()})
        f.visititems(visit)
    return contents


def _attr(value: object) -> tuple:
    array = np.asarray(value)
    return type(value).__name__, array.dtype.str, array.tolist()


@pytest.fixture
def robomimic_file(tmp_path: Path) -> Path:
    return make_robomimic(tmp_path / "demos.hdf5")


# -- robomimic --------------------------------------------------------------------------


def test_robomimic_round_trip_is_identical(robomimic_file: Path, tmp_path: Path) -> None:
    zarr_path = convert(robomimic_file, tmp_path / "demos.zarr")
    back = convert(zarr_path, tmp_path / "back.hdf5")
    original, written = hdf5_contents(robomimic_file), hdf5_contents(back)
    assert sorted(written) == sorted(original)
    for name, entry in original.items():
        assert written[name] == entry, name
    # the essentials, spelled out
    with h5py.File(back, "r") as f:
        assert f["data"].attrs["env_args"] == ENV_ARGS
        assert f["data"].attrs["total"] == sum(DEMO_LENGTHS.values())
        assert f["data"].attrs["total"].dtype == np.int64
        assert f["data/demo_10"].attrs["num_samples"] == 5
        assert list(f["mask/train"][()]) == [b"demo_10", b"demo_0"]
        assert list(f["mask/valid"][()]) == [b"demo_2"]
        assert f["data/demo_2/obs/agentview_image"].dtype == np.uint8
        assert f["data/demo_2/obs/robot0_joint_pos"].dtype == np.float32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.hdf5", "demos.hdf5", "demos.zarr"]


def test_robomimic_zarr_layout(robomimic_file: Path, tmp_path: Path) -> None:
    out = robomimic_to_zarr(robomimic_file, tmp_path / "demos.zarr")
    root = zarr.open_group(str(out), mode="r")
    data = root["data"]
    assert sorted(data.array_keys()) == sorted(
        [
            "action", "reward", "done", "states", "agentview_image", "robot0_eef_pos",
            "robot0_joint_pos", "next_obs.agentview_image", "next_obs.robot0_eef_pos",
            "next_obs.robot0_joint_pos",
        ]
    )
    # natural order: demo_0 (3 steps), demo_2 (4), demo_10 (5)
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [3, 7, 12])
    np.testing.assert_array_equal(root["meta/demo_index"][:], [0, 2, 10])
    assert data["robot0_eef_pos"].dtype == np.float64
    assert data["robot0_joint_pos"].dtype == np.float32
    assert data["agentview_image"].dtype == np.uint8
    assert data["agentview_image"].shape == (12, 8, 8, 3)
    assert data["done"].dtype == np.int64
    with h5py.File(robomimic_file, "r") as f:
        np.testing.assert_array_equal(data["action"][7:12], f["data/demo_10/actions"][()])
        np.testing.assert_array_equal(
            data["next_obs.agentview_image"][3:7], f["data/demo_2/next_obs/agentview_image"][()]
        )
    attrs = dict(root.attrs)
    assert attrs["source_format"] == "robomimic_hdf5"
    assert attrs["env_args"] == json.loads(ENV_ARGS)
    assert attrs["env_args_json"] == ENV_ARGS
    assert attrs["robomimic_masks"] == {"train": [10, 0], "valid": [2]}
    assert attrs["robomimic_keys"]["next_obs.robot0_eef_pos"] == "next_obs/robot0_eef_pos"
    assert ReplayBuffer.open(out).n_episodes == 3


def test_filter_key_converts_only_listed_demos(robomimic_file: Path, tmp_path: Path) -> None:
    out = robomimic_to_zarr(robomimic_file, tmp_path / "valid.zarr", filter_key="valid")
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 1
    np.testing.assert_array_equal(buffer.meta("demo_index"), [2])
    with h5py.File(robomimic_file, "r") as f:
        np.testing.assert_array_equal(buffer["action"][:], f["data/demo_2/actions"][()])
    assert buffer.attrs["robomimic_filter_key"] == "valid"
    assert buffer.attrs["robomimic_masks"] == {"train": [], "valid": [2]}
    back = zarr_to_robomimic(out, tmp_path / "valid.hdf5")
    with h5py.File(back, "r") as f:
        assert list(f["data"]) == ["demo_2"]
        assert f["data"].attrs["total"] == 4
        assert list(f["mask/valid"][()]) == [b"demo_2"]
        assert len(f["mask/train"][()]) == 0


def test_missing_filter_key_names_key_and_file(robomimic_file: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        robomimic_to_zarr(robomimic_file, tmp_path / "x.zarr", filter_key="test")
    message = str(err.value)
    assert "'test'" in message and str(robomimic_file) in message
    assert "train, valid" in message
    assert not (tmp_path / "x.zarr").exists()


def test_obs_keys_selects_and_names_missing_key(robomimic_file: Path, tmp_path: Path) -> None:
    out = robomimic_to_zarr(robomimic_file, tmp_path / "a.zarr", obs_keys=["robot0_eef_pos"])
    assert ReplayBuffer.open(out).keys == sorted(
        ["action", "done", "reward", "states", "robot0_eef_pos", "next_obs.robot0_eef_pos"]
    )
    with pytest.raises(DatasetError, match="no obs key 'gripper'.*agentview_image"):
        robomimic_to_zarr(robomimic_file, tmp_path / "b.zarr", obs_keys=["gripper"])


def test_length_mismatch_names_demo_and_key(tmp_path: Path) -> None:
    path = make_robomimic(tmp_path / "bad.hdf5")
    with h5py.File(path, "a") as f:
        del f["data/demo_2/obs/robot0_joint_pos"]
        f["data/demo_2/obs/robot0_joint_pos"] = np.zeros((3, 7), np.float32)
    with pytest.raises(DatasetError) as err:
        robomimic_to_zarr(path, tmp_path / "bad.zarr")
    message = str(err.value)
    assert str(path) in message and "demo_2" in message
    assert "obs/robot0_joint_pos" in message and "3 steps" in message and "4" in message
    assert not (tmp_path / "bad.zarr").exists()


@pytest.mark.parametrize("where", ["actions", "obs/robot0_eef_pos"])
def test_non_finite_values_are_refused_naming_demo_key_and_step(tmp_path: Path, where: str) -> None:
    path = make_robomimic(tmp_path / "nan.hdf5")
    with h5py.File(path, "a") as f:
        values = f[f"data/demo_2/{where}"][:]
        values[2, 1] = np.nan
        f[f"data/demo_2/{where}"][...] = values
    with pytest.raises(DatasetError) as err:
        robomimic_to_zarr(path, tmp_path / "nan.zarr")
    message = str(err.value)
    assert str(path) in message and f"data/demo_2/{where} has nan at step 2" in message
    assert not (tmp_path / "nan.zarr").exists()


def test_obs_key_colliding_with_action_is_an_error(tmp_path: Path) -> None:
    path = make_robomimic(tmp_path / "bad.hdf5")
    with h5py.File(path, "a") as f:
        for number, steps in DEMO_LENGTHS.items():
            f[f"data/demo_{number}/obs/action"] = np.zeros((steps, 2))
    with pytest.raises(DatasetError, match="obs key 'action' collides"):
        robomimic_to_zarr(path, tmp_path / "bad.zarr")


def test_unreadable_inputs_are_named(tmp_path: Path) -> None:
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(DatasetError, match=f"{text}: not an HDF5 file"):
        convert(text, tmp_path / "x.zarr")
    empty = tmp_path / "empty.hdf5"
    with h5py.File(empty, "w") as f:
        f.create_group("other")
    with pytest.raises(DatasetError, match=f"{empty}: no 'data' group"):
        convert(empty, tmp_path / "x.zarr")
    with pytest.raises(DatasetError, match="no such file"):
        convert(tmp_path / "missing.hdf5", tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()


def test_writes_are_atomic(robomimic_file: Path, tmp_path: Path, monkeypatch) -> None:
    dst = tmp_path / "demos.zarr"
    robomimic_to_zarr(robomimic_file, dst)
    with pytest.raises(FileExistsError):
        robomimic_to_zarr(robomimic_file, dst)

    calls = []
    original = ReplayBuffer.add_episode

    def failing_add_episode(self, data, episode_meta=None):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        original(self, data, episode_meta)

    monkeypatch.setattr(ReplayBuffer, "add_episode", failing_add_episode)
    with pytest.raises(RuntimeError, match="disk full"):
        robomimic_to_zarr(robomimic_file, dst, filter_key="train", overwrite=True)
    calls.clear()
    with pytest.raises(RuntimeError, match="disk full"):
        robomimic_to_zarr(robomimic_file, tmp_path / "new.zarr")
    monkeypatch.undo()
    # the old dataset is untouched, the new one never appeared, and no temporaries remain
    assert ReplayBuffer.open(dst).n_episodes == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.hdf5", "demos.zarr"]

    robomimic_to_zarr(robomimic_file, dst, filter_key="train", overwrite=True)
    assert ReplayBuffer.open(dst).n_episodes == 2
    back = tmp_path / "back.hdf5"
    zarr_to_robomimic(dst, back)
    with pytest.raises(FileExistsError):
        zarr_to_robomimic(dst, back)
    zarr_to_robomimic(dst, back, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.hdf5", "demos.hdf5", "demos.zarr"]


def test_plain_buffer_to_robomimic_uses_default_names(tmp_path: Path) -> None:
    buffer = ReplayBuffer.create(tmp_path / "plain.zarr", attrs={"task": "t"})
    for steps in (2, 3):
        buffer.add_episode(
            {
                "state": np.ones((steps, 4), np.float32),
                "action": np.zeros((steps, 2), np.float32),
                "reward": np.zeros(steps, np.float32),
            },
            {"seed": steps},
        )
    out = convert(tmp_path / "plain.zarr", tmp_path / "plain.h5")
    with h5py.File(out, "r") as f:
        assert sorted(f["data"]) == ["demo_0", "demo_1"]
        assert sorted(f["data/demo_1"]) == ["actions", "obs", "rewards"]
        assert f["data/demo_1/obs/state"].shape == (3, 4)
        assert f["data/demo_1"].attrs["num_samples"] == 3
        assert f["data"].attrs["total"] == 5
        assert "env_args" not in f["data"].attrs and "mask" not in f


# -- OGBench npz --------------------------------------------------------------------------


def make_npz(path: Path, terminal_rows=(2, 5, 9), steps: int = 10, **replace) -> Path:
    rng = np.random.default_rng(1)
    terminals = np.zeros(steps, dtype=bool)
    terminals[list(terminal_rows)] = True
    arrays = {
        "observations": rng.normal(size=(steps, 6)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(steps, 5)).astype(np.float32),
        "terminals": terminals,
        "rewards": rng.normal(size=steps).astype(np.float32),
        "qpos": rng.normal(size=(steps, 9)),
        "qvel": rng.normal(size=(steps, 8)),
    }
    arrays.update(replace)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_splits_episodes_at_terminals(tmp_path: Path) -> None:
    src = make_npz(tmp_path / "cube.npz")
    out = convert(src, tmp_path / "cube.zarr")
    root = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [3, 6, 10])
    buffer = ReplayBuffer.open(out)
    assert buffer.keys == ["action", "qpos", "qvel", "reward", "state", "terminal"]
    with np.load(src) as npz:
        for name, key in [("state", "observations"), ("action", "actions"), ("qpos", "qpos")]:
            np.testing.assert_array_equal(buffer[name][:], npz[key])
            assert buffer[name].dtype == npz[key].dtype
        np.testing.assert_array_equal(buffer.episode(1)["action"], npz["actions"][3:6])
    assert buffer.attrs["source_format"] == "ogbench_npz"
    assert buffer.attrs["npz_keys"]["state"] == "observations"


def test_npz_errors_name_file_and_key(tmp_path: Path) -> None:
    src = make_npz(tmp_path / "no_actions.npz", actions=None)
    with pytest.raises(DatasetError, match=f"{src}: missing key 'actions'"):
        npz_to_zarr(src, tmp_path / "a.zarr")
    src = make_npz(tmp_path / "short.npz", qvel=np.zeros((9, 8)))
    with pytest.raises(DatasetError, match="'qvel' has 9 rows but 'terminals' has 10"):
        npz_to_zarr(src, tmp_path / "b.zarr")
    text = tmp_path / "text.npz"
    text.write_text("nope")
    with pytest.raises(DatasetError, match="not an npz archive"):
        npz_to_zarr(text, tmp_path / "c.zarr")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".npz"] * 3


def test_npz_with_non_finite_values_is_refused_by_the_shared_validation(tmp_path: Path, robo) -> None:
    """Converters run the check that ``robo train`` and ``robo dataset validate`` run, on the
    output before it lands: nothing is written, the error names the destination and step."""
    actions = np.random.default_rng(1).uniform(-1, 1, size=(10, 5)).astype(np.float32)
    actions[4, 2] = np.nan
    src = make_npz(tmp_path / "nan.npz", actions=actions)
    dst = tmp_path / "nan.zarr"
    result = robo("dataset", "convert", src, dst)
    assert result.code == 2
    assert result.err.strip() == f"error: {dst}: 'data/action' has nan at step 4 (episode 1)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npz"]


def test_npz_trailing_steps_without_terminal(tmp_path: Path) -> None:
    src = make_npz(tmp_path / "trailing.npz", terminal_rows=(2, 5))
    with pytest.raises(DatasetError, match=r"last 4 steps \(rows 6\.\.9\)"):
        npz_to_zarr(src, tmp_path / "t.zarr")
    assert not (tmp_path / "t.zarr").exists()
    with pytest.warns(UserWarning, match="dropped"):
        out = npz_to_zarr(src, tmp_path / "t.zarr", drop_trailing=True)
    np.testing.assert_array_equal(ReplayBuffer.open(out).episode_ends, [3, 6])


# -- dispatch -------------------------------------------------------------------------


def test_convert_rejects_unsupported_pairs_and_options(robomimic_file: Path, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"cannot convert .*\.npz.*supported"):
        convert(tmp_path / "a.zarr", tmp_path / "b.npz")
    with pytest.raises(ValueError, match="cannot convert"):
        convert(robomimic_file, tmp_path / "b.hdf5")
    with pytest.raises(ConfigError, match="no option 'filterkey'; options: filter_key"):
        convert(robomimic_file, tmp_path / "b.zarr", filterkey="train")


def test_a_registered_converter_joins_convert(tmp_path, monkeypatch) -> None:
    # A new format is one module plus one registration; nothing else changes.
    import robo_policies.data.convert as registry

    monkeypatch.setattr(registry, "_CONVERTERS", list(registry._CONVERTERS))
    registry.register_converter((".txt",), (".zarr",), "pathlib:Path", "text -> zarr (test)")
    # The "converter" is pathlib.Path(src, dst), which is dst for an absolute dst.
    assert convert(tmp_path / "a.txt", tmp_path / "b.zarr") == tmp_path / "b.zarr"
    assert "text -> zarr (test)" in str(pytest.raises(ConfigError, convert, tmp_path / "a.txt",
                                                      tmp_path / "b.npz").value)


# -- non-inputs, cameras, round trips ------------------------------------------------------------


def test_robomimic_lists_every_array_outside_obs_as_a_non_input(robomimic_file: Path, tmp_path: Path) -> None:
    buffer = ReplayBuffer.open(robomimic_to_zarr(robomimic_file, tmp_path / "demos.zarr"))
    assert buffer.attrs["non_input_keys"] == [
        "done", "next_obs.agentview_image", "next_obs.robot0_eef_pos", "next_obs.robot0_joint_pos", "reward",
        "states"]
    assert default_observation_keys(buffer.keys, buffer.attrs) == [
        "agentview_image", "robot0_eef_pos", "robot0_joint_pos"]


def test_robomimic_cameras_are_stored_one_frame_per_chunk(robomimic_file: Path, tmp_path: Path) -> None:
    root = zarr.open_group(str(robomimic_to_zarr(robomimic_file, tmp_path / "demos.zarr")), mode="r")
    for key in ("agentview_image", "next_obs.agentview_image"):
        assert root[f"data/{key}"].chunks == (1, 8, 8, 3)
    assert root["data/robot0_eef_pos"].chunks[0] > 1  # low-dim arrays: many steps per chunk


def conversion_peak_bytes(tmp_path: Path, demos: int) -> int:
    """Peak memory numpy and Python allocate converting a file of ``demos`` camera demos."""
    src = tmp_path / f"cameras_{demos}.hdf5"
    frames = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), np.uint8)
    with h5py.File(src, "w") as f:
        for number in range(demos):
            demo = f.create_group(f"data/demo_{number}")
            demo["obs/agentview_image"] = frames
            demo["next_obs/agentview_image"] = frames
            demo["actions"] = np.zeros((10, 7))
    tracemalloc.start()
    try:
        robomimic_to_zarr(src, tmp_path / f"cameras_{demos}.zarr")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_robomimic_converts_demo_by_demo_in_bounded_memory(tmp_path: Path) -> None:
    """The file is read one demo at a time: peak memory does not grow with the number of demos
    (4 demos hold 1 MB of camera frames, 16 hold 4 MB)."""
    few, many = conversion_peak_bytes(tmp_path, 4), conversion_peak_bytes(tmp_path, 16)
    assert many < 1.2 * few, (few, many)


def test_npz_maps_observations_to_the_task_key_and_lists_the_rest_as_non_inputs(tmp_path: Path) -> None:
    observations = np.random.default_rng(2).normal(size=(10, 6)).astype(np.float32)
    src = make_npz(tmp_path / "cube.npz", observations=observations, next_observations=observations + 1,
                   masks=np.ones(10, np.float32))
    buffer = ReplayBuffer.open(npz_to_zarr(src, tmp_path / "cube.zarr"))
    assert buffer.keys == ["action", "mask", "next_state", "qpos", "qvel", "reward", "state", "terminal"]
    np.testing.assert_array_equal(buffer["next_state"][:], observations + 1)
    assert buffer.attrs["non_input_keys"] == ["mask", "next_state", "qpos", "qvel", "reward", "terminal"]
    assert default_observation_keys(buffer.keys, buffer.attrs) == ["state"]


def test_npz_camera_observations_become_image_frames(tmp_path: Path) -> None:
    frames = np.random.default_rng(3).integers(0, 256, (10, 8, 8, 3), np.uint8)
    src = make_npz(tmp_path / "visual.npz", observations=frames, next_observations=frames, qpos=None, qvel=None)
    root = zarr.open_group(str(npz_to_zarr(src, tmp_path / "visual.zarr")), mode="r")
    assert root["data/image"].chunks == (1, 8, 8, 3) and root["data/next_image"].dtype == np.uint8
    named = npz_to_zarr(src, tmp_path / "named.zarr", obs_key="front")
    assert ReplayBuffer.open(named).keys == ["action", "front", "next_front", "reward", "terminal"]


def recorded_buffer(path: Path) -> ReplayBuffer:
    """A buffer as `robo collect`/`robo record` write them: attrs task, tasks and settings,
    per-episode seed, success and task index, a camera and an executed action."""
    rng = np.random.default_rng(4)
    buffer = ReplayBuffer.create(path, attrs={
        "task": "arm_pick_place", "tasks": ["pick the cube", "place it"], "env_kwargs": {"obs_mode": "both"},
        "fps": 10.0, "collect_config": {"episodes": 3, "action_noise": 0.1}})
    for episode, steps in enumerate((3, 5, 4)):
        buffer.add_episode(
            {"joint_pos": rng.normal(size=(steps, 6)).astype(np.float32),
             "wrist_image": rng.integers(0, 256, (steps, 8, 8, 3), np.uint8),
             "action": rng.normal(size=(steps, 6)).astype(np.float32),
             "executed_action": rng.normal(size=(steps, 6)).astype(np.float32),
             "reward": np.zeros(steps, np.float32)},
            {"seed": np.int64(episode + 7), "success": bool(episode % 2), "task_index": np.int64(episode % 2),
             "start_time": 1.7e9 + episode})
    return buffer


def test_zarr_to_hdf5_to_zarr_loses_nothing(tmp_path: Path) -> None:
    original = recorded_buffer(tmp_path / "arm.zarr")
    back = ReplayBuffer.open(convert(convert(original.location, tmp_path / "arm.hdf5"), tmp_path / "back.zarr"))
    assert back.keys == original.keys
    for key in original.keys:
        assert back[key].dtype == original[key].dtype, key
        np.testing.assert_array_equal(back[key][:], original[key][:], err_msg=key)
    np.testing.assert_array_equal(back.episode_ends, original.episode_ends)
    assert back.meta_keys == sorted([*original.meta_keys, "demo_index"])
    for name in original.meta_keys:
        assert back.meta(name).dtype == original.meta(name).dtype, name
        np.testing.assert_array_equal(back.meta(name), original.meta(name), err_msg=name)
    for name, value in original.attrs.items():
        assert back.attrs[name] == value, name
    # non-inputs stay non-inputs: only the recorded observations are under obs/
    assert default_observation_keys(back.keys, back.attrs) == ["joint_pos", "wrist_image"]
    with h5py.File(tmp_path / "arm.hdf5", "r") as f:
        assert sorted(f["data/demo_1"]) == ["actions", "executed_action", "obs", "rewards"]
        assert f["data/demo_1"].attrs["seed"] == 8 and f["data/demo_1"].attrs["success"]


def test_a_damaged_carried_attribute_is_named(tmp_path: Path) -> None:
    hdf5 = convert(recorded_buffer(tmp_path / "arm.zarr").location, tmp_path / "arm.hdf5")
    with h5py.File(hdf5, "a") as f:
        f["data"].attrs["robo_policies"] = "{not json"
    with pytest.raises(DatasetError, match=f"{hdf5}: data attr robo_policies is not"):
        convert(hdf5, tmp_path / "back.zarr")
