"""Datasets from elsewhere (robomimic HDF5, OGBench npz) train and evaluate like recorded ones:
converted, trained with ``robo train dataset=...`` and no task, evaluated on a task or a
Gymnasium id; next-step copies and bookkeeping arrays are inputs only when named."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest
import yaml
from gymnasium import spaces

from robo_policies.commands.config import compose_config
from robo_policies.commands.evaluate import make_warm_start
from robo_policies.data import ReplayBuffer
from robo_policies.data.observation_keys import default_observation_keys
from robo_policies.policy import Policy
from robo_policies.utils.errors import ConfigError

TINY = ["policy.net=mlp", "policy.hidden_dim=16", "policy.n_blocks=1", "policy.time_dim=8",
        "policy.horizon=4", "policy.n_action_steps=2", "policy.head.inference_steps=2",
        "train.steps=4", "train.batch_size=8", "train.threads=1", "train.val_ratio=0", "progress=false"]
TINY_IMAGES = ["policy.image_feature_dim=8", "policy.samples_per_obs=1"]
EVAL = ["episodes=1", "video_episodes=0", "progress=false"]

IMAGE_SIDE = 16
CAMERAS = ("agentview_image", "robot0_eye_in_hand_image")
ACTION_DIM = 7


def make_robomimic_with_cameras(path: Path, demos: int = 3, steps: int = 10) -> Path:
    """A robomimic file as robosuite image datasets are laid out: two cameras and the
    end-effector position in obs/ and next_obs/, simulator states, 7-D actions."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for number in range(demos):
            demo = f.create_group(f"data/demo_{number}")
            for group in ("obs", "next_obs"):
                for camera in CAMERAS:
                    demo[f"{group}/{camera}"] = rng.integers(0, 256, (steps, IMAGE_SIDE, IMAGE_SIDE, 3), np.uint8)
                demo[f"{group}/robot0_eef_pos"] = rng.normal(size=(steps, 3))
            demo["actions"] = rng.uniform(-1, 1, (steps, ACTION_DIM))
            demo["rewards"] = np.zeros(steps)
            demo["dones"] = np.r_[np.zeros(steps - 1, np.int64), 1]
            demo["states"] = rng.normal(size=(steps, 20))
            demo.attrs["num_samples"] = steps
        f["data"].attrs["total"] = demos * steps
    return path


