"""LeRobotDataset directories: reading v2.1 and v3.0 in place, converting, training, writing v3.0.

The fixtures build LeRobot directories directly with pyarrow and PyAV, as LeRobot's docs and
code lay them out, independently of this library's writer.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robo_policies.data.convert import convert
from robo_policies.data.lerobot import video
from robo_policies.data.lerobot.dataset import LeRobotDataset
from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.utils.errors import DatasetError

FPS = 10
LENGTHS = (18, 20, 22)
SIZE = 32
TASKS = ["pick the cube", "place the cube"]
EPISODE_TASKS = (0, 1, 0)
MAX_MEAN_ABS_ERROR = 6.0
"""Mean absolute error (0..255) a decoded frame may have against the encoded one at CRF 30."""


def frame(camera: int, episode: int, step: int) -> np.ndarray:
    """A smooth (SIZE, SIZE, 3) image that differs by camera, episode and step (codec-friendly)."""
    y, x = np.mgrid[:SIZE, :SIZE]
    base = 40 + 3 * x + 2 * y + 4 * step + 15 * episode + 30 * camera
    return np.stack([base, base[::-1] + 10, np.full_like(base, 90 + 5 * step)], -1).clip(0, 255).astype(np.uint8)


def steps(lengths: tuple[int, ...] = LENGTHS) -> dict[str, np.ndarray]:
    """Per-frame values of every column, all episodes concatenated."""
    rng = np.random.default_rng(0)
    n = sum(lengths)
    episode = np.repeat(np.arange(len(lengths)), lengths)
    return {
        "observation.state": rng.normal(size=(n, 4)).astype(np.float32),
        "observation.environment_state": rng.normal(size=(n, 3)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        "next.reward": rng.uniform(size=n).astype(np.float32),
        "next.done": np.concatenate([np.arange(k) == k - 1 for k in lengths]),
        "timestamp": (np.concatenate([np.arange(k) for k in lengths]) / FPS).astype(np.float32),
        "frame_index": np.concatenate([np.arange(k) for k in lengths]).astype(np.int64),
        "episode_index": episode.astype(np.int64),
        "index": np.arange(n, dtype=np.int64),
        "task_index": np.asarray(EPISODE_TASKS, np.int64)[episode],
    }


def table(values: dict[str, np.ndarray], list_type: str) -> pa.Table:
    """Vectors as list<float> (``list``) or fixed_size_list<float>[n] (``fixed``), as HF datasets writes them."""
    columns = {}
    for name, value in values.items():
        if value.ndim == 2:
            flat = pa.array(value.ravel())
            columns[name] = (pa.FixedSizeListArray.from_arrays(flat, value.shape[1]) if list_type == "fixed"
                             else pa.ListArray.from_arrays(pa.array(np.arange(0, value.size + 1, value.shape[1], dtype=np.int32)), flat))
        else:
            columns[name] = pa.array(value)
    return pa.table(columns)


def encode(path: Path, frames: list[np.ndarray], codec: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS, options={"g": "2", "crf": "30"})
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def features(cameras: list[str], codec: str, camera_dtype: str = "video") -> dict:
    info = {"video.fps": float(FPS), "video.height": SIZE, "video.width": SIZE, "video.codec": codec,
            "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "has_audio": False}
    out = {
        "observation.state": {"dtype": "float32", "shape": [4], "names": ["a", "b", "c", "d"]},
        "observation.environment_state": {"dtype": "float32", "shape": [3], "names": None},
        "action": {"dtype": "float32", "shape": [2], "names": ["left", "right"]},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        **{name: {"dtype": "int64", "shape": [1], "names": None}
           for name in ("frame_index", "episode_index", "index", "task_index")},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    }
    for camera in cameras:
        out[f"observation.images.{camera}"] = {"dtype": camera_dtype, "shape": [SIZE, SIZE, 3],
                                               "names": ["height", "width", "channels"],
                                               **({"info": info} if camera_dtype == "video" else {})}
    return out


def make_v21(root: Path, cameras: tuple[str, ...] = ("top",), codec: str = "h264") -> Path:
    """v2.1: a parquet and an mp4 per episode, episodes.jsonl, tasks.jsonl."""
    values = steps()
    ends = np.cumsum(LENGTHS)
    for episode, (start, end) in enumerate(zip(ends - LENGTHS, ends)):
        path = root / f"data/chunk-000/episode_{episode:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table({k: v[start:end] for k, v in values.items()}, "list"), path)
        for c, camera in enumerate(cameras):
            encode(root / f"videos/chunk-000/observation.images.{camera}/episode_{episode:06d}.mp4",
                   [frame(c, episode, t) for t in range(end - start)], "libx264" if codec == "h264" else "libsvtav1")
    info = {"codebase_version": "v2.1", "robot_type": "so100", "total_episodes": len(LENGTHS),
            "total_frames": int(ends[-1]), "total_tasks": len(TASKS), "total_videos": len(LENGTHS) * len(cameras),
            "total_chunks": 1, "chunks_size": 1000, "fps": FPS, "splits": {"train": f"0:{len(LENGTHS)}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": features(list(cameras), codec)}
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    (root / "meta/tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": t}) + "\n"
                                                   for i, t in enumerate(TASKS)))
    (root / "meta/episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": e, "tasks": [TASKS[EPISODE_TASKS[e]]], "length": n}) + "\n"
        for e, n in enumerate(LENGTHS)))
    return root


def make_v30(root: Path, cameras: tuple[str, ...] = ("top", "wrist"), camera_dtype: str = "video") -> Path:
    """v3.0: one data parquet, one AV1 mp4 per camera with every episode, episodes parquet,
    tasks.parquet (task strings as the pandas index), stats.json. ``camera_dtype="image"``:
    PNG bytes in the data parquet instead of videos."""
    from PIL import Image
    import io

    values = steps()
    ends = np.cumsum(LENGTHS)
    starts = ends - np.asarray(LENGTHS)
    data = table(values, "fixed")
    for c, camera in enumerate(cameras):
        images = [frame(c, e, t) for e, n in enumerate(LENGTHS) for t in range(n)]
        if camera_dtype == "video":
            encode(root / f"videos/observation.images.{camera}/chunk-000/file-000.mp4", images, "libsvtav1")
        else:
            png = []
            for image in images:
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="png")
                png.append({"bytes": buffer.getvalue(), "path": None})
            data = data.append_column(f"observation.images.{camera}",
                                      pa.array(png, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(data, root / "data/chunk-000/file-000.parquet")
    episodes = {"episode_index": np.arange(len(LENGTHS)), "tasks": [[TASKS[t]] for t in EPISODE_TASKS],
                "length": np.asarray(LENGTHS), "data/chunk_index": [0] * 3, "data/file_index": [0] * 3,
                "dataset_from_index": starts, "dataset_to_index": ends}
    if camera_dtype == "video":
        for camera in cameras:
            key = f"videos/observation.images.{camera}"
            episodes |= {f"{key}/chunk_index": [0] * 3, f"{key}/file_index": [0] * 3,
                         f"{key}/from_timestamp": starts / FPS, f"{key}/to_timestamp": ends / FPS}
    episodes |= {"meta/episodes/chunk_index": [0] * 3, "meta/episodes/file_index": [0] * 3,
                 "stats/action/min": [values["action"][s:e].min(0) for s, e in zip(starts, ends)]}
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(episodes), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0, 1], "__index_level_0__": TASKS}), root / "meta/tasks.parquet")
    info = {"codebase_version": "v3.0", "robot_type": "koch", "total_episodes": 3, "total_frames": int(ends[-1]),
            "total_tasks": 2, "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
            "fps": FPS, "splits": {"train": "0:3"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features(list(cameras), "av1", camera_dtype)}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    (root / "meta/stats.json").write_text(json.dumps({"action": {"min": values["action"].min(0).tolist()}}))
    return root


def expected_frames(camera: int) -> np.ndarray:
    return np.stack([frame(camera, e, t) for e, n in enumerate(LENGTHS) for t in range(n)])


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@pytest.fixture(scope="module")
def v21(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_v21(tmp_path_factory.mktemp("v21") / "lerobot_v21")


@pytest.fixture(scope="module")
def v30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_v30(tmp_path_factory.mktemp("v30") / "lerobot_v30")


# -- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v21", "v30"])
def test_reader_maps_keys_and_keeps_parquet_values_exactly(version: str, request: pytest.FixtureRequest) -> None:
    dataset = LeRobotDataset(request.getfixturevalue(version))
    values = steps()
    cameras = ["top_image"] + (["wrist_image"] if version == "v30" else [])
    assert dataset.keys == sorted(["state", "environment_state", "action", "reward", "done", "timestamp", *cameras])
    assert dataset.episode_ends.tolist() == np.cumsum(LENGTHS).tolist()
    assert dataset.n_steps == sum(LENGTHS)
    np.testing.assert_array_equal(dataset["state"], values["observation.state"])
    np.testing.assert_array_equal(dataset["environment_state"], values["observation.environment_state"])
    np.testing.assert_array_equal(dataset["action"], values["action"])
    np.testing.assert_array_equal(dataset["reward"], values["next.reward"])
    np.testing.assert_array_equal(dataset["done"], values["next.done"])
    np.testing.assert_array_equal(dataset["timestamp"], values["timestamp"])
    assert dataset["state"].dtype == np.float32 and dataset["done"].dtype == bool
    assert dataset["reward"].shape == (sum(LENGTHS),)
    assert dataset.meta("task_index").tolist() == list(EPISODE_TASKS)
    assert dataset.attrs["tasks"] == TASKS
    assert [dataset.attrs["tasks"][i] for i in dataset.meta("task_index")] == [TASKS[t] for t in EPISODE_TASKS]
    assert dataset.attrs["fps"] == FPS
    assert dataset.attrs["robot_type"] == ("so100" if version == "v21" else "koch")
    assert dataset.attrs["source"].startswith(f"lerobot {'v2.1' if version == 'v21' else 'v3.0'} ")


@pytest.mark.parametrize("version", ["v21", "v30"])
def test_decoded_frames_match_the_encoded_ones(version: str, request: pytest.FixtureRequest) -> None:
    dataset = LeRobotDataset(request.getfixturevalue(version))
    frames = dataset["top_image"]
    assert frames.shape == (sum(LENGTHS), SIZE, SIZE, 3) and frames.dtype == np.uint8
    every = np.asarray(frames[:])
    assert mean_abs_error(every, expected_frames(0)) < MAX_MEAN_ABS_ERROR
    rows = np.array([[59, 3], [20, 40]])  # out of order, across episodes (and files in v2.1)
    picked = frames[rows]
    assert picked.shape == (2, 2, SIZE, SIZE, 3)
    np.testing.assert_array_equal(picked, every[rows])
    np.testing.assert_array_equal(frames[17], every[17])
    # A pickled copy (what a spawned loader worker gets) reopens the files itself.
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(frames))[5:9], every[5:9])


def test_png_image_features_read_exactly(tmp_path: Path) -> None:
    dataset = LeRobotDataset(make_v30(tmp_path / "png", cameras=("top",), camera_dtype="image"))
    np.testing.assert_array_equal(np.asarray(dataset["top_image"][:]), expected_frames(0))


def test_key_mapping_can_be_overridden(v30: Path) -> None:
    dataset = LeRobotDataset(v30, keys={"observation.images.top": "agentview_image", "observation.state": "qpos"})
    assert "agentview_image" in dataset and "qpos" in dataset and "state" not in dataset
    with pytest.raises(DatasetError, match="both map to key 'wrist_image'"):
        LeRobotDataset(v30, keys={"observation.images.top": "wrist_image"})


# -- clear errors -------------------------------------------------------------------------


def edited_copy(source: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(source, tmp_path / source.name))


def test_errors_name_the_file_and_the_problem(v21: Path, v30: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        LeRobotDataset(tmp_path)
    root = edited_copy(v30, tmp_path)
    info = json.loads((root / "meta/info.json").read_text())
    del info["fps"]
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"meta/info.json: missing key 'fps'"):
        LeRobotDataset(root)
    info |= {"fps": FPS, "codebase_version": "v1.6"}
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"codebase_version 'v1.6' is not supported \(supported: v2.1, v3.0\)"):
        LeRobotDataset(root)


def rewrite_column(path: Path, column: str, edit) -> None:
    """Rewrite one column of a parquet file after ``edit`` changed a copy of it in place."""
    data = pq.read_table(path)
    values = data[column].to_numpy().copy()
    edit(values)
    pq.write_table(data.set_column(data.column_names.index(column), column, pa.array(values)), path)


def test_inconsistent_episode_index_names_file_and_row(v21: Path, tmp_path: Path) -> None:
    root = edited_copy(v21, tmp_path)
    rewrite_column(root / "data/chunk-000/episode_000001.parquet", "episode_index",
                   lambda episode: episode.__setitem__(7, 0))  # a frame of episode 0 in the middle of episode 1
    with pytest.raises(DatasetError, match=r"episode_000001.parquet row 7: episode_index 0 follows episode 1"):
        LeRobotDataset(root)


def test_frame_index_gap_names_file_and_row(v30: Path, tmp_path: Path) -> None:
    root = edited_copy(v30, tmp_path)
    rewrite_column(root / "data/chunk-000/file-000.parquet", "frame_index",
                   lambda frame_index: frame_index.__setitem__(25, frame_index[25] + 1))
    with pytest.raises(DatasetError, match=r"file-000.parquet row 25: frame_index is 8, expected 7 \(episode_index 1\)"):
        LeRobotDataset(root)


def test_missing_decoder_names_file_and_codec(v30: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video, "available_decoders", lambda: {"h264"})
    dataset = LeRobotDataset(v30)
    with pytest.raises(DatasetError, match=r"videos/observation.images.top/chunk-000/file-000.mp4 is AV1; this PyAV "
                                           r"build has no AV1 decoder \(libdav1d or libaom-av1\)"):
        dataset["top_image"][0]


# -- converting ---------------------------------------------------------------------------


def test_convert_lerobot_directory_to_zarr(robo, v30: Path, tmp_path: Path) -> None:
    out = tmp_path / "from_lerobot.zarr"
    result = robo("dataset", "convert", v30, out)
    assert result.code == 0, result.err
    buffer = ReplayBuffer.open(out)
    values = steps()
    assert buffer.episode_ends.tolist() == np.cumsum(LENGTHS).tolist()
    np.testing.assert_array_equal(buffer["state"][:], values["observation.state"])
    np.testing.assert_array_equal(buffer["action"][:], values["action"])
    assert buffer.meta("task_index").tolist() == list(EPISODE_TASKS)
    assert buffer.attrs["tasks"] == TASKS and buffer.attrs["fps"] == FPS
    assert buffer.attrs["source"] == f"lerobot v3.0 {v30}"
    for camera, key in enumerate(["top_image", "wrist_image"]):
        assert buffer[key].shape == (sum(LENGTHS), SIZE, SIZE, 3)
        assert mean_abs_error(buffer[key][:], expected_frames(camera)) < MAX_MEAN_ABS_ERROR


def recorded_zarr(path: Path) -> Path:
    """A dataset shaped like ``robo record``'s: cameras, a recorded clock, tasks, per-episode meta."""
    rng = np.random.default_rng(1)
    buffer = ReplayBuffer.create(path, attrs={"robot": "so101", "fps": 10.0, "tasks": TASKS, "source": "robo record",
                                              "action_names": ["a", "b"]})
    for episode, n in enumerate(LENGTHS):
        buffer.add_episode(
            {"joint_pos": rng.normal(size=(n, 5)).astype(np.float32), "gripper": rng.normal(size=(n, 1)),
             "front_image": np.stack([frame(0, episode, t) for t in range(n)]),
             "timestamp": np.cumsum(rng.uniform(0.09, 0.11, n)), "action": rng.normal(size=(n, 2)).astype(np.float32),
             "reward": rng.uniform(size=n), "done": np.arange(n) == n - 1},
            {"task_index": EPISODE_TASKS[episode], "seed": 100 + episode, "success": episode != 1,
             "start_time": 1.7e9 + episode})
    return path


