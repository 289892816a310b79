"""The diffdrive_nav task: Gymnasium API, seeding, rendering and a bimodal scripted expert."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest

from robo_policies.envs import get_task
from robo_policies.envs.diffdrive_nav import (
    HORIZON,
    MAX_WHEEL_SPEED,
    DiffDriveNavEnv,
    WaypointExpert,
    pass_side,
    wheel_speeds,
)


@pytest.fixture(scope="module")
def env() -> Iterator[DiffDriveNavEnv]:
    env = DiffDriveNavEnv(render_mode="rgb_array")
    yield env
    env.close()


def test_spaces_and_control_rate(env: DiffDriveNavEnv) -> None:
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.high, -env.action_space.low)
    assert env.action_space.high[0] == pytest.approx(MAX_WHEEL_SPEED)
    shapes = {k: s.shape for k, s in env.observation_space.spaces.items()}
    assert shapes == {"base_pose": (4,), "base_vel": (2,), "goal": (2,), "obstacle": (2,)}
    assert env.control_dt == pytest.approx(0.1)
    assert env.horizon == HORIZON == get_task("diffdrive_nav").horizon


def test_reset_is_seeded() -> None:
    a, b = DiffDriveNavEnv(), DiffDriveNavEnv()
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    obs_c, _ = b.reset(seed=8)
    for key in ("base_pose", "goal", "obstacle"):  # everything randomised differs
        assert not np.array_equal(obs_a[key], obs_c[key]), key


def test_wheel_speed_commands_are_tracked(env: DiffDriveNavEnv) -> None:
    """Commanded wheel speeds turn into the body motion diff-drive kinematics predicts."""
    for v, omega in [(0.18, 0.0), (0.12, 0.6), (0.0, -2.0)]:
        env.reset(seed=0)
        action = wheel_speeds(v, omega).astype(np.float32)
        for _ in range(10):
            obs, *_ = env.step(action)
        np.testing.assert_allclose(obs["base_vel"], [v, omega], atol=0.01 + 0.03 * abs(omega))


def test_expert_succeeds_and_passes_both_sides(env: DiffDriveNavEnv) -> None:
    successes, sides = 0, []
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        expert = WaypointExpert(env, np.random.default_rng(seed))
        base_xy = [obs["base_pose"][:2]]
        for _ in range(HORIZON):
            obs, _, terminated, truncated, info = env.step(expert(obs))
            base_xy.append(obs["base_pose"][:2])
            if terminated or truncated:
                break
        successes += info["is_success"]
        assert info["wall_contact_steps"] == 0, f"seed {seed}: the expert touched the wall"
        # Classified from observations alone, as a dataset check would.
        side = pass_side(np.array(base_xy), obs["obstacle"], obs["goal"])
        assert side == expert.side, f"seed {seed}"
        sides.append(side)
    assert successes >= 19
    assert sides.count("left") >= 5 and sides.count("right") >= 5, sides


def test_driving_into_the_wall_counts_contact_steps(env: DiffDriveNavEnv) -> None:
    env.reset(seed=0)
    full_ahead = np.full(2, 6.0, np.float32)
    counts = [env.step(full_ahead)[4]["wall_contact_steps"] for _ in range(80)]
    assert counts[0] == 0 and counts[-1] > 20  # ~4 s to reach the wall, then pressed against it
    assert counts == sorted(counts)  # a running count for the episode
    env.reset(seed=0)
    assert env.step(full_ahead)[4]["wall_contact_steps"] == 0  # reset clears it


def test_start_distance_moves_only_the_start() -> None:
    near, default = DiffDriveNavEnv(start_distance=0.5), DiffDriveNavEnv()
    obs_near, _ = near.reset(seed=3)
    obs_default, _ = default.reset(seed=3)
    np.testing.assert_allclose(obs_near["base_pose"][:2], obs_default["base_pose"][:2] + [0.5, 0], atol=1e-6)
    np.testing.assert_array_equal(obs_near["obstacle"], obs_default["obstacle"])
    with pytest.raises(ValueError, match="start_distance must be in"):
        DiffDriveNavEnv(start_distance=0.1)


def test_pass_side_on_synthetic_paths() -> None:
    """'left' is left of the start->goal route, whatever the route's direction."""
    t = np.linspace(0, 1, 21)[:, None]
    bump = np.sin(np.pi * t) * 0.6
    east = np.hstack([2 * t, bump])  # from (0, 0) to (2, 0), bulging to +y
    assert pass_side(east, np.array([1.0, 0.0]), np.array([2.0, 0.0])) == "left"
    south = east[:, ::-1] * [1, -1]  # (0, 0) to (0, -2) bulging to +x: left, heading south
    assert pass_side(south, np.array([0.0, -1.0]), np.array([0.0, -2.0])) == "left"
    mirrored = east * [1, -1]
    assert pass_side(mirrored, np.array([1.0, 0.0]), np.array([2.0, 0.0])) == "right"


def test_render_shape(env: DiffDriveNavEnv) -> None:
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert frame.min() != frame.max()


def test_bad_action_shape_raises(env: DiffDriveNavEnv) -> None:
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.zeros(3, dtype=np.float32))


def test_gymnasium_registration() -> None:
    env = gym.make("robo_policies/DiffDriveNav-v0")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()
