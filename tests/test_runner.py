"""The evaluation runner: seeds, success, latency, video, eval.json, tables and Gymnasium ids."""

from __future__ import annotations

import json
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from toy_task import TOY_TASK, solvable_seeds

from robo_policies.envs import Task, get_task
from robo_policies.envs.diffdrive_nav import pass_side
from robo_policies.envs.gym_target import ObservationKeyError, make_gym_env_factory
from robo_policies.envs.runner import (
    EvalResult, PolicyLike, camera_views, evaluate, format_results_table, side_by_side,
)

# -- policies -----------------------------------------------------------------------------


class ExpertPolicy:
    """A Task's scripted expert as a PolicyLike; ``make_env`` gives it the env it acts in."""

    nfe = 0

    def __init__(self, task: Task, seed: int = 0) -> None:
        self.task = task
        self.rng = np.random.default_rng(seed)
        self.model_call_ms: list[float] = []
        self.env: gym.Env | None = None
        self.experts: list = []  # one per episode, to compare with what evaluate recorded

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        self.env = self.task.env(render_mode=render_mode)
        return self.env

    def reset(self) -> None:
        self.experts.append(self.task.make_expert(self.env, self.rng))  # after env.reset

    def act(self, obs):
        return self.experts[-1](obs)


class ScriptedLatencyPolicy:
    """Does nothing, but reports model calls taking 1, 2, 3, ... ms, one per step."""

    nfe = 7

    def __init__(self, action_dim: int, clear_on_reset: bool = False) -> None:
        self.action = np.zeros(action_dim, np.float32)
        self.clear_on_reset = clear_on_reset
        self.model_call_ms: list[float] = [1000.0]  # from before the evaluation: not counted
        self.calls = 0
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        if self.clear_on_reset:
            self.model_call_ms.clear()

    def act(self, obs):
        self.calls += 1
        self.model_call_ms.append(float(self.calls))
        return self.action


class SeekPolicy:
    """Steps toward the target at up to 1 per step; ``overshoot`` walks on past it instead.

    Reads ``obs["pos"]`` and ``obs["target"]``, or both from the array ``obs[flat_key]``.
    """

    nfe = 1

    def __init__(self, flat_key: str | None = None, overshoot: bool = False) -> None:
        self.flat_key, self.overshoot = flat_key, overshoot
        self.model_call_ms: list[float] = []

    def reset(self) -> None:
        pass

    def act(self, obs):
        if self.overshoot:  # 0.25 per step cannot jump the 0.5-wide success window
            return np.full(1, 0.25, np.float32)
        if self.flat_key:
            pos, target = obs[self.flat_key]
        else:
            pos, target = obs["pos"][0], obs["target"][0]
        return np.array([np.clip(target - pos, -1, 1)], np.float32)


# -- test envs registered under Gymnasium ids -------------------------------------------------


