"""The ogbench_cube_single task (needs the ``ogbench`` extra; skipped without it)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from robo_policies.envs import get_task
from robo_policies.envs.ogbench_cube import HORIZON, STATE_DIM, make_expert


def test_registered_without_importing_ogbench() -> None:
    code = (
        "import sys; sys.modules['ogbench'] = None\n"  # as if the extra were not installed
        "from robo_policies.envs import get_task\n"
        "task = get_task('ogbench_cube_single')\n"
        "assert task.requires == 'ogbench' and task.horizon == 200\n"
        "try:\n"
        "    task.env()\n"
        "except ImportError as err:\n"
        "    assert \"robo-policies[ogbench]\" in str(err), err\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def task():
    pytest.importorskip("ogbench")
    return get_task("ogbench_cube_single")


@pytest.fixture(scope="module")
def env(task):
    env = task.env()
    yield env
    env.close()


def rollout(task, env, seed: int, oracle: str = "markov"):
    """(states, actions, success, steps) of one oracle episode from reset(seed=seed)."""
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    # the task's expert is the markov oracle; the plan oracle is the module-level option
    expert = task.make_expert(env, rng) if oracle == "markov" else make_expert(env, rng, oracle)
    states, actions = [obs["state"]], []
    done = False
    while not done:
        action = expert(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        assert "is_success" in info and reward == float(info["is_success"])
        states.append(obs["state"])
        actions.append(action)
        done = terminated or truncated
    return np.array(states), np.array(actions), info["is_success"], len(actions)


def test_spaces_and_dict_obs(env) -> None:
    obs, info = env.reset(seed=0)
    assert set(env.observation_space.spaces) == {"state"}
    assert env.observation_space["state"].shape == (STATE_DIM,)
    assert env.observation_space["state"].dtype == np.float32
    assert env.action_space.shape == (5,) and env.action_space.dtype == np.float32
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (STATE_DIM,)
    assert env.observation_space.contains(obs)
    assert info["is_success"] is False
    obs, reward, terminated, truncated, info = env.step(np.zeros(5, np.float32))
    assert env.observation_space.contains(obs)
    assert info["is_success"] is False and reward == 0.0 and not terminated and not truncated
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(4, np.float32))


def test_reset_is_deterministic_per_seed(task, env) -> None:
    first = env.reset(seed=3)[0]["state"]
    other = env.reset(seed=4)[0]["state"]
    again = env.reset(seed=3)[0]["state"]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    a = rollout(task, env, seed=3)
    b = rollout(task, env, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    fresh = task.env()  # a new instance (as when replaying meta/seed in another process)
    c = rollout(task, fresh, seed=3)
    fresh.close()
    np.testing.assert_array_equal(a[0], c[0])
    np.testing.assert_array_equal(a[1], c[1])


def test_truncates_at_horizon(task) -> None:
    env = task.env(horizon=5)
    env.reset(seed=0)
    flags = [env.step(np.zeros(5, np.float32))[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    env.close()


@pytest.mark.parametrize("oracle", ["markov", "plan"])
def test_oracle_solves_the_task(task, env, oracle: str) -> None:
    results = [rollout(task, env, seed, oracle) for seed in range(5)]
    successes = sum(success for _, _, success, _ in results)
    assert successes >= 4, [(success, steps) for _, _, success, steps in results]
    assert all(steps < HORIZON for _, _, success, steps in results if success)


def test_smoke_wallclock_an_oracle_episode_is_cheap_enough_to_collect(task, env) -> None:
    """Collecting hundreds of demonstrations stays practical on a CPU; the bound is loose
    enough for a loaded CI machine."""
    start = time.perf_counter()
    rollout(task, env, seed=0)
    assert time.perf_counter() - start < 10.0


def test_render_rgb_array(task) -> None:
    env = task.env(render_mode="rgb_array", width=64, height=48)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()
