"""``robo dataset view`` and ``robo dataset stats``: an episode as a video with its cameras,
plots and task; per-key statistics and the episode-length histogram."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from robo_policies.data.replay_buffer import ReplayBuffer


@pytest.fixture
def recorded(tmp_path):
    """Two episodes (6 and 9 steps) of a robot with a 16x16 front camera and a 24x32 wrist
    camera, 2 joints and 2 actions; each episode has its own task string."""
    path = tmp_path / "rec.zarr"
    buffer = ReplayBuffer.create(path, attrs={"fps": 10.0, "tasks": ["pick the cube", "push the cube"]})
    for index, steps in enumerate((6, 9)):
        front = np.zeros((steps, 16, 16, 3), np.uint8)
        front[..., 0] = 200  # red
        wrist = np.zeros((steps, 24, 32, 3), np.uint8)
        wrist[..., 2] = 200  # blue
        joints = np.stack([np.linspace(0, 1, steps), np.full(steps, 0.5 + index)], axis=1).astype(np.float32)
        buffer.add_episode({"front_image": front, "wrist_image": wrist, "joint_pos": joints,
                            "action": joints * 2, "timestamp": np.arange(steps) / 10.0},
                           {"task_index": index})
    return path


def test_robo_dataset_view_writes_the_episode_with_its_cameras_over_the_plots(recorded, tmp_path, robo, read_video):
    out = tmp_path / "episode1.mp4"
    run = robo("dataset", "view", str(recorded), "episode=1", f"out={out}")
    assert run.code == 0, run.err
    assert "9 frames" in run.out and "task 'push the cube'" in run.out
    frames, _ = read_video(out)
    # cameras enlarged x12 (16 -> 192) and x8 (24 -> 192), side by side; 320 px of plots under them
    assert frames.shape == (9, 192 + 320, 640, 3)
    first = frames[0].astype(int)
    left = (640 - (192 + 4 + 256 + 4)) // 2  # the camera row is centred
    assert first[96, left + 96, 0] > 150 and first[96, left + 96, 2] < 60   # the front camera, red
    assert first[96, left + 196 + 128, 2] > 150 and first[96, left + 196 + 128, 0] < 60  # the wrist camera, blue
    columns = [cursor_column(frame[192:]) for frame in frames]  # the step cursor moves right each frame
    assert columns[0] < 100 < 500 < columns[-1] and np.all(np.diff(columns) > 0), str(columns)


def cursor_column(plots):
    """The pixel column of the red full-height cursor line in the plots."""
    plots = plots.astype(int)
    red = (plots[..., 0] > 150) & (plots[..., 1] < 110) & (plots[..., 2] < 110)
    return float(np.flatnonzero(red.mean(axis=0) > 0.6).mean())

def test_robo_dataset_view_html_inlines_the_video_and_names_the_task(recorded, tmp_path, robo):
    out = tmp_path / "view.html"
    run = robo("dataset", "view", str(recorded), f"out={out}")
    page = out.read_text()
    assert run.code == 0 and "pick the cube" in page and 'src="data:video/mp4;base64,' in page
    assert "6 steps at 10 Hz" in page and "front_image, wrist_image" in page


def test_robo_dataset_view_names_a_missing_episode_and_a_wrong_suffix(recorded, tmp_path, robo):
    run = robo("dataset", "view", str(recorded), "episode=2")
    assert run.code != 0 and "no episode 2; it has 2 (0..1)" in run.err
    run = robo("dataset", "view", str(recorded), f"out={tmp_path / 'x.gif'}")
    assert run.code != 0 and "write an .mp4 or an .html file" in run.err
    run = robo("dataset", "view", str(recorded), "episod=1")
    assert run.code != 0 and "unknown option 'episod'; options: episode, out, fps" in run.err


def test_robo_dataset_stats_reports_each_dimension_and_the_episode_lengths(recorded, tmp_path, robo):
    out = tmp_path / "stats"
    run = robo("dataset", "stats", str(recorded), f"out={out}")
    assert run.code == 0, run.err
    report = json.loads((out / "stats.json").read_text())
    assert report["episodes"] == 2 and report["steps"] == 15
    assert report["episode_length"] == {"min": 6, "max": 9, "mean": 7.5}
    joints = np.concatenate([np.stack([np.linspace(0, 1, n), np.full(n, 0.5 + i)], 1) for i, n in enumerate((6, 9))])
    np.testing.assert_allclose(report["keys"]["joint_pos"]["mean"], joints.mean(0), atol=1e-6)
    np.testing.assert_allclose(report["keys"]["joint_pos"]["std"], joints.std(0), atol=1e-6)
    assert report["keys"]["action"]["max"] == [2.0, 3.0]
    front = report["keys"]["front_image"]  # one number over every pixel: a third of the values are 200
    assert front["min"] == 0 and front["max"] == 200 and front["mean"] == pytest.approx(200 / 3)
    assert front["std"] == pytest.approx(np.std([0, 0, 200]), rel=1e-6)
    assert "joint_pos[1]" in run.out and "episode length min 6  mean 7.5  max 9" in run.out
    histogram = iio.imread(out / "episode_lengths.png")
    assert histogram.shape[:2] == (300, 500)
