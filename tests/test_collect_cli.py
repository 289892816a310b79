"""`robo collect` end to end: the dataset layout, and a SIGKILL mid-write loses only that episode."""

import signal
import subprocess
import sys

import numpy as np
import pytest
import zarr

from robo_policies.data import ReplayBuffer
from robo_policies.data.validate import validate_dataset
from robo_policies.envs import get_task
from robo_policies.envs.collect import run_episode
from robo_policies.envs.diffdrive_nav import pass_side

KILL_IN_FIFTH_WRITE = """
import os, signal, sys
import robo_policies.data.replay_buffer as replay_buffer
from robo_policies.cli.main import main

append_rows = replay_buffer._append_rows
actions_written = 0

def append_then_die(group, key, value, start):
    global actions_written
    append_rows(group, key, value, start)
    actions_written += key == "action"
    if actions_written == 5:  # the 5th episode's actions are on disk, its end is not
        os.kill(os.getpid(), signal.SIGKILL)

replay_buffer._append_rows = append_then_die
sys.exit(main(sys.argv[1:]))
"""


def replays_exactly(buffer: ReplayBuffer, episode: int, first_seed: int) -> None:
    """Episode ``episode`` is what replaying its ``meta/seed`` records, step for step."""
    task = get_task(buffer.attrs["task"])
    seed = int(buffer.meta("seed")[episode])
    env = task.env()
    replay, success = run_episode(task, env, seed, 0.0,
                                  np.random.default_rng([first_seed, seed - first_seed]))
    env.close()
    stored = buffer.episode(episode)
    assert success and sorted(stored) == sorted(replay)
    for key, value in replay.items():
        np.testing.assert_array_equal(stored[key], value)


def test_collect_writes_a_plain_zarr_dataset_that_replays_from_its_seeds(robo, tmp_path):
    out = tmp_path / "nav.zarr"
    result = robo("collect", "task=diffdrive_nav", "episodes=3", f"out={out}", "seed=7",
                  "progress=false")
    assert result.code == 0 and "episodes saved   3" in result.out
    root = zarr.open_group(str(out), mode="r")  # no robo_policies code needed to read it
    ends = root["meta/episode_ends"][:]
    assert len(ends) == 3 and root["data/action"].shape == (ends[-1], 2)
    env = get_task("diffdrive_nav").env()
    observed = set(env.observation_space.spaces)
    env.close()
    assert set(root["data"].array_keys()) == observed | {"action", "reward"}
    assert root.attrs["task"] == "diffdrive_nav"
    buffer = ReplayBuffer.open(out)
    assert buffer.meta("success").all()
    replays_exactly(buffer, 2, first_seed=7)


@pytest.mark.slow
def test_sigkill_mid_write_leaves_a_valid_dataset_with_every_finished_episode(tmp_path):
    out = tmp_path / "killed.zarr"
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_FIFTH_WRITE, "collect", "task=diffdrive_nav",
         "episodes=50", f"out={out}", "seed=3", "progress=false"],
        capture_output=True, text=True, timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    with pytest.warns(UserWarning, match="trailing rows .* left by an interrupted write"):
        summary = validate_dataset(out)
        buffer = ReplayBuffer.open(out)
    assert summary.n_episodes == buffer.n_episodes == 4
    replays_exactly(buffer, 3, first_seed=3)  # the last finished episode is intact


@pytest.mark.slow
def test_diffdrive_demonstrations_pass_both_sides_equally(robo, tmp_path):
    """The done-when command: 50 demos, left and right passes balanced."""
    out = tmp_path / "nav.zarr"
    assert robo("collect", "task=diffdrive_nav", "episodes=50", f"out={out}", "seed=7",
                "progress=false").code == 0
    root = zarr.open_group(str(out), mode="r")
    ends = root["meta/episode_ends"][:]
    assert len(ends) == 50
    starts = np.concatenate([[0], ends[:-1]])
    pose, goal, obstacle = (root[f"data/{k}"][:] for k in ("base_pose", "goal", "obstacle"))
    sides = [pass_side(pose[s:e, :2], obstacle[s], goal[s]) for s, e in zip(starts, ends)]
    assert 20 <= sides.count("left") <= 30 and sides.count("left") + sides.count("right") == 50