class CameraArmEnv(gym.Env):
    """A stand-in for an external env giving robosuite's observation names (no next_obs)."""

    def __init__(self, render_mode=None):
        image = spaces.Box(0, 255, (IMAGE_SIDE, IMAGE_SIDE, 3), np.uint8)
        self.observation_space = spaces.Dict({**dict.fromkeys(CAMERAS, image),
                                              "robot0_eef_pos": spaces.Box(-5, 5, (3,), np.float64)})
        self.action_space = spaces.Box(-1, 1, (ACTION_DIM,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {"is_success": False}

    def step(self, action):
        assert action.shape == (ACTION_DIM,)
        return self.observation_space.sample(), 0.0, False, False, {"is_success": False}


CAMERA_ENV_ID = "RoboTest/CameraArm-v0"
if CAMERA_ENV_ID not in gym.registry:
    gym.register(id=CAMERA_ENV_ID, entry_point=CameraArmEnv, max_episode_steps=5)


def saved_policy(run: Path) -> tuple[Policy, dict]:
    """The run's final policy and its config.yaml."""
    policy_dir = run / "checkpoint"
    return Policy.load(policy_dir), yaml.safe_load((policy_dir / "config.yaml").read_text())


# -- which arrays are inputs -------------------------------------------------------------------


def test_default_inputs_leave_out_next_step_copies_bookkeeping_and_listed_keys() -> None:
    keys = ["action", "agentview_image", "next_obs.agentview_image", "next_state", "qpos", "reward",
            "robot0_eef_pos", "state", "states", "timestamp", "frame_index"]
    assert default_observation_keys(keys, {}) == ["agentview_image", "qpos", "robot0_eef_pos", "state", "states"]
    assert default_observation_keys(keys, {"non_input_keys": ["qpos", "states"]}) == [
        "agentview_image", "robot0_eef_pos", "state"]


@pytest.mark.slow
def test_robomimic_image_policy_trains_without_next_obs_and_evaluates_on_a_gym_id(tmp_path, robo) -> None:
    """robomimic with cameras and next_obs -> an image policy reading obs/ only, which runs on a
    Gymnasium env giving robosuite's keys with no observation settings (no obs_map)."""
    src = make_robomimic_with_cameras(tmp_path / "lift_image.hdf5")
    dataset = tmp_path / "lift_image.zarr"
    assert robo("dataset", "convert", src, dataset).code == 0
    run = tmp_path / "run"
    result = robo("train", f"dataset={dataset}", f"out={run}", *TINY, *TINY_IMAGES)
    assert result.code == 0, result.err
    # training says what it built the policy from, before training
    for key, shape, dtype, kind in [("agentview_image", "(16, 16, 3)", "uint8", "camera image"),
                                    ("robot0_eye_in_hand_image", "(16, 16, 3)", "uint8", "camera image"),
                                    ("robot0_eef_pos", "(3,)", "float64", "low-dim")]:
        assert re.search(rf"^  {key} +{re.escape(shape)} +{dtype} +{kind}$", result.out, re.M), result.out
    assert "not inputs: done, next_obs.agentview_image, next_obs.robot0_eef_pos, " in result.out
    assert f"action: {ACTION_DIM} dims" in result.out

    policy, saved = saved_policy(run)
    assert policy.image_keys == sorted(CAMERAS)
    assert sorted(policy.obs_shapes) == sorted([*CAMERAS, "robot0_eef_pos"])
    assert policy.obs_shapes["agentview_image"] == (IMAGE_SIDE, IMAGE_SIDE, 3)
    assert saved["metadata"]["task"] is None
    run_config = yaml.safe_load((run / "config.yaml").read_text())
    assert "task" not in run_config and run_config["dataset"] == str(dataset)

    evaluated = robo("eval", f"checkpoint={run}", f"env.id={CAMERA_ENV_ID}", *EVAL)
    assert evaluated.code == 0, evaluated.err


def test_next_obs_arrays_become_inputs_when_named(tmp_path, robo) -> None:
    src = make_robomimic_with_cameras(tmp_path / "lift.hdf5", demos=2)
    dataset = tmp_path / "lift.zarr"
    assert robo("dataset", "convert", src, dataset, "obs_keys=[robot0_eef_pos]").code == 0
    run = tmp_path / "run"
    named = "policy.obs_keys=[robot0_eef_pos,next_obs.robot0_eef_pos,states]"
    assert robo("train", f"dataset={dataset}", f"out={run}", named, *TINY).code == 0
    policy, _ = saved_policy(run)
    assert policy.obs_shapes == {"robot0_eef_pos": (3,), "next_obs.robot0_eef_pos": (3,), "states": (20,)}


# -- OGBench end to end ------------------------------------------------------------------------


def make_ogbench_npz(path: Path, episodes: int = 3, steps: int = 12) -> Path:
    """A cube-single dataset in OGBench's layout: flat arrays over all steps, terminals at each
    episode's last step, 28-D state observations, 5-D actions, qpos/qvel and next observations."""
    rng = np.random.default_rng(0)
    total = episodes * steps
    observations = rng.normal(size=(total, 28)).astype(np.float32)
    terminals = np.zeros(total, np.float32)
    terminals[steps - 1::steps] = 1.0
    np.savez(path, observations=observations, next_observations=np.roll(observations, -1, axis=0),
             actions=rng.uniform(-1, 1, (total, 5)).astype(np.float32), terminals=terminals,
             masks=1.0 - terminals, rewards=rng.normal(size=total).astype(np.float32),
             qpos=rng.normal(size=(total, 21)).astype(np.float32),
             qvel=rng.normal(size=(total, 20)).astype(np.float32))
    return path


@pytest.mark.slow
def test_a_policy_trained_on_converted_ogbench_data_evaluates_on_ogbench_cube_single(tmp_path, robo) -> None:
    pytest.importorskip("ogbench")
    dataset = tmp_path / "cube-single-play.zarr"
    assert robo("dataset", "convert", make_ogbench_npz(tmp_path / "cube-single-play.npz"), dataset).code == 0
    assert ReplayBuffer.open(dataset).keys == ["action", "mask", "next_state", "qpos", "qvel", "reward",
                                               "state", "terminal"]
    run = tmp_path / "run"
    assert robo("train", f"dataset={dataset}", f"out={run}", *TINY).code == 0
    policy, _ = saved_policy(run)
    assert policy.obs_shapes == {"state": (28,)} and policy.action_dim == 5
    result = robo("eval", f"checkpoint={run}", "task=ogbench_cube_single", "max_steps=4", *EVAL)
    assert result.code == 0, result.err


# -- robo train without a task -----------------------------------------------------------------


def test_train_settings_without_task_name_the_dataset_and_no_task() -> None:
    from robo_policies.commands.model_config import train_run_config

    cfg = train_run_config(["dataset=/data/lift_image.zarr", "policy=flow"])
    assert "task" not in cfg and cfg.dataset == "/data/lift_image.zarr"
    assert cfg.out == "outputs/train/lift_image_flow"
    cfg = train_run_config(["task=arm_pick_place"])
    assert cfg.dataset == "data/arm_pick_place.zarr" and cfg.out == "outputs/train/arm_pick_place_diffusion"
    assert train_run_config(["task.name=toy_reach"]).dataset == "data/toy_reach.zarr"  # a task without a yaml
    with pytest.raises(ConfigError, match="dataset=<path.zarr> is required"):
        train_run_config([])


# -- discrete action dimensions ----------------------------------------------------------------


def rti_settings(run: Path, *extra: str):
    """The warm start ``robo eval checkpoint=run sampler=rti`` builds on the Gymnasium env."""
    cfg = compose_config("eval", [f"checkpoint={run}", "sampler=rti", f"env.id={CAMERA_ENV_ID}", *extra])
    return make_warm_start(cfg, None, Policy.load(run / "checkpoint"), str(run)).config


def test_declared_discrete_action_dims_are_saved_and_snapped_by_rti_on_an_external_env(tmp_path, robo) -> None:
    src = make_robomimic_with_cameras(tmp_path / "lift.hdf5", demos=2)
    dataset = tmp_path / "lift.zarr"
    assert robo("dataset", "convert", src, dataset, "obs_keys=[robot0_eef_pos]").code == 0

    declared = tmp_path / "declared"
    result = robo("train", f"dataset={dataset}", f"out={declared}", "policy.discrete_action_dims=[6]", *TINY)
    assert result.code == 0 and "discrete (policy.discrete_action_dims): [6]" in result.out
    assert saved_policy(declared)[1]["policy"]["discrete_action_dims"] == [6]
    assert rti_settings(declared).discrete_dims == [6]
    assert rti_settings(declared, "rti.discrete_dims=[]").discrete_dims == []  # rti's own setting wins

    # a dataset attribute declares them when the setting is not given; none otherwise
    plain = tmp_path / "plain"
    assert robo("train", f"dataset={dataset}", f"out={plain}", *TINY).code == 0
    assert rti_settings(plain).discrete_dims == []
    ReplayBuffer.open(dataset, mode="a").update_attrs({"discrete_action_dims": [6]})
    from_attrs = tmp_path / "from_attrs"
    assert robo("train", f"dataset={dataset}", f"out={from_attrs}", *TINY).code == 0
    assert rti_settings(from_attrs).discrete_dims == [6]

    refused = robo("train", f"dataset={dataset}", f"out={tmp_path / 'bad'}", "policy.discrete_action_dims=[7]", *TINY)
    assert refused.code == 2 and "policy.discrete_action_dims [7] out of range for 7-D actions" in refused.err


def test_a_task_policy_keeps_its_task_s_discrete_dims(tmp_path) -> None:
    """Without a declaration a dataset recorded on a task gives the task's (the arm's gripper)."""
    from robo_policies.policy import PolicyConfig
    from robo_policies.train.trainer import resolve_discrete_action_dims

    buffer = ReplayBuffer.create(tmp_path / "arm.zarr", attrs={"task": "arm_pick_place"})
    assert resolve_discrete_action_dims(PolicyConfig(), buffer) == [5]
    assert resolve_discrete_action_dims(PolicyConfig(discrete_action_dims=[]), buffer) == []
