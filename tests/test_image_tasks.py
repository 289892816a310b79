"""The image variants of the simulated tasks: what their policies see (and do not), the cameras'
frames, the odometry frame, and collection of image datasets by the state-reading experts."""

import numpy as np
import pytest

from robo_policies.data import ReplayBuffer
from robo_policies.data.validate import validate_dataset
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect

IMAGE_TASK_KEYS = {
    "arm_pick_place_image": {"joint_pos", "joint_vel", "front_image", "wrist_image"},
    "diffdrive_nav_image": {"base_pose", "base_vel", "front_image"},
}
"""What each real robot measures: encoders (and odometry) and its cameras. No cube, target,
goal or obstacle pose."""


@pytest.mark.parametrize("name", sorted(IMAGE_TASK_KEYS))
def test_image_tasks_observe_only_what_the_real_robot_has(name):
    env = get_task(name).env()
    try:
        obs, _ = env.reset(seed=0)
        assert set(env.observation_space.spaces) == set(obs) == IMAGE_TASK_KEYS[name]
        other, _ = env.reset(seed=1)
        for key in obs:
            if key.endswith("_image"):
                assert obs[key].shape == (84, 84, 3) and obs[key].dtype == np.uint8
                assert obs[key].std() > 10  # a scene, not a blank frame
                assert np.mean(obs[key] != other[key]) > 0.01, key  # another layout looks different
            else:
                assert obs[key].dtype == np.float32
    finally:
        env.close()


def test_obs_mode_both_adds_the_cameras_to_the_full_state_and_size_is_a_setting():
    env = get_task("arm_pick_place").env(obs_mode="both", image_size=48)
    try:
        obs, _ = env.reset(seed=0)
        assert {"cube_pos", "target_pos", "eef_pos", "front_image", "wrist_image"} <= set(obs)
        assert obs["wrist_image"].shape == (48, 48, 3)
    finally:
        env.close()
    with pytest.raises(ValueError, match="obs_mode must be one of .*'state', 'image', 'both'.*got 'pixels'"):
        get_task("diffdrive_nav").env(obs_mode="pixels")


def test_the_base_counts_its_pose_from_where_it_started_as_odometry_does():
    env = get_task("diffdrive_nav_image").env()
    try:
        obs, _ = env.reset(seed=4)
        np.testing.assert_allclose(obs["base_pose"], [0, 0, 1, 0], atol=1e-6)
        for _ in range(10):
            obs, *_ = env.step(np.array([4.0, 4.0], np.float32))  # straight ahead
        world = env.unwrapped.state_observation()["base_pose"]
        travelled = np.linalg.norm(world[:2] - env.unwrapped.start_xy)
        assert obs["base_pose"][0] == pytest.approx(travelled, abs=1e-3)  # forward along the start heading
        assert abs(obs["base_pose"][1]) < 0.01
    finally:
        env.close()


@pytest.mark.parametrize("name", sorted(IMAGE_TASK_KEYS))
def test_experts_collect_image_demonstrations_one_frame_per_chunk(tmp_path, name):
    result = collect(get_task(name), tmp_path / "demo.zarr", episodes=2, seed=0, progress=False)
    assert result.saved == 2 and result.attempts == 2  # the experts still read the full state
    buffer = ReplayBuffer.open(tmp_path / "demo.zarr")
    assert set(buffer.keys) - {"action", "reward", "executed_action"} == IMAGE_TASK_KEYS[name]
    for key in IMAGE_TASK_KEYS[name]:
        if key.endswith("_image"):
            assert buffer[key].dtype == np.uint8 and buffer[key].chunks == (1, 84, 84, 3)
    assert validate_dataset(tmp_path / "demo.zarr").n_episodes == 2