@pytest.mark.parametrize("images", ["png", "video"])
def test_zarr_to_lerobot_to_zarr_round_trip(robo, tmp_path: Path, images: str) -> None:
    source = ReplayBuffer.open(recorded_zarr(tmp_path / "recorded.zarr"))
    lerobot, back = tmp_path / "recorded_lerobot", tmp_path / "back.zarr"
    assert robo("dataset", "convert", source.location, lerobot, "format=lerobot", f"images={images}").code == 0
    assert sorted(p.name for p in lerobot.iterdir()) == ["data", "meta"] + (["videos"] if images == "video" else [])
    info = json.loads((lerobot / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == sum(LENGTHS)
    assert info["features"]["observation.images.front"]["dtype"] == images.replace("png", "image")
    assert {"observation.joint_pos", "robo.timestamp", "next.reward", "next.done", "timestamp"} <= set(info["features"])
    assert robo("dataset", "convert", lerobot, back).code == 0
    copy = ReplayBuffer.open(back)
    assert copy.keys == source.keys and copy.meta_keys == source.meta_keys
    assert copy.episode_ends.tolist() == source.episode_ends.tolist()
    for key in source.keys:
        assert copy[key].dtype == source[key].dtype and copy[key].shape == source[key].shape, key
        if key != "front_image" or images == "png":
            np.testing.assert_array_equal(copy[key][:], source[key][:], err_msg=key)
    if images == "video":
        assert mean_abs_error(copy["front_image"][:], source["front_image"][:]) < MAX_MEAN_ABS_ERROR
    for name in source.meta_keys:
        np.testing.assert_array_equal(copy.meta(name), source.meta(name), err_msg=name)
    assert {k: v for k, v in copy.attrs.items() if k != "source"} == {
        k: v for k, v in source.attrs.items() if k != "source"}
    # What LeRobot's loader reads: tasks by the pandas index, per-episode tasks, video spans.
    tasks = pq.read_table(lerobot / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert tasks["task"].to_pylist() == TASKS
    episodes = pq.read_table(lerobot / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert episodes["tasks"] == [[TASKS[t]] for t in EPISODE_TASKS]
    assert episodes["dataset_to_index"] == np.cumsum(LENGTHS).tolist()
    # One data file (and one mp4 per camera) per episode, numbered on; each video starts at 0.
    assert episodes["data/file_index"] == list(range(len(LENGTHS))) and set(episodes["data/chunk_index"]) == {0}
    data = [pq.read_table(lerobot / f"data/chunk-000/file-{i:03d}.parquet") for i in range(len(LENGTHS))]
    np.testing.assert_allclose(np.concatenate([part["timestamp"].to_numpy() for part in data]),
                               steps()["timestamp"])
    assert [part["index"].to_pylist()[0] for part in data] == (np.cumsum(LENGTHS) - LENGTHS).tolist()
    if images == "video":
        assert episodes["videos/observation.images.front/from_timestamp"] == [0.0] * len(LENGTHS)
        assert episodes["videos/observation.images.front/to_timestamp"] == (np.array(LENGTHS) / 10).tolist()
        assert sorted(p.name for p in (lerobot / "videos/observation.images.front/chunk-000").iterdir()) == [
            f"file-{i:03d}.mp4" for i in range(len(LENGTHS))]
    stats = json.loads((lerobot / "meta/stats.json").read_text())  # aggregated over the episodes
    joints = source["joint_pos"][:].astype(np.float64)
    np.testing.assert_allclose(stats["observation.joint_pos"]["mean"], joints.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["observation.joint_pos"]["std"], joints.std(0), rtol=1e-9)
    np.testing.assert_allclose(stats["observation.joint_pos"]["min"], joints.min(0))
    assert stats["observation.joint_pos"]["count"] == [sum(LENGTHS)]


def test_lerobot_output_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robo_policies.data.lerobot import writer

    source = recorded_zarr(tmp_path / "recorded.zarr")
    monkeypatch.setattr(writer, "_write_tasks", lambda *args: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError, match="disk full"):
        convert(source, tmp_path / "out", format="lerobot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recorded.zarr"]


def test_convert_key_override_on_the_command_line(robo, v21: Path, tmp_path: Path) -> None:
    out = tmp_path / "renamed.zarr"
    assert robo("dataset", "convert", v21, out, "keys={observation.images.top: agentview_image}").code == 0
    assert ReplayBuffer.open(out).keys == ["action", "agentview_image", "done", "environment_state", "reward",
                                           "state", "timestamp"]


TINY_IMAGE_POLICY = ("policy=mlp_bc", "policy.net=mlp", "policy.n_obs_steps=1", "policy.horizon=4",
                     "policy.n_action_steps=2", "policy.hidden_dim=32", "policy.n_blocks=1", "train.batch_size=8",
                     "train.threads=1", "progress=false")


@pytest.mark.slow
def test_train_from_a_lerobot_directory_with_a_spawned_loader_worker(robo, v21: Path, tmp_path: Path) -> None:
    """The worker gets the lazy frames pickled and opens the mp4s itself."""
    result = robo("train", f"dataset={v21}", f"out={tmp_path / 'run'}", *TINY_IMAGE_POLICY, "train.steps=3",
                  "train.loader_workers=1")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["steps"] == 3


def test_train_directly_from_a_lerobot_directory(robo, v30: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = robo("train", f"dataset={v30}", f"out={out}", *TINY_IMAGE_POLICY, "train.steps=4",
                  "train.loader_workers=0")
    assert result.code == 0, result.err
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 4 and np.isfinite(summary["final_loss"])
    import yaml

    config = yaml.safe_load((out / "checkpoint" / "config.yaml").read_text())
    assert config["image_keys"] == ["top_image", "wrist_image"]
    assert config["obs_shapes"] == {"environment_state": [3], "state": [4], "top_image": [SIZE, SIZE, 3],
                                    "wrist_image": [SIZE, SIZE, 3]}


def test_writer_appends_episodes_across_sessions_and_chunks(tmp_path: Path) -> None:
    """Each episode its own files; file k lands in chunk k // chunks_size; a reopened directory
    is appended to with its tasks extended; the reader reads files spread over chunks."""
    from robo_policies.data.lerobot.writer import LeRobotWriter

    rng = np.random.default_rng(0)

    def episode(n: int, camera: int) -> dict[str, np.ndarray]:
        return {"state": rng.normal(size=(n, 3)).astype(np.float32), "action": rng.normal(size=(n, 2)),
                "top_image": np.stack([frame(camera, 0, t) for t in range(n)])}

    root = tmp_path / "written"
    episodes = [episode(n, 0) for n in (4, 6, 5)]
    writer = LeRobotWriter(root, fps=10.0, attrs={"robot": "so101", "tasks": ["pick"]}, codec="h264")
    writer.chunks_size = 2
    for data in episodes:
        writer.add_episode(data, {"task_index": 0})
    assert LeRobotDataset(root).n_episodes == 3
    writer = LeRobotWriter.open(root)  # a second session, with a new task
    writer.update_attrs({"tasks": ["pick", "place"]})
    episodes.append(episode(7, 1))
    writer.add_episode(episodes[-1], {"task_index": 1})
    assert sorted(str(p.relative_to(root)) for p in root.glob("data/*/*")) == [
        "data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet", "data/chunk-001/file-000.parquet",
        "data/chunk-001/file-001.parquet"]
    assert len(list(root.glob("videos/observation.images.top/chunk-*/file-*.mp4"))) == 4
    dataset = LeRobotDataset(root)
    assert dataset.episode_lengths.tolist() == [4, 6, 5, 7] and dataset.meta("task_index").tolist() == [0, 0, 0, 1]
    assert dataset.attrs["tasks"] == ["pick", "place"]
    for key in ("state", "action"):
        np.testing.assert_array_equal(dataset[key], np.concatenate([data[key] for data in episodes]), err_msg=key)
    frames = np.concatenate([data["top_image"] for data in episodes])
    assert mean_abs_error(dataset["top_image"][:], frames) < MAX_MEAN_ABS_ERROR
    stats = json.loads((root / "meta/stats.json").read_text())
    states = np.concatenate([data["state"] for data in episodes]).astype(np.float64)
    np.testing.assert_allclose(stats["observation.state"]["std"], states.std(0), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(stats["observation.images.top"]["mean"]), frames.reshape(-1, 3).mean(0) / 255,
                               rtol=1e-9)
    with pytest.raises(DatasetError, match=r"written: key 'state' is \(4,\) per step, the stored episodes' is \(3,\)"):
        LeRobotWriter.open(root).add_episode({**episode(3, 0), "state": np.zeros((3, 4), np.float32)},
                                             {"task_index": 0})
    assert LeRobotDataset(root).n_episodes == 4
