"""step_episode: the one episode loop of collection and evaluation."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robo_policies.envs.episode import step_episode


class ScriptedEnv(gym.Env):
    """Observation = the step count; step ``t`` returns ``rewards[t]``, ``infos[t]`` and ends
    the episode where ``ends[t]`` says ("terminated", "truncated" or "")."""

    observation_space = spaces.Box(0, 100, shape=(1,), dtype=np.float32)
    action_space = spaces.Box(-1, 1, shape=(1,), dtype=np.float32)

    def __init__(self, infos, ends=None, rewards=None):
        self.infos, self.log = infos, []
        self.ends = ends or [""] * len(infos)
        self.rewards = rewards or [0.5] * len(infos)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        self.log.append(("reset", seed))
        return np.array([0.0], np.float32), {"is_success": True}  # reset's info is not read

    def step(self, action):
        self.log.append(("step", float(action[0])))
        t, self.t = self.t, self.t + 1
        end = self.ends[t]
        obs = np.array([self.t], np.float32)
        return obs, self.rewards[t], end == "terminated", end == "truncated", self.infos[t]


def test_calls_happen_in_order_and_the_episode_is_described():
    env = ScriptedEnv([{"is_success": s} for s in (False, True, False)], ends=["", "", "truncated"],
                      rewards=[1.0, 2.0, 4.0])
    seen = []

    def act(obs):
        seen.append(("act", float(obs[0])))
        return obs * 0.1

    episode = step_episode(
        env, 7, act, obs_adapter=lambda raw: raw + 10, keep_observations=True,
        on_reset=lambda: seen.append(("on_reset", env.log[-1])),
        on_step=lambda: seen.append(("on_step", env.t)),
    )
    assert env.log == [("reset", 7), ("step", pytest.approx(1.0)), ("step", pytest.approx(1.1)),
                       ("step", pytest.approx(1.2))]
    assert seen == [("on_reset", ("reset", 7)), ("act", 10.0), ("on_step", 1), ("act", 11.0),
                    ("on_step", 2), ("act", 12.0), ("on_step", 3)]
    assert (episode.seed, episode.length, episode.total_reward) == (7, 3, 7.0)
    assert episode.rewards == [1.0, 2.0, 4.0]
    # success is the last step's flag; it was reached once and lost again
    assert (episode.success, episode.ever_success, episode.success_reported) == (False, True, True)
    assert [float(o[0]) for o in episode.observations] == [10.0, 11.0, 12.0, 13.0]
    assert episode.info is env.infos[-1]


@pytest.mark.parametrize("ends, max_steps, length", [
    (["", "terminated", ""], None, 2),
    (["", "", "truncated", ""], None, 3),
    (["", "", "", ""], 2, 2),
    (["", "terminated", ""], 5, 2),
])
def test_the_episode_ends_at_termination_truncation_or_max_steps(ends, max_steps, length):
    env = ScriptedEnv([{"success": False}] * len(ends), ends=ends)
    episode = step_episode(env, 0, lambda obs: np.zeros(1, np.float32), max_steps=max_steps)
    assert episode.length == length and len(env.log) == length + 1
    assert episode.observations is None  # not kept unless asked


def test_success_falls_back_to_info_success_and_an_env_may_report_none():
    flagged = ScriptedEnv([{"success": np.array([False, True])}], ends=["terminated"])
    episode = step_episode(flagged, 0, lambda obs: np.zeros(1, np.float32))
    assert episode.success and episode.ever_success and episode.success_reported

    silent = ScriptedEnv([{}], ends=["terminated"])
    episode = step_episode(silent, 0, lambda obs: np.zeros(1, np.float32))
    assert not episode.success and not episode.success_reported