class FlatReachEnv(gym.Env):
    """A point at 0 must reach a target in [1, 3]; observation is the flat array (pos, target).

    Reports ``info["success"]`` (no ``is_success``) and never terminates, so success can be
    reached and lost again; renders odd-sized 25 x 33 frames.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-100, 100, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1, 1, shape=(1,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.target = 0.0, float(self.np_random.uniform(1, 3))
        return self._obs(), {"success": False}

    def step(self, action):
        self.pos += float(np.clip(action[0], -1, 1))
        success = abs(self.pos - self.target) < 0.25
        return self._obs(), float(success), False, False, {"success": success}

    def _obs(self):
        return np.array([self.pos, self.target], np.float32)

    def render(self):
        frame = np.zeros((25, 33, 3), np.uint8)
        frame[:, : int(np.clip(self.pos * 8, 0, 33))] = 255
        return frame


class DictReachEnv(FlatReachEnv):
    """FlatReach with a nested Dict observation and ``info["is_success"]``."""

    def __init__(self, render_mode=None):
        super().__init__(render_mode)
        box = spaces.Box(-100, 100, shape=(1,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {"state": spaces.Dict({"position": box, "velocity": box}), "target": box}
        )

    def reset(self, *, seed=None, options=None):
        _, info = super().reset(seed=seed)
        return self._dict_obs(0.0), {"is_success": info["success"]}

    def step(self, action):
        before = self.pos
        _, reward, terminated, truncated, info = super().step(action)
        return self._dict_obs(self.pos - before), reward, terminated, truncated, {
            "is_success": info["success"]
        }

    def _dict_obs(self, velocity):
        f32 = lambda x: np.array([x], np.float32)  # noqa: E731
        state = {"position": f32(self.pos), "velocity": f32(velocity)}
        return {"state": state, "target": f32(self.target)}


FLAT_ID, DICT_ID = "RoboTest/FlatReach-v0", "RoboTest/DictReach-v0"
for _id, _entry in ((FLAT_ID, FlatReachEnv), (DICT_ID, DictReachEnv)):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, max_episode_steps=20)


# -- evaluate on tasks ------------------------------------------------------------------------


def test_the_trained_policy_and_these_stand_ins_are_policy_like():
    from tiny_policies import make_policy

    assert isinstance(make_policy(), PolicyLike)
    assert isinstance(ExpertPolicy(TOY_TASK), PolicyLike)
    assert isinstance(ScriptedLatencyPolicy(1), PolicyLike)
    assert not isinstance(TOY_TASK, PolicyLike)  # no act(), no model_call_ms


def test_toy_task_success_matches_the_expert_and_seeds_are_consecutive():
    policy = ExpertPolicy(TOY_TASK)
    result = evaluate(policy, policy.make_env, episodes=20, seed=10, progress=False)
    seeds = list(range(10, 30))
    good = solvable_seeds(seeds)
    assert 0 < len(good) < 20  # the toy expert fails some seeds on purpose
    assert [r["seed"] for r in result.records] == seeds
    assert [r["seed"] for r in result.records if r["success"]] == good
    assert result.success_rate == pytest.approx(len(good) / 20)
    assert result.successes == len(good) and result.episodes == 20 and result.seed == 10
    # Failures run to the toy horizon; the expert makes no model calls to time.
    assert all(r["length"] == 8 for r in result.records if not r["success"])
    assert result.mean_episode_len == pytest.approx(np.mean([r["length"] for r in result.records]))
    assert result.mean_return == pytest.approx(len(good) / 20)  # reward 1 on the success step
    assert result.latency_ms_p50 is None and result.latency_ms_p95 is None and result.nfe == 0


def test_same_seed_gives_identical_records_and_another_seed_differs():
    def run(seed):
        policy = ExpertPolicy(get_task("diffdrive_nav"))
        return evaluate(policy, policy.make_env, episodes=3, seed=seed, progress=False).records

    first = run(100000)
    assert run(100000) == first
    assert [r["seed"] for r in first] == [100000, 100001, 100002]
    assert [r["length"] for r in run(100003)] != [r["length"] for r in first]


def test_diffdrive_expert_succeeds_and_callback_classifies_pass_side(tmp_path):
    policy = ExpertPolicy(get_task("diffdrive_nav"))
    seen = []

    def side(trajectory, info):
        seen.append({key: value.shape for key, value in trajectory.items()})
        base_xy = trajectory["base_pose"][:, :2]
        return {"pass_side": pass_side(base_xy, trajectory["obstacle"][0], trajectory["goal"][0]),
                "goal_distance": np.float64(info["goal_distance"])}

    result = evaluate(
        policy, policy.make_env, episodes=10, seed=100000, progress=False, episode_callback=side
    )
    assert result.success_rate == 1.0
    assert all(r["success"] and r["ever_success"] for r in result.records)
    assert [r["pass_side"] for r in result.records] == [e.side for e in policy.experts]
    assert {"left", "right"} <= {r["pass_side"] for r in result.records}
    # The trajectory holds the initial observation plus one per step.
    for shapes, record in zip(seen, result.records):
        assert shapes["base_pose"] == (record["length"] + 1, 4)
        assert set(shapes) == {"base_pose", "base_vel", "goal", "obstacle"}
    assert all(r["goal_distance"] < 0.15 for r in result.records)
    saved = json.loads(result.to_json(tmp_path / "eval.json").read_text())  # numpy values too
    assert saved["records"] == json.loads(json.dumps(result.records, default=float))


def test_callback_may_not_overwrite_record_keys():
    policy = ExpertPolicy(TOY_TASK)
    with pytest.raises(ValueError, match="reserved record keys.*success"):
        evaluate(policy, policy.make_env, episodes=1, seed=0, progress=False,
                 episode_callback=lambda traj, info: {"success": True})


def test_max_steps_cuts_episodes():
    policy = ScriptedLatencyPolicy(action_dim=1)
    result = evaluate(policy, TOY_TASK.env, episodes=3, seed=0, max_steps=3, progress=False)
    assert [r["length"] for r in result.records] == [3, 3, 3]
    assert result.success_rate == 0.0


# -- latency ------------------------------------------------------------------------------


@pytest.mark.parametrize("clear_on_reset", [False, True])
def test_latency_percentiles_come_from_the_calls_made_during_the_run(clear_on_reset):
    policy = ScriptedLatencyPolicy(action_dim=1, clear_on_reset=clear_on_reset)
    target = make_gym_env_factory(FLAT_ID, obs_map={"state": "."})
    # 5 episodes x 20 steps (the registered TimeLimit) -> calls timed 1, 2, ..., 100 ms.
    result = evaluate(policy, target.make_env, episodes=5, seed=0, progress=False,
                      obs_adapter=target.obs_adapter)
    assert policy.calls == 100 and policy.resets == 5
    assert [r["model_calls"] for r in result.records] == [20] * 5
    assert result.latency_ms_p50 == pytest.approx(50.5)
    assert result.latency_ms_p95 == pytest.approx(95.05)
    assert result.nfe == 7


# -- video ----------------------------------------------------------------------------------


def test_video_holds_the_first_episodes_only(tmp_path, read_video):
    task = get_task("diffdrive_nav")
    policy = ExpertPolicy(task)
    render_modes = []

    def make_env(render_mode=None):
        render_modes.append(render_mode)
        return policy.make_env(render_mode)

    video = tmp_path / "videos" / "eval.mp4"
    result = evaluate(policy, make_env, episodes=3, seed=5, video_path=video, video_episodes=2,
                      max_steps=12, progress=False)
    frames, meta = read_video(video)
    # Rule: each recorded episode gives length + 1 frames (after reset, then after each step).
    assert len(frames) == sum(r["length"] + 1 for r in result.records[:2]) == 26
    assert frames[0].shape == (240, 320, 3)
    assert meta["fps"] == pytest.approx(10)  # the env's metadata["render_fps"]
    assert render_modes == ["rgb_array", None]  # a render env only for the recorded episodes
    assert result.video_path == str(video)
    assert sorted(p.name for p in video.parent.iterdir()) == ["eval.mp4"]  # no temp file left


def test_video_pads_odd_frames_and_caps_episodes(tmp_path, read_video):
    target = make_gym_env_factory(FLAT_ID, obs_map={"state": "."}, kwargs={"max_episode_steps": 4})
    video = tmp_path / "flat.mp4"
    evaluate(ScriptedLatencyPolicy(1), target.make_env, episodes=1, seed=0, video_path=video,
             video_episodes=5, progress=False, obs_adapter=target.obs_adapter)
    frames, meta = read_video(video)
    assert len(frames) == 5 and frames[0].shape == (26, 34, 3)  # 25 x 33 padded to even
    assert meta["fps"] == pytest.approx(5)


def test_no_video_without_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    policy = ExpertPolicy(TOY_TASK)
    result = evaluate(policy, policy.make_env, episodes=2, seed=0, progress=False)
    assert result.video_path is None and list(tmp_path.iterdir()) == []


def test_video_needs_a_rendering_env(tmp_path):
    env = TOY_TASK.env()
    with pytest.raises(ValueError, match="rgb_array"):
        evaluate(ExpertPolicy(TOY_TASK), env, episodes=1, seed=0, video_path=tmp_path / "v.mp4",
                 progress=False)


def test_side_by_side_scales_each_view_to_the_scene_height():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    square, wide = rng.integers(0, 256, (84, 84, 3), np.uint8), rng.integers(0, 256, (60, 90, 1), np.uint8)
    frame = side_by_side(scene, [square, wide])
    assert frame.shape == (240, 320 + 240 + 360, 3)  # 84 x 84 -> 240 x 240, 60 x 90 -> 240 x 360
    np.testing.assert_array_equal(frame[:, :320], scene)
    # Nearest pixel: output row r, column c shows view pixel (r * h // H, c * w // W).
    assert (frame[0, 320] == square[0, 0]).all() and (frame[239, 559] == square[83, 83]).all()
    assert (frame[120, 320 + 120] == square[120 * 84 // 240, 120 * 84 // 240]).all()
    assert (frame[239, -1] == wide[59, 89, 0]).all()  # a grey view shows in all three channels
    assert side_by_side(scene, []) is scene


def test_camera_views_are_the_images_the_policy_reads_in_key_order():
    images = {key: np.full((84, 84, 3), value, np.uint8) for key, value in (("wrist_image", 2), ("front_image", 1))}
    obs = {"joint_pos": np.zeros(6, np.float32), "depth": np.zeros((84, 84, 1), np.float32), **images}
    assert [view[0, 0, 0] for view in camera_views(obs)] == [1, 2]  # uint8 (H, W, C) only, sorted
    assert [view[0, 0, 0] for view in camera_views(obs, {"joint_pos", "wrist_image"})] == [2]
    assert camera_views(obs, {"joint_pos"}) == []


class ReadsKeysPolicy:
    """Holds still; reads ``obs_shapes`` when given (else, like ExpertPolicy, says nothing)."""

    nfe = 0

    def __init__(self, keys: list[str] | None) -> None:
        if keys is not None:
            self.obs_shapes = dict.fromkeys(keys, ())
        self.model_call_ms: list[float] = []

    def reset(self) -> None:
        pass

    def act(self, obs):
        return np.zeros(6, np.float32)


@pytest.mark.parametrize("keys, width", [
    (["joint_pos"], 320),  # a state policy: the scene alone, as before cameras
    (["joint_pos", "wrist_image"], 320 + 240),  # the camera it reads, 84 px scaled to 240
    (None, 320 + 2 * 240),  # a policy that does not say: every camera of the observation
])
def test_video_shows_the_policys_cameras_beside_the_scene(tmp_path, read_video, keys, width):
    make_env = partial(get_task("arm_pick_place").env, obs_mode="both")
    video = tmp_path / "v.mp4"
    evaluate(ReadsKeysPolicy(keys), make_env, episodes=1, seed=3, video_path=video, max_steps=2,
             progress=False)
    frames, _ = read_video(video)
    assert frames.shape == (3, 240, width, 3)
    if keys and "wrist_image" in keys:  # the panel is the wrist camera after reset (H.264 is lossy)
        env = make_env()
        wrist = env.reset(seed=3)[0]["wrist_image"]
        env.close()
        expected = side_by_side(np.zeros((240, 0, 3), np.uint8), [wrist])
        assert np.abs(frames[0, :, 320:].astype(int) - expected).mean() < 6


# -- results files and tables -------------------------------------------------------------------


def test_eval_json_has_the_summary_and_records(tmp_path):
    policy = ScriptedLatencyPolicy(action_dim=1)
    target = make_gym_env_factory(FLAT_ID, obs_map={"state": "."}, kwargs={"max_episode_steps": 10})
    result = evaluate(policy, target.make_env, episodes=10, seed=123, progress=False,
                      obs_adapter=target.obs_adapter)
    path = result.to_json(tmp_path / "run" / "eval.json")
    data = json.loads(path.read_text())
    assert data["success_rate"] == 0.0 and data["episodes"] == 10 and data["seed"] == 123
    assert data["mean_episode_len"] == 10.0 and data["nfe"] == 7
    assert data["latency_ms_p50"] == pytest.approx(50.5)
    assert data["latency_ms_p95"] == pytest.approx(95.05)
    # Episode k's calls take 10k+1 .. 10k+10 ms over 10 steps: 10k + 5.5 ms per action.
    assert data["records"][0]["model_ms"] == 55.0
    assert data["ms_per_action_p50"] == pytest.approx(50.5)
    assert [r["seed"] for r in data["records"]] == list(range(123, 133))
    assert set(data["records"][0]) == {"seed", "success", "ever_success", "length", "return",
                                       "model_calls", "model_ms"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["eval.json"]


class ChunkPolicy:
    """Calls its "model" (8 ms, as reported) every 4th step, like a policy executing 4 actions."""

    nfe = 1

    def __init__(self) -> None:
        self.model_call_ms: list[float] = []
        self.step = 0

    def reset(self) -> None:
        self.step = 0

    def act(self, obs):
        if self.step % 4 == 0:
            self.model_call_ms.append(8.0)
        self.step += 1
        return np.zeros(1, np.float32)


def test_time_per_action_shares_each_call_among_the_actions_it_served():
    target = make_gym_env_factory(FLAT_ID, obs_map={"state": "."}, kwargs={"max_episode_steps": 10})
    result = evaluate(ChunkPolicy(), target.make_env, episodes=3, seed=0, progress=False,
                      obs_adapter=target.obs_adapter)
    # Calls at steps 0, 4, 8 of 10: 8 actions at 8/4 = 2 ms, then 2 at 8/2 = 4 ms.
    assert result.ms_per_action_p50 == 2.0
    assert result.ms_per_action_mean == pytest.approx(24 / 10)
    assert result.latency_ms_p50 == 8.0


def test_results_table_has_a_row_per_name():
    def result(rate, episodes, p50):
        records = [{"success": i < rate * episodes} for i in range(episodes)]
        return EvalResult(rate, episodes, 101.25, 0.5, p50, p50 and 2 * p50, 16, 100000, records,
                          ms_per_action_p50=p50 and p50 / 8)

    table = format_results_table([("diffdrive_nav", result(0.9, 10, 12.345)),
                                  ("arm_pick_place", result(0.25, 4, None))])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("name")
    assert lines[2].startswith("diffdrive_nav") and "90.0% (9/10)" in lines[2]
    assert "12.3" in lines[2] and "24.7" in lines[2] and "101.2" in lines[2] and " 1.54 " in lines[2]
    assert lines[3].startswith("arm_pick_place") and "25.0% (1/4)" in lines[3]
    assert len({len(line) for line in lines[:3]}) == 1  # columns line up
    assert result(1.0, 2, None).format_table("toy").splitlines()[2].startswith("toy")


# -- Gymnasium ids -------------------------------------------------------------------------------


def test_gym_flat_env_reads_success_and_honours_time_limit():
    target = make_gym_env_factory(FLAT_ID, obs_map={"state": "."})
    assert target.max_episode_steps == 20
    make_env, obs_adapter = target  # unpacks as (factory, adapter)
    result = evaluate(SeekPolicy(flat_key="state"), make_env, episodes=4, seed=0, progress=False,
                      obs_adapter=obs_adapter)
    assert result.success_rate == 1.0
    assert [r["length"] for r in result.records] == [20] * 4  # never terminates: the TimeLimit

    # Success is the last step's: running past the target reaches it, then loses it.
    overshoot = evaluate(SeekPolicy(overshoot=True), make_env, episodes=4, seed=0, progress=False,
                         obs_adapter=obs_adapter)
    assert overshoot.success_rate == 0.0
    assert all(r["ever_success"] for r in overshoot.records)


def test_gym_flat_env_defaults_to_the_single_policy_key():
    adapter = make_gym_env_factory(FLAT_ID, keys=["obs"]).obs_adapter
    np.testing.assert_array_equal(adapter(np.array([1.0, 2.0]))["obs"], [1.0, 2.0])
    with pytest.raises(ObservationKeyError, match=r"exactly one policy key to '\.'"):
        make_gym_env_factory(FLAT_ID, obs_map={"a": ".", "b": "."}).obs_adapter(np.zeros(2))
    with pytest.raises(ObservationKeyError, match=r"obs_map=\{'<policy key>': '\.'\}.*a, b"):
        make_gym_env_factory(FLAT_ID, keys=["a", "b"]).obs_adapter(np.zeros(2))


def test_gym_unknown_id_names_it():
    with pytest.raises(ValueError, match="RoboTest/Nope-v0"):
        make_gym_env_factory("RoboTest/Nope-v0")
    with pytest.raises(ValueError, match="RoboTest/Nope-v0' after importing 'json'"):
        make_gym_env_factory("RoboTest/Nope-v0", import_module="json")
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        make_gym_env_factory(FLAT_ID, import_module="no_such_module_xyz")
    assert make_gym_env_factory("RoboTest/FlatReach").spec.id == FLAT_ID  # latest version


def test_gym_dict_env_maps_nested_keys():
    target = make_gym_env_factory(DICT_ID, obs_map={"pos": "state.position"},
                                  keys=["pos", "target"])
    result = evaluate(SeekPolicy(), target.make_env, episodes=3, seed=0, progress=False,
                      obs_adapter=target.obs_adapter)
    assert result.success_rate == 1.0  # read from info["is_success"]

    env = target.make_env()
    obs, _ = env.reset(seed=3)
    adapted = target.obs_adapter(obs)
    assert set(adapted) == {"pos", "target"}
    np.testing.assert_array_equal(adapted["pos"], obs["state"]["position"])
    np.testing.assert_array_equal(adapted["target"], obs["target"])
    # Without the policy's keys: every top-level array plus the mapped keys.
    loose = make_gym_env_factory(DICT_ID, obs_map={"pos": "state.position"}).obs_adapter(obs)
    assert set(loose) == {"pos", "target"}
    env.close()


def test_gym_dict_env_missing_keys_are_named():
    obs = DictReachEnv().reset(seed=0)[0]
    available = "available: state.position, state.velocity, target"
    bad_map = make_gym_env_factory(DICT_ID, obs_map={"pos": "state.speed"}, keys=["pos"])
    mapped = r"'pos' \(mapped to env key 'state.speed'\) is missing"
    with pytest.raises(ObservationKeyError, match=f"{mapped}.*{available}"):
        bad_map.obs_adapter(obs)
    unmapped = make_gym_env_factory(DICT_ID, keys=["target", "goal"])
    with pytest.raises(ObservationKeyError, match=f"'goal' is missing.*{available}"):
        unmapped.obs_adapter(obs)
    nested = make_gym_env_factory(DICT_ID, keys=["state"])
    with pytest.raises(ObservationKeyError, match="'state' is a nested dict"):
        nested.obs_adapter(obs)
    with pytest.raises(TypeError, match="obs_adapter"):  # a flat env without an adapter
        evaluate(SeekPolicy(), make_gym_env_factory(FLAT_ID).make_env, episodes=1, seed=0,
                 progress=False)


# -- vectorised evaluation (num_envs) -------------------------------------------------------------


def outcomes(result):
    return [(r["seed"], r["success"], r["length"], r["return"], r["model_calls"]) for r in result.records]


@pytest.mark.parametrize("sampler", ["full", "rti"])
@pytest.mark.parametrize("head", ["diffusion", "energy"])
def test_num_envs_gives_the_serial_records(head, sampler):
    from tiny_policies import make_policy
    from robo_policies.sampling.warmstart import WarmStart, WarmStartConfig

    def run(num_envs):
        policy = make_policy(head, shapes={"pos": (1,)}, action_dim=1, n_action_steps=2)
        if sampler == "rti":  # the previous chunk is kept per episode
            policy.warm_start = WarmStart(WarmStartConfig(steps=2))
        return evaluate(policy, TOY_TASK.env, episodes=7, seed=3, progress=False, num_envs=num_envs)

    serial = run(1)
    assert len({r["length"] for r in serial.records}) > 1  # episodes end at different steps
    for num_envs in (2, 3):
        vector = run(num_envs)
        assert outcomes(vector) == outcomes(serial)
        assert vector.success_rate == serial.success_rate and vector.mean_return == serial.mean_return


def test_an_episode_draws_the_same_noise_alone_and_in_a_batch():
    from tiny_policies import make_policy

    policy = make_policy("diffusion", n_action_steps=1)
    frames = [{"pos": np.full(3, 0.1 * i, np.float32), "goal": np.zeros(2, np.float32)} for i in range(3)]
    alone = [policy.new_episode(seed) for seed in (5, 6)]
    together = [policy.new_episode(seed) for seed in (5, 6)]
    for obs in frames:
        expected = [policy.act_batch([episode], [obs])[0] for episode in alone]
        np.testing.assert_allclose(policy.act_batch(together, [obs, obs]), expected, atol=1e-5)
    assert [len(e.calls) for e in together] == [3, 3] and together[0].calls[0].episodes == 2


def test_num_envs_keeps_the_video_and_the_callback_in_episode_order(tmp_path, read_video):
    from tiny_policies import make_policy

    target = make_gym_env_factory(FLAT_ID, obs_map={"state": "."}, kwargs={"max_episode_steps": 6})
    runs = {}
    for num_envs in (1, 2):
        video = tmp_path / f"{num_envs}.mp4"
        result = evaluate(make_policy("flow", shapes={"state": (2,)}, action_dim=1), target.make_env,
                          episodes=5, seed=0, progress=False, obs_adapter=target.obs_adapter,
                          video_path=video, video_episodes=3, num_envs=num_envs,
                          episode_callback=lambda traj, info: {"last_pos": float(traj["state"][-1, 0])})
        runs[num_envs] = result, read_video(video)[0]
    (serial, frames), (vector, vector_frames) = runs[1], runs[2]
    assert vector.records[0].keys() == serial.records[0].keys()
    assert [r["last_pos"] for r in vector.records] == pytest.approx([r["last_pos"] for r in serial.records])
    assert len(vector_frames) == len(frames) == 3 * 7
    np.testing.assert_array_equal(vector_frames, frames)


def test_num_envs_needs_a_batch_policy_and_an_env_factory():
    with pytest.raises(TypeError, match="num_envs=2 needs a policy that acts in several episodes"):
        evaluate(ExpertPolicy(TOY_TASK), TOY_TASK.env, episodes=2, seed=0, progress=False, num_envs=2)
    from tiny_policies import make_policy

    with pytest.raises(ValueError, match="num_envs=2 needs an env factory"):
        evaluate(make_policy(shapes={"pos": (1,)}, action_dim=1), TOY_TASK.env(), episodes=2, seed=0,
                 progress=False, num_envs=2)
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        evaluate(ExpertPolicy(TOY_TASK), TOY_TASK.env, episodes=2, seed=0, progress=False, num_envs=0)


def test_a_policy_without_per_row_noise_is_called_one_episode_at_a_time():
    from tiny_policies import make_policy

    def run(num_envs):
        policy = make_policy("flow", shapes={"pos": (1,)}, action_dim=1, n_action_steps=2)
        policy.noise_per_row = False  # as a fine-tuned agent, whose candidates share one generator
        episodes = []  # every episode's acting state, to read its calls

        def new_episode(seed, make=policy.new_episode):
            episodes.append(make(seed))
            return episodes[-1]

        policy.new_episode = new_episode
        result = evaluate(policy, TOY_TASK.env, episodes=4, seed=3, progress=False, num_envs=num_envs)
        return result, episodes

    (serial, _), (vector, episodes) = run(1), run(2)
    assert outcomes(vector) == outcomes(serial)
    assert {call.episodes for episode in episodes for call in episode.calls} == {1}
