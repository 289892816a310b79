"""Policies that see: `robo eval` of camera policies (video with their views), the keys an env
must serve, a camera parent composed with a state parent, and RTI warm starts from pixels.

Tiny untrained policies (``tiny_policies``) on the image tasks, a few steps per episode: what
is checked is the plumbing (keys, frames, shapes, numbers reported), not success.
"""

import json
import re

import numpy as np
import pytest
from tiny_policies import make_policy

from robo_policies.checkpoints import saved_metadata
from robo_policies.commands.config import compose_config
from robo_policies.envs import get_task
from robo_policies.envs.targets import Reader, check_readers
from robo_policies.sampling.composition import ComposedPolicy

CAMERA = (84, 84, 3)
NAV_IMAGE = {"base_pose": (4,), "base_vel": (2,), "front_image": CAMERA}
NAV_STATE = {"base_pose": (4,), "base_vel": (2,), "goal": (2,), "obstacle": (2,)}
ARM_IMAGE = {"joint_pos": (6,), "joint_vel": (6,), "front_image": CAMERA, "wrist_image": CAMERA}
ARM_STATE = {"joint_pos": (6,), "joint_vel": (6,), "cube_pos": (3,), "target_pos": (3,)}
SHORT = ["max_steps=5", "progress=false"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Tiny policies saved as trained on each task: ``saved[name]`` is the directory. The arm
    parents share their action statistics, as policies trained on one task's actions do."""
    root = tmp_path_factory.mktemp("policies")
    specs = {
        "nav_image": ("diffdrive_nav_image", NAV_IMAGE, 2, 6.0),
        "nav_state": ("diffdrive_nav", NAV_STATE, 2, 6.0),
        "arm_image": ("arm_pick_place_image", ARM_IMAGE, 6, 1.0),
        "arm_state": ("arm_pick_place", ARM_STATE, 6, 1.0),
        "nav_camera": ("diffdrive_nav_image", {"base_pose": (4,), "camera": CAMERA}, 2, 6.0),
        "nav_small_image": ("diffdrive_nav_image", {"front_image": (64, 64, 3)}, 2, 6.0),
    }
    for seed, (name, (task, shapes, action_dim, action_range)) in enumerate(specs.items()):
        policy = make_policy(seed=seed, shapes=shapes, action_dim=action_dim, action_range=action_range)
        policy.save(root / name, metadata={"task": task})
    return {name: root / name for name in specs}


def report(directory):
    return json.loads((directory / "eval.json").read_text())


# -- robo eval of a camera policy ---------------------------------------------------------------


def test_robo_eval_runs_an_image_policy_with_its_camera_beside_the_scene(saved, tmp_path, robo, read_video):
    out = tmp_path / "eval"
    run = robo("eval", f"checkpoint={saved['nav_image']}", "episodes=2", "video_episodes=1", f"out={out}", *SHORT)
    assert run.code == 0, run.err
    result = report(out)
    assert result["episodes"] == 2 and 0.0 <= result["success_rate"] <= 1.0
    assert [r["length"] for r in result["records"]] == [5, 5]
    assert [r["model_calls"] for r in result["records"]] == [2, 2]  # steps 0 and 4 (Ta = 4)
    assert result["nfe"] == 4 and result["latency_ms_p50"] > 0
    frames, _ = read_video(out / "rollout.mp4")
    assert frames.shape == (6, 240, 320 + 240, 3)  # the 320 x 240 scene, the 84 px camera at 240


@pytest.mark.parametrize("name, message", [
    ("nav_camera", "nav_camera: observation key(s) ['camera'] missing from task 'diffdrive_nav_image': "
                   "the policy reads ['base_pose', 'camera'], task 'diffdrive_nav_image' provides "
                   "['base_pose', 'base_vel', 'front_image']; ['camera'] are camera images"),
    ("nav_small_image", "nav_small_image reads 'front_image' of shape (64, 64, 3), but task "
                        "'diffdrive_nav_image' gives shape (84, 84, 3)"),
], ids=["missing-camera", "camera-size"])
def test_keys_an_env_lacks_or_shapes_it_differs_in_stop_eval_in_one_line(saved, tmp_path, robo, name, message):
    run = robo("eval", f"checkpoint={saved[name]}", "episodes=1", f"out={tmp_path / 'eval'}", *SHORT)
    assert run.code == 2 and message in run.err
    assert run.err.strip().count("\n") == 0 and "Traceback" not in run.err
    assert not (tmp_path / "eval").exists()  # refused before any episode or report


def target(task, **env_kwargs):
    """A ``robo eval`` config naming ``task`` with ``env_kwargs``."""
    return compose_config("eval", [f"task={task}", *(f"+task.env_kwargs.{k}={v}" for k, v in env_kwargs.items())])


@pytest.mark.parametrize("reader, task, env_kwargs, refused", [
    (("nav_state", NAV_STATE, "diffdrive_nav"), "diffdrive_nav", {"obs_mode": "both"}, None),
    (("nav_state", NAV_STATE, "diffdrive_nav"), "diffdrive_nav", {"obs_mode": "both", "start_distance": 0.5}, None),
    (("arm_image", ARM_IMAGE, "arm_pick_place_image"), "arm_pick_place", {"obs_mode": "both"}, None),
    (("nav_image", NAV_IMAGE, "diffdrive_nav_image"), "diffdrive_nav", {"obs_mode": "both"}, "base_pose"),
    (("nav_image", NAV_IMAGE, "diffdrive_nav_image"), "diffdrive_nav_image", {"obs_mode": "both"}, "base_pose"),
], ids=["state-on-both", "state-on-both-nearer-wall", "arm-image-on-both", "odometry-on-both",
        "odometry-variant-on-both"])
def test_a_key_must_mean_what_it_meant_in_training(reader, task, env_kwargs, refused):
    """Odometry (from the start pose) is not the world pose; a layout setting or added cameras
    change no key's meaning."""
    if refused is None:
        check_readers(target(task, **env_kwargs), [Reader(*reader)], None, "test")
    else:
        with pytest.raises(ValueError, match=rf"nav_image reads \['{refused}'\] as task 'diffdrive_nav_image' "
                                             rf"gives them, but task '{task}' with env_kwargs .* other values"):
            check_readers(target(task, **env_kwargs), [Reader(*reader)], None, "test")


# -- a camera policy composed with a state policy -------------------------------------------------


def test_each_parent_is_fed_its_own_keys_of_one_observation():
    state, image = make_policy(shapes=ARM_STATE, action_dim=6), make_policy(seed=1, shapes=ARM_IMAGE, action_dim=6)
    composed = ComposedPolicy([state, image], [0.5, 0.5])
    fed = []
    for parent in composed.parents:
        parent.encode = (lambda encode: lambda obs: fed.append(sorted(obs)) or encode(obs))(parent.encode)
    env = get_task("arm_pick_place").env(obs_mode="both")
    obs = env.reset(seed=0)[0]
    env.close()
    action = composed.act(obs)
    assert fed == [sorted(ARM_STATE), sorted(ARM_IMAGE)]  # not cube_quat, eef_pos, nor the other's
    assert action.shape == (6,) and np.isfinite(action).all()
    assert composed.obs_shapes == {**ARM_STATE, **ARM_IMAGE}


def test_robo_compose_runs_a_camera_and_a_state_parent_on_one_env_and_eval_reuses_it(
        saved, tmp_path, robo, read_video):
    out = tmp_path / "search"
    parents = f"checkpoints=[{saved['arm_state']},{saved['arm_image']}]"
    run = robo("compose", parents, "task=arm_pick_place", "+task.env_kwargs.obs_mode=both", "step=0.5",
               "episodes=1", f"out={out}", *SHORT)
    assert run.code == 0, run.err
    search = json.loads((out / "search.json").read_text())
    assert [c["weights"] for c in search["candidates"]] == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    assert all(isinstance(c["success_rate"], float) and c["nfe"] == 8 for c in search["candidates"])
    assert search["env_kwargs"] == {"obs_mode": "both"}
    assert [(p["task"], p["obs_keys"]) for p in search["parents"]] == [
        ("arm_pick_place", sorted(ARM_STATE)), ("arm_pick_place_image", sorted(ARM_IMAGE))]
    assert saved_metadata(out / "checkpoint") == {"task": "arm_pick_place", "env_kwargs": {"obs_mode": "both"}}

    # robo eval without task= runs it where it was searched (the state task alone lacks cameras).
    run = robo("eval", f"checkpoint={out}", "episodes=1", "video_episodes=1", *SHORT)
    assert run.code == 0, run.err
    result = report(out)
    assert result["episodes"] == 1 and 0.0 <= result["success_rate"] <= 1.0 and result["nfe"] == 8
    frames, _ = read_video(out / "rollout.mp4")
    assert frames.shape == (6, 240, 320 + 2 * 240, 3)  # scene, front and wrist cameras


@pytest.mark.parametrize("where, message", [
    (["task=diffdrive_nav", "+task.env_kwargs.obs_mode=both"],
     r"nav_image reads \['base_pose'\] as task 'diffdrive_nav_image' gives them, but task 'diffdrive_nav'"),
    (["task=diffdrive_nav_image"], r"nav_state: observation key\(s\) \['goal', 'obstacle'\] missing"),
    ([], r"no common task to run them on; pass task=<name> \(with \+task.env_kwargs.obs_mode=both"),
], ids=["world-pose-env", "odometry-env", "no-task"])
def test_parents_that_learned_base_pose_in_two_frames_never_run_together(saved, tmp_path, robo, where, message):
    """The state policy's base_pose is the world pose, the camera policy's its odometry: no env
    serves both, so the search stops before its first episode."""
    out = tmp_path / "search"
    run = robo("compose", f"checkpoints=[{saved['nav_state']},{saved['nav_image']}]", *where, "step=0.5",
               "episodes=1", f"out={out}", *SHORT)
    assert run.code == 2 and run.err.strip().count("\n") == 0
    assert re.search(message, run.err), run.err
    assert not out.exists()


# -- RTI warm starts from pixels ------------------------------------------------------------------


def test_rti_warm_starts_an_image_policy(saved, tmp_path, robo):
    common = [f"checkpoint={saved['arm_image']}", "episodes=1", "video_episodes=0",
              "sampling.n_action_steps=1", *SHORT]
    assert robo("eval", *common, f"out={tmp_path / 'full'}").code == 0
    run = robo("eval", *common, "sampler=rti", "rti.steps=2", f"out={tmp_path / 'rti'}")
    assert run.code == 0, run.err
    full, rti = report(tmp_path / "full"), report(tmp_path / "rti")
    assert full["nfe"] == 4 and rti["nfe"] == 2  # 5 calls: one full solve, then 2-step warm ones
    assert [r["model_calls"] for r in rti["records"]] == [5]
    assert rti["sampler"] == {"name": "rti", "steps": 2, "start_noise": 1.0, "renoise": True,
                              "calibrate": False, "discrete_dims": [5]}  # the arm's gripper


# -- robo deploy of a camera policy on a twin ----------------------------------------------------

def test_robo_deploy_runs_an_image_policy_on_the_twin_with_its_cameras_rendered_in_the_loop(saved, tmp_path, robo):
    """so101_arm's twin runs arm_pick_place; a policy of arm_pick_place_image (the same scene
    through the robot's cameras) runs on it, the twin rendering both cameras at each read."""
    import dataclasses

    from robo_policies.robots.config import load_robot_config
    from robo_policies.robots.factory import make_robot

    run = robo("deploy", "robot=so101_arm", f"checkpoint={saved['arm_image']}", "sim=true", "episodes=1",
               "realtime=false", f"out={tmp_path / 'arm'}", "progress=false")
    assert run.code == 0, run.err
    deployed = json.loads((tmp_path / "arm" / "deploy.json").read_text())
    assert deployed["episodes"] == 1 and deployed["fault"] is None and deployed["ticks"] > 0
    assert set(deployed["cameras"]) == {"front", "wrist"}
    for camera in deployed["cameras"].values():  # one frame rendered per observation, none dropped
        assert camera["frames"] >= deployed["ticks"] and camera["dropped"] == 0
        assert 0 <= camera["frame_age_ms_p50"] <= camera["frame_age_ms_p99"] < 500
    config = dataclasses.replace(load_robot_config("so101_arm"), sim_task="arm_pick_place_image")
    twin = make_robot(config, sim=True, twin_env_kwargs={"image_size": 32})
    assert twin.observation_features == {"joint_pos": (6,), "joint_vel": (6,), "front_image": (32, 32, 3),
                                         "wrist_image": (32, 32, 3)}
    with twin:  # the twin's cameras see what robo eval's env sees for the same seed, exactly
        twin.start_episode(seed=3)
        seen = twin.get_observation()
    expected, _ = get_task("arm_pick_place_image").env(image_size=32).reset(seed=3)
    for key in ("front_image", "wrist_image", "joint_pos"):
        np.testing.assert_array_equal(seen[key], expected[key])
    run = robo("deploy", "robot=so101_arm", f"checkpoint={saved['nav_image']}", "sim=true", "episodes=1",
               f"out={tmp_path / 'nav'}", "progress=false")
    assert run.code == 2 and "trained on task 'diffdrive_nav_image', but so101_arm's twin runs 'arm_pick_place'" \
        in run.err
