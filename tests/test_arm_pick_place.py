"""The arm_pick_place task: Gymnasium API, seeding, IK accuracy, the expert and rendering."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest

from robo_policies.envs import get_task
from robo_policies.envs.arm_pick_place import (
    ARM_JOINTS,
    CUBE_HALF,
    ENV_ID,
    HORIZON,
    ArmPickPlaceEnv,
    PickPlaceExpert,
    tool_down_quat,
)
from robo_policies.envs.kinematics import DLSInverseKinematics


@pytest.fixture(scope="module")
def env() -> Iterator[ArmPickPlaceEnv]:
    env = ArmPickPlaceEnv(render_mode="rgb_array")
    yield env
    env.close()


def run_expert(env: ArmPickPlaceEnv, seed: int) -> tuple[bool, int, float]:
    """One expert episode: (success, steps, largest joint-target change between steps)."""
    obs, _ = env.reset(seed=seed)
    expert = PickPlaceExpert(env, np.random.default_rng(seed))
    previous, max_jump, info, steps = None, 0.0, {}, 0
    for steps in range(1, env.horizon + 1):
        action = expert(obs)
        if previous is not None:
            max_jump = max(max_jump, float(np.abs(action[:5] - previous[:5]).max()))
        previous = action
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return bool(info["is_success"]), steps, max_jump


def test_spaces_control_rate_and_registration(env: ArmPickPlaceEnv) -> None:
    assert env.action_space.shape == (6,) and env.action_space.dtype == np.float32
    assert env.action_space.low[5] == 0.0 and env.action_space.high[5] == 1.0
    shapes = {k: s.shape for k, s in env.observation_space.spaces.items()}
    assert shapes == {
        "joint_pos": (6,),
        "joint_vel": (6,),
        "eef_pos": (3,),
        "cube_pos": (3,),
        "cube_quat": (4,),
        "target_pos": (3,),
    }
    assert env.control_dt == pytest.approx(0.1)
    assert env.horizon == HORIZON == get_task("arm_pick_place").horizon
    made = gym.make(ENV_ID)
    assert isinstance(made.unwrapped, ArmPickPlaceEnv)
    made.close()


def test_reset_is_seeded() -> None:
    a, b = ArmPickPlaceEnv(), ArmPickPlaceEnv()
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    obs_c, _ = b.reset(seed=8)
    for key in ("joint_pos", "cube_pos", "cube_quat", "target_pos"):  # all randomised
        assert not np.array_equal(obs_a[key], obs_c[key]), key


def test_ik_reaches_targets_with_the_tool_pointing_down(env: ArmPickPlaceEnv) -> None:
    ik = DLSInverseKinematics(env.model, "tcp", ARM_JOINTS)
    targets = [(0.12, 0.0, 0.015), (0.2, 0.1, 0.015), (0.15, -0.12, 0.08), (0.21, 0.0, 0.05)]
    for i, target in enumerate(targets):
        yaw = np.arctan2(target[1], target[0]) + np.pi / 2 + 0.3 * (i - 1.5)
        result = ik.solve(target, tool_down_quat(yaw), q_init=np.zeros(5))
        pos, rot = ik.forward(result.qpos)
        assert result.converged, (target, result)
        assert np.linalg.norm(pos - target) < 0.005
        np.testing.assert_allclose(rot[:, 2], [0.0, 0.0, -1.0], atol=0.01)  # tool z down
        assert np.all(result.qpos >= ik.lower) and np.all(result.qpos <= ik.upper)
    # Position-only solves from the default start (the middle of the joint ranges).
    target = np.array([0.18, 0.05, 0.1])
    result = ik.solve(target)
    assert result.converged and np.linalg.norm(ik.forward(result.qpos)[0] - target) < 0.005


def test_ik_does_not_disturb_the_simulation(env: ArmPickPlaceEnv) -> None:
    env.reset(seed=0)
    qpos = env.data.qpos.copy()
    DLSInverseKinematics(env.model, "tcp", ARM_JOINTS).solve(np.array([0.2, 0.0, 0.05]))
    np.testing.assert_array_equal(env.data.qpos, qpos)


def test_expert_succeeds_with_smooth_targets(env: ArmPickPlaceEnv) -> None:
    results = [run_expert(env, seed) for seed in range(10)]
    assert sum(success for success, _, _ in results) >= 9
    assert max(steps for _, steps, _ in results) < HORIZON // 2  # ample horizon margin
    assert max(jump for _, _, jump in results) < 0.3  # rad per 0.1 s step


@pytest.mark.slow
def test_expert_succeeds_over_many_seeds(env: ArmPickPlaceEnv) -> None:
    """The expert's success rate behind the demo's datasets (the 10-seed test above is the
    fast check)."""
    successes = sum(run_expert(env, seed)[0] for seed in range(100, 200))
    assert successes >= 98


def test_success_needs_the_cube_resting_on_the_target(env: ArmPickPlaceEnv) -> None:
    obs, _ = env.reset(seed=3)
    hold = np.append(obs["joint_pos"][:5], 0.0)
    cube_adr = env.model.joint("cube").qposadr[0]
    target = obs["target_pos"].astype(float)

    env.data.qpos[cube_adr : cube_adr + 3] = (target[0] + 0.05, target[1], CUBE_HALF)
    _, reward, terminated, _, info = env.step(hold)
    assert not info["is_success"] and not terminated and reward == 0.0

    env.data.qpos[cube_adr : cube_adr + 3] = (target[0], target[1], 0.1)  # above, falling
    env.data.qvel[:] = 0.0
    _, _, _, _, info = env.step(hold)
    assert not info["is_success"]

    env.data.qpos[cube_adr : cube_adr + 3] = (target[0] + 0.01, target[1], CUBE_HALF)
    env.data.qvel[:] = 0.0
    _, reward, terminated, _, info = env.step(hold)
    assert info["is_success"] and terminated and reward == 1.0
    assert info["cube_to_target"] == pytest.approx(0.01, abs=0.003)


def test_render_shows_the_scene(env: ArmPickPlaceEnv) -> None:
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert frame.std() > 10.0
    assert ArmPickPlaceEnv().render() is None  # no render mode, no frame


def test_bad_actions_raise(env: ArmPickPlaceEnv) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.zeros(5, dtype=np.float32))
    with pytest.raises(ValueError):
        env.step(np.full(6, np.nan, dtype=np.float32))
