"""Online fine-tuning end to end: every method fine-tunes and its checkpoint evaluates, every
head fine-tunes with a falling critic loss, policies with cameras fine-tune from pixels (the
critic on frozen encoder features), the TD target backs up the on-the-fly argmax, chunk
transitions, per-algorithm configs and presets, saved agents (also in the old flat format),
resume after SIGKILL."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from robo_policies.checkpoints import load_saved, saved_metadata
from robo_policies.cli.main import main
from robo_policies.commands.config import compose_config
from robo_policies.commands.evaluate import make_warm_start
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.rl.chunks import ChunkView
from robo_policies.rl.expo import ExpoConfig
from robo_policies.rl.finetune import finetune
from robo_policies.rl.parl import ParlConfig
from robo_policies.rl.registry import build_agent, get_algorithm
from robo_policies.rl.rlpd import RlpdConfig
from robo_policies.rl.saved import DESCRIPTION, FinetunedPolicy, load_agent
from robo_policies.utils.checksums import write_checksum
from robo_policies.utils.errors import CheckpointError, ConfigError, UnknownNameError
from tiny_policies import A, make_policy, observations

TINY_TRAIN = ["policy.net=mlp", "policy.hidden_dim=32", "policy.n_blocks=1", "policy.time_dim=16",
              "policy.horizon=8", "policy.n_action_steps=4", "train.batch_size=32", "train.threads=1",
              "progress=false"]
TINY_RL = ["rl.batch_size=32", "rl.critic_members=4", "rl.critic_hidden=[32,32]", "rl.inference_steps=2",
           "rl.critic_lr=1e-3", "rl.start_steps=200", "episodes=2", "video_episodes=0", "progress=false"]
TINY_METHOD = {"expo": ["rl.actor_hidden=[32]"], "parl": ["rl.offline_critic_steps=0"],
               "rlpd": ["rl.actor_hidden=[32]"], "imitation": []}
"""Each method's own settings made tiny (PA-RL's offline phase off)."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny policies trained briefly on 6 diffdrive_nav demos: ``trained(head)`` trains the
    head's on first use and returns its run directory."""
    root = tmp_path_factory.mktemp("finetune")
    dataset = root / "nav.zarr"
    collect(get_task("diffdrive_nav"), dataset, episodes=6, seed=0, progress=False)
    runs = {}

    def run(head):
        if head not in runs:
            assert main(["train", f"dataset={dataset}", f"out={root / head}", "train.steps=40",
                         f"policy={head}", *TINY_TRAIN]) == 0
            runs[head] = root / head
        return runs[head]

    return run


IMAGE_TASK = ["task=arm_pick_place_image", "+task.env_kwargs.image_size=16"]
"""The arm as its real robot sees it (joints, a front and a wrist camera), at 16x16 pixels,
named (the recorded env settings of ``image_policy`` say the same)."""


@pytest.fixture(scope="module")
def image_policy(tmp_path_factory):
    """A tiny policy with two 16x16 cameras, trained briefly on 3 arm_pick_place_image demos."""
    root = tmp_path_factory.mktemp("finetune_image")
    collect(get_task("arm_pick_place_image"), root / "arm.zarr", episodes=3, seed=0, progress=False,
            env_kwargs={"image_size": 16})
    assert main(["train", f"dataset={root / 'arm.zarr'}", f"out={root / 'policy'}", "train.steps=20",
                 "policy=diffusion", *TINY_TRAIN, "policy.image_feature_dim=8", "policy.samples_per_obs=1",
                 "train.loader_workers=0"]) == 0
    return root / "policy"


def finetune_args(checkpoint, out, algo, env_steps, *extra):
    return ["finetune", f"checkpoint={checkpoint}", f"algo={algo}", f"env_steps={env_steps}",
            f"out={out}", f"eval_every={env_steps}", *TINY_RL, *TINY_METHOD[algo], *extra]


@pytest.mark.parametrize("algo,setting,value", [
    ("expo", "n_edit", 3), ("parl", "top_k", 3), ("rlpd", "actor_lr", 0.001), ("imitation", "policy_lr", 0.001)])
def test_each_method_fine_tunes_and_robo_eval_acts_with_it(tmp_path, trained, algo, setting, value):
    """A few short episodes (60 steps) past the warm-up, then ``robo eval`` of the checkpoint."""
    out = tmp_path / "run"
    assert main(finetune_args(trained("diffusion"), out, algo, 100, "max_steps=60", "rl.start_steps=40",
                              f"rl.{setting}={value}")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["algo"], summary["env_steps"], summary["episodes"]) == (algo, 120, 2)
    assert summary["gradient_updates"] > 0
    assert [point["env_steps"] for point in json.loads((out / "curve.json").read_text())] == [0, 120]
    description = yaml.safe_load((out / "checkpoint" / DESCRIPTION).read_text())
    assert description["algo"] == algo and description["config"][setting] == value
    assert set(description["config"]) == {item.name for item in dataclasses.fields(get_algorithm(algo).config)}
    policy = load_saved(out / "checkpoint")
    assert isinstance(policy, FinetunedPolicy) and policy.agent.config == get_algorithm(algo).config(
        **description["config"])
    assert main(["eval", f"checkpoint={out}", "episodes=1", "max_steps=30", "video_episodes=0",
                 "progress=false"]) == 0
    assert json.loads((out / "eval.json").read_text())["episodes"] == 1


@pytest.mark.parametrize("algo", ["expo", "parl"])
def test_a_policy_with_cameras_fine_tunes_from_pixels_and_robo_eval_acts_with_it(tmp_path, image_policy, algo):
    """Three 30-step episodes on the arm's cameras, at the image size its demonstrations were
    collected with (recorded with the policy): the critic, on the frozen encoder's features,
    learns; the replay keeps each camera frame once, as uint8; ``robo eval`` acts."""
    out = tmp_path / "run"
    assert main(finetune_args(image_policy, out, algo, 90, "max_steps=30", "rl.start_steps=30")) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [row["critic_loss"] for row in rows if "critic_loss" in row]  # one per episode
    assert len(losses) == 3 and losses[-1] < 0.7 * losses[0]
    with np.load(out / "checkpoint" / "replay.npz") as replay:
        frames = {key: replay[key] for key in replay.files if "/frames." in key}
        assert not [key for key in replay.files if replay[key].ndim > 3 and key not in frames]  # no windows
        assert sorted(frames) == [f"{name}/frames.{camera}" for name in ("offline", "online")
                                  for camera in ("front_image", "wrist_image")]
        assert all(value.dtype == np.uint8 and value.shape[1:] == (16, 16, 3) for value in frames.values())
        # a demonstration decides at every step and shows each frame in 2 To windows, stored once
        assert len(frames["offline/frames.front_image"]) == len(replay["offline/reward"])
        assert len(frames["online/frames.front_image"]) < 2 * 2 * len(replay["online/reward"])
    policy = load_saved(out / "checkpoint")
    assert isinstance(policy, FinetunedPolicy) and policy.agent.view.image_keys == ["front_image", "wrist_image"]
    assert main(["eval", f"checkpoint={out}", "episodes=1", "max_steps=8", "video_episodes=0", "progress=false"]) == 0
    assert json.loads((out / "eval.json").read_text())["episodes"] == 1


def test_an_env_without_the_policys_cameras_is_refused_before_any_work(tmp_path, image_policy, robo):
    run = robo(*finetune_args(image_policy, tmp_path / "x", "expo", 30, "task=arm_pick_place"))
    assert run.code == 2 and "['front_image', 'wrist_image'] are camera images" in run.err
    assert not (tmp_path / "x").exists()


def test_a_head_without_solver_steps_fine_tunes_and_keeps_its_settings(tmp_path, trained):
    # rl.inference_steps applies only to heads that have solver steps; mlp_bc has none.
    out = tmp_path / "run"
    assert main(finetune_args(trained("mlp_bc"), out, "imitation", 60, "max_steps=60")) == 0
    policy = load_saved(out / "checkpoint")
    config = policy.agent.policy.config
    assert config.head.name == "mlp_bc" and "inference_steps" not in config.setting_names()


@pytest.mark.slow
@pytest.mark.parametrize("head,algo", [("diffusion", "expo"), ("flow", "parl"), ("energy", "expo"),
                                       ("diffusion", "parl")])
def test_every_head_fine_tunes_and_the_critic_loss_falls(tmp_path, trained, head, algo):
    out = tmp_path / "run"
    assert main(finetune_args(trained(head), out, algo, 800, "seed=1")) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [row["critic_loss"] for row in rows if "critic_loss" in row]  # one per episode
    assert len(losses) >= 4 and losses[-1] < 0.6 * losses[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] >= 800 and summary["gradient_updates"] > 0
    assert summary["env_steps_per_s"] > 0 and summary["updates_per_s"] > 0
    curve = json.loads((out / "curve.json").read_text())
    assert [point["env_steps"] for point in curve][0] == 0 and curve[-1]["env_steps"] >= 800
    assert (out / "curve.png").stat().st_size > 1000
    # robo eval loads the checkpoint and acts through the method's own selection.
    policy = load_saved(out / "checkpoint")
    assert isinstance(policy, FinetunedPolicy) and policy.agent.policy.config.head.name == head
    assert main(["eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", "progress=false"]) == 0
    assert json.loads((out / "eval.json").read_text())["episodes"] == 1
    with pytest.raises(ValueError, match="sampler=rti does not apply"):
        make_warm_start(compose_config("eval", ["sampler=rti"]), None, policy, str(out))


def test_each_algorithm_takes_its_own_settings_and_presets():
    import robo_policies.rl.finetune  # noqa: F401  (registers the algo=<name> options)

    cfg = compose_config("finetune", ["algo=parl", "rl=parl_paper", "rl.top_k=4"])
    assert (cfg.algo, cfg.out, cfg.rl.top_k, cfg.rl.offline_critic_steps, cfg.rl.n_samples) == (
        "parl", "outputs/finetune/parl", 4, 1000000, 32)
    assert compose_config("finetune", ["rl=expo_paper"]).rl.n_edit == 8
    assert compose_config("finetune", ["algo=rlpd", "rl=rlpd_paper"]).rl.utd == 20
    # the method's own default Cal-QL phase: PA-RL's 5000 steps, EXPO none, RLPD has no such setting
    assert compose_config("finetune", ["algo=parl"]).rl.offline_critic_steps == 5000
    assert compose_config("finetune", []).rl.offline_critic_steps == 0
    for overrides, message in ((["algo=parl", "rl.topk=3"], "rl.topk"),
                               (["algo=rlpd", "rl.offline_critic_steps=5"], "rl.offline_critic_steps"),
                               (["rl=parl_paper"], "Key 'top_k' not in 'ExpoConfig'"),
                               (["algo=ppo"], "Could not find 'algo/ppo'")):
        with pytest.raises(Exception, match=message):
            compose_config("finetune", overrides)
    with pytest.raises(ConfigError, match=r"rl.topk: not a setting of algo=parl \(its settings: gamma, "):
        get_algorithm("parl").make_config({"topk": 3})


def test_settings_of_another_method_or_out_of_range_stop_robo_finetune(tmp_path, trained, robo):
    base = ["finetune", f"checkpoint={trained('diffusion')}", f"out={tmp_path / 'x'}"]
    for settings, message in ((["algo=expo", "+rl.top_k=3"], "rl.top_k: not a setting of algo=expo"),
                              (["algo=parl", "rl.top_k=9"], "rl.top_k must be in [1, rl.n_samples=8], got 9"),
                              (["algo=expo", "rl.imitation_data=all"],
                               "rl.imitation_data must be offline or mixed, got 'all'")):
        run = robo(*base, *settings)
        assert run.code == 2 and message in run.err
    assert not (tmp_path / "x").exists()


def test_a_checkpoint_saved_with_the_old_flat_config_still_loads(tmp_path, trained):
    out = tmp_path / "run"
    assert main(finetune_args(trained("diffusion"), out, "expo", 20, "max_steps=20")) == 0
    path = out / "checkpoint" / DESCRIPTION
    description = yaml.safe_load(path.read_text())
    saved = ExpoConfig(**description["config"])
    # before each method had its own config, every method's settings were saved under rl:
    flat = {**description.pop("config"), "offline_critic_steps": None, "top_k": 2, "refine_steps": 3,
            "label_temperature": 0.05, "distill_argmax": False}
    path.write_text(yaml.safe_dump({**description, "rl": flat}, sort_keys=False))
    algo, agent = load_agent(out / "checkpoint")
    assert algo == "expo" and agent.config == saved and agent.offline_critic_steps == 0
    # the present format holds only the method's own settings
    path.write_text(yaml.safe_dump({**description, "config": flat}))
    with pytest.raises(CheckpointError, match=r"invalid fine-tuning description \(rl.distill_argmax, "
                                              r"rl.label_temperature, .*not a setting of algo=expo"):
        load_agent(out / "checkpoint")
    path.write_text(yaml.safe_dump({**description, "algo": "ppo", "config": {}}))
    with pytest.raises(CheckpointError, match="unknown algo 'ppo'; known algorithms: expo, imitation"):
        load_agent(out / "checkpoint")


class PreferredChunkCritic(torch.nn.Module):
    """Q(s, a) = -|a - 0.5| summed: the best chunk is all 0.5 (every member agrees)."""

    members = 4

    def forward(self, obs, action, members=None):
        q = -(action - 0.5).abs().sum(dim=-1)
        return q.expand(self.members if members is None else len(members), -1)

    def subset_min(self, obs, action, size, generator=None):
        return self(obs, action)[:size].min(dim=0).values


def test_expo_backs_up_the_on_the_fly_argmax_over_samples_and_edits():
    policy = make_policy()
    agent = build_agent("expo", policy, ExpoConfig(n_samples=3, n_edit=1, edit_scale=0.3, critic_members=4,
                                                   critic_hidden=[8], actor_hidden=[8]))
    view = agent.view
    chunks = torch.tensor([0.0, 0.3, -0.8])  # sample i: every action entry = chunks[i]
    windows = chunks.view(3, 1, 1, 1).expand(3, 2, view.horizon, A).clone()  # N=3, B=2
    view.sample_windows = lambda obs, n, generator: windows[:n]
    agent.target_critic = PreferredChunkCritic()
    # The edit policy moves every entry by +beta = 0.3: only sample 0 is edited, 0.0 -> 0.3.
    gaussian = agent.edit_policy.gaussian
    for layer in (gaussian.mean, gaussian.log_std):
        torch.nn.init.zeros_(layer.weight)
    torch.nn.init.constant_(gaussian.mean.bias, 20.0)
    torch.nn.init.constant_(gaussian.log_std.bias, -5.0)
    obs = observations(batch=2)
    rows = {f"next_obs.{key}": value for key, value in obs.items()}
    batch = {"next_obs": view.features(obs)}
    chosen = agent.next_action(rows, batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(chosen, torch.full((2, view.action_dim), 0.3), atol=1e-4, rtol=0)
    # Samples cached with the transition (B, N, D) are used instead of sampling again.
    cached = {**rows, "next_samples": view.executed(windows).transpose(0, 1)}
    view.sample_windows = None
    chosen = agent.next_action(cached, batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(chosen, torch.full((2, view.action_dim), 0.3), atol=1e-4, rtol=0)
    # Without the edit, the best base sample (0.3) wins as well; with the critic preferring
    # -0.8, the third sample is chosen: the target follows the critic, not the sample order.
    agent.target_critic = type("Neg", (PreferredChunkCritic,), {
        "forward": lambda self, o, a, m=None: (-(a + 0.8).abs().sum(-1)).expand(4, -1)})()
    chosen = agent.next_action(cached, batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(chosen, torch.full((2, view.action_dim), -0.8))


def test_actions_of_every_method_stay_in_bounds():
    policy = make_policy()
    obs = observations(batch=5)
    own = {"expo": {"n_edit": 3, "edit_scale": 1.0, "actor_hidden": [8]}, "parl": {"top_k": 2},
           "rlpd": {"actor_hidden": [8]}, "imitation": {}}
    for algo, settings in own.items():
        config = get_algorithm(algo).make_config({"n_samples": 3, "critic_members": 2, "critic_hidden": [8],
                                                  **settings})
        agent = build_agent(algo, policy, config)
        for warming_up in (False, True):  # the method's choice, then its warm-up actions
            agent.warming_up = warming_up
            windows = agent.act(obs, torch.Generator().manual_seed(0))
            assert windows.shape == (5, policy.config.horizon, A)
            assert agent.view.executed(windows).abs().max() <= 1.0, algo


def test_the_critic_sees_the_cameras_through_a_frozen_copy_of_the_policys_encoder():
    """A critic update moves no weight of the policy; the policy's updates do not move the
    critic's features; the copy and the acting policy stay in evaluation mode (the centre crop,
    no random draws) while the agent trains; the copy is saved with the agent."""
    policy = make_policy(shapes={"pos": (3,), "camera": (16, 16, 3)})
    agent = build_agent("expo", policy, ExpoConfig(n_samples=2, n_edit=1, critic_members=2, critic_hidden=[8],
                                                   actor_hidden=[8]))
    view = agent.view
    g = torch.Generator().manual_seed(0)
    obs = {"pos": torch.randn(4, 2, 3, generator=g),
           "camera": torch.randint(0, 256, (4, 2, 16, 16, 3), generator=g, dtype=torch.uint8)}
    agent.train()
    assert agent.policy.training and not agent.acting_policy.training and not agent.critic_encoder.training
    features = view.features(obs)
    assert features.shape == (4, view.obs_dim) and view.obs_dim == policy.encoder.out_dim
    torch.testing.assert_close(view.features(obs), features)
    rows = {**{f"{prefix}.{key}": value for prefix in ("obs", "next_obs") for key, value in obs.items()},
            "features": features, "next_features": features, "chunk": torch.zeros(4, 4, A),
            "reward": torch.ones(4), "discount": torch.full((4,), 0.9), "terminated": torch.zeros(4)}
    weights = {name: value.clone() for name, value in agent.state_dict().items() if not name.startswith("critic.")}
    agent.update_critic(rows, view.critic_batch(rows), g)
    changed = [name for name, value in agent.state_dict().items() if name in weights
               and not name.startswith("target_critic.") and not torch.equal(value, weights[name])]
    assert changed == []
    with torch.no_grad():  # the policy's own updates train its encoder (and the acting average's)
        for parameter in [*agent.policy.encoder.parameters(), *agent.acting_policy.encoder.parameters()]:
            parameter.add_(0.1)
    torch.testing.assert_close(view.features(obs), features)
    assert any(name.startswith("critic_encoder.") for name in agent.state_dict())


def test_parl_distils_from_the_windows_cached_with_the_transition():
    policy = make_policy(n_obs_steps=2, horizon=8, n_action_steps=4)
    agent = build_agent("parl", policy, ParlConfig(n_samples=3, top_k=2, distill_argmax=True, refine_steps=1,
                                                   refine_step_size=0.01, critic_members=2, critic_hidden=[8]))
    agent.critic = PreferredChunkCritic()  # the label is the cached window closest to 0.5
    view = agent.view
    windows = torch.stack([torch.full((2, 8, A), value) for value in (-0.5, 0.4, 0.9)])  # (N, B, Tp, A)
    obs = observations(steps=2, batch=2)
    rows = {f"obs.{key}": value for key, value in obs.items()}
    rows.update(samples=windows.flatten(2).transpose(0, 1), window=torch.zeros(2, 8, A),
                window_is_pad=torch.zeros(2, 8))
    torch.testing.assert_close(agent.samples(rows, torch.Generator()), windows)
    view.sample_windows = None  # drawing samples now would fail: the cached ones are used
    labels = []
    agent.policy.compute_loss = lambda batch: labels.append(batch["action"]) or torch.zeros((), requires_grad=True)
    agent.update_actor(rows, {"obs": view.features(obs)}, torch.Generator().manual_seed(0))
    # the best cached window (0.4) beats the dataset window that replaced the worst of the top
    # 2, both refined one step towards 0.5 (step 0.01 x gradient 1)
    expected = policy.normalizer.unnormalize("action", torch.full((2, 8, A), 0.4))
    expected[:, 1:5] = policy.normalizer.unnormalize("action", torch.full((2, 8, A), 0.41))[:, 1:5]
    torch.testing.assert_close(labels[0], expected)


def test_chunk_transitions_sum_rewards_and_stop_the_bootstrap_only_at_termination():
    view = ChunkView(make_policy(n_obs_steps=2, horizon=8, n_action_steps=4))
    steps = 10
    obs = {"pos": np.arange(steps + 1, dtype=np.float32)[:, None].repeat(3, 1),
           "goal": np.zeros((steps + 1, 2), np.float32)}
    actions = np.arange(steps, dtype=np.float32)[:, None].repeat(A, 1)
    rewards = np.zeros(steps)
    rewards[-1] = 1.0
    out = view.episode_transitions(obs, actions, rewards, True, np.array([0, 4, 8]), gamma=0.5)
    assert out["obs.pos"][:, :, 0].tolist() == [[0, 0], [3, 4], [7, 8]]  # first frame repeated
    assert out["next_obs.pos"][:, :, 0].tolist() == [[3, 4], [7, 8], [9, 10]]
    assert out["chunk"][:, :, 0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 9, 9]]
    assert out["window"][1, :, 0].tolist() == [3, 4, 5, 6, 7, 8, 9, 9]
    assert out["window_is_pad"][1].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    # The last chunk ran 2 steps (8, 9) and hit the success reward on its second: 0.5^1.
    assert out["reward"].tolist() == [0.0, 0.0, 0.5]
    assert out["discount"].tolist() == [0.0625, 0.0625, 0.25]
    assert out["terminated"].tolist() == [0.0, 0.0, 1.0]
    # Cal-QL's reference: the Monte-Carlo return from each decision, 0.5^(9 - t).
    assert out["mc_return"].tolist() == [0.5**9, 0.5**5, 0.5**1]
    # A time limit is not a termination: the last chunk still bootstraps.
    truncated = view.episode_transitions(obs, actions, np.zeros(steps), False, np.array([8]), gamma=0.5)
    assert truncated["terminated"].tolist() == [0.0]


def test_an_unknown_method_or_another_methods_config_is_refused():
    with pytest.raises(UnknownNameError, match="unknown algo 'ppo'; known algorithms: expo, imitation, parl, rlpd"):
        build_agent("ppo", make_policy(), ExpoConfig())
    with pytest.raises(ConfigError, match="algo=parl takes a ParlConfig, got a ExpoConfig"):
        build_agent("parl", make_policy(), ExpoConfig())


KILL_AFTER_LOGGING = """
import os, signal, sys
from robo_policies.cli.main import main
from robo_policies.utils.scalars import ScalarLog

log = ScalarLog.log

def log_then_die(self, step, **values):
    log(self, step, **values)
    if step >= int(os.environ["KILL_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)

ScalarLog.log = log_then_die
sys.exit(main(sys.argv[1:]))
"""
"""``robo`` that SIGKILLs itself right after logging a row at or past ``KILL_AT_STEP``."""


@pytest.fixture
def one_thread():
    """This process computes with one thread, as a subprocess with OMP_NUM_THREADS=1 does, so
    that their runs can be compared bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def logged(run):
    """``metrics.jsonl`` and the steps of every TensorBoard scalar of a run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard")).Reload()
    steps = {tag: [event.step for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    return (run / "metrics.jsonl").read_text(), steps


@pytest.mark.parametrize("algo,cameras", [("expo", False), ("parl", False),
                                          pytest.param("parl", True, marks=pytest.mark.slow)])
def test_a_run_sigkilled_between_checkpoints_resumes_exactly_as_if_uninterrupted(tmp_path, request, one_thread,
                                                                                 algo, cameras):
    """Episodes of 20 steps; the policy samples cached with every transition are redrawn at
    40 and 80 env steps, checkpoints are taken at 0, 60 and 120. Killed after logging step
    80, the run resumes from 60 with the samples of 40 (the demonstrations' too) and ends
    bitwise identical to an uninterrupted run, having logged each step once; with cameras
    too (their frames are in the saved replay)."""
    if cameras:
        checkpoint, target = request.getfixturevalue("image_policy"), IMAGE_TASK
    else:
        checkpoint, target = request.getfixturevalue("trained")("diffusion"), []
    runs = {name: finetune_args(checkpoint, tmp_path / name, algo, 120, "eval_every=60",
                                "rl.sample_refresh_every=40", "max_steps=20", "rl.start_steps=20", "rl.utd=2",
                                "episodes=1", *target)
            for name in ("whole", "killed")}
    assert main(runs["whole"]) == 0
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KILL_AT_STEP": "80",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", KILL_AFTER_LOGGING, *runs["killed"]], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    saved = torch.load(killed / "checkpoint" / "training_state.pt", weights_only=True)["progress"]
    last_logged = json.loads((killed / "metrics.jsonl").read_text().splitlines()[-1])["env_steps"]
    assert (saved["env_steps"], saved["next_refresh"], last_logged) == (60, 80, 80)  # refreshed at 40
    with pytest.raises(FileExistsError, match="pass resume=true"):
        finetune(compose_config("finetune", runs["killed"][1:]))

    assert main([*runs["killed"], "resume=true"]) == 0
    weights = sorted(path.relative_to(whole) for path in whole.rglob("*.safetensors"))  # agent, policy
    assert weights and weights == sorted(path.relative_to(killed) for path in killed.rglob("*.safetensors"))
    for name in [*weights, "curve.json"]:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name
    assert logged(killed) == logged(whole)


def test_a_checkpoint_from_before_exact_resume_is_not_resumed(tmp_path, trained):
    out = tmp_path / "run"
    args = finetune_args(trained("diffusion"), out, "expo", 20, "max_steps=20")
    assert main(args) == 0
    path = out / "checkpoint" / "training_state.pt"
    state = torch.load(path, weights_only=True)
    del state["format"]  # older checkpoints did not save the demonstrations' replay
    torch.save(state, path)
    write_checksum(path)
    with pytest.raises(CheckpointError, match="saved by an older robo finetune, which did not keep all"):
        finetune(compose_config("finetune", [*args[1:], "resume=true"]))


def test_resume_refuses_a_damaged_or_missing_run_and_recovers_an_interrupted_replacement(tmp_path, trained,
                                                                                         robo):
    out = tmp_path / "run"
    args = finetune_args(trained("diffusion"), out, "expo", 20, "max_steps=20")
    result = robo(*args, "resume=true")
    assert result.code == 2 and result.err.strip() == (
        f"error: resume=true, but {out} holds no run to resume (no config.yaml, no checkpoint/); "
        "drop resume=true to start one there")
    assert main(args) == 0
    replay = out / "checkpoint" / "replay.npz"
    data = bytearray(replay.read_bytes())
    data[len(data) // 2] ^= 0xFF
    replay.write_bytes(bytes(data))
    result = robo(*args, "resume=true")
    assert result.code == 2 and result.err.strip() == (
        f"error: {replay}: checksum mismatch with replay.npz.sha256 (file modified or damaged)")
    # A kill between moving the old checkpoint aside and the new one in: the old one is put back.
    (out / "checkpoint").rename(out / "checkpoint.old-0a1b2c3d")
    replay_aside = out / "checkpoint.old-0a1b2c3d" / "replay.npz"
    replay_aside.write_bytes(bytes(data[: len(data) // 2]) + bytes([data[len(data) // 2] ^ 0xFF])
                             + bytes(data[len(data) // 2 + 1:]))
    assert main([*args, "resume=true"]) == 0
    assert (out / "checkpoint" / "training_state.pt").is_file() and not list(out.glob("checkpoint.old-*"))


def test_calql_pretraining_ranks_demonstrated_chunks_above_uniform_ones(trained):
    from robo_policies.rl.finetune import _pretrain_critic, _store, demonstration_episodes
    from robo_policies.rl.replay import TransitionBuffer
    from robo_policies.utils.scalars import ScalarLog

    policy = load_saved(trained("diffusion") / "checkpoint")
    config = ParlConfig(batch_size=32, critic_members=2, critic_hidden=[32, 32], inference_steps=2,
                        critic_lr=1e-3, offline_critic_steps=150, cql_alpha=0.5, cql_samples=2)
    agent = build_agent("parl", policy, config)
    dataset = saved_metadata(trained("diffusion") / "checkpoint")["dataset"]
    episodes = list(demonstration_episodes(agent.view, dataset, config.gamma))
    offline = TransitionBuffer(agent.view.transition_shapes(agent.cached_samples, agent.cached_windows),
                               capacity=sum(len(transitions["reward"]) for transitions, _ in episodes))
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    for transitions, frames in episodes:
        _store(offline, transitions, frames, agent, generator)

    def gap():
        rows = {key: torch.as_tensor(value) for key, value in offline.sample(256, rng).items()}
        batch = agent.view.critic_batch(rows)
        with torch.no_grad():
            uniform = torch.rand(batch["action"].shape, generator=generator) * 2 - 1
            return (agent.critic(batch["obs"], batch["action"]) - agent.critic(batch["obs"], uniform)).mean().item()

    before = gap()
    logger = ScalarLog(trained("diffusion") / "calql_log", step_key="env_steps")
    _pretrain_critic(agent, offline, rng, generator, False, logger)
    logger.close()
    assert gap() > before + 0.05
    assert agent.optimizers["critic"].state == {}  # a fresh optimiser for the online phase


def test_fine_tuning_runs_on_a_gymnasium_id(tmp_path, trained):
    """env.id instead of the recorded task: episodes end at the env's own TimeLimit."""
    out = tmp_path / "gym"
    gym_env = ["env.id=robo_policies/DiffDriveNav-v0", "+env.kwargs.max_episode_steps=50"]
    assert main(finetune_args(trained("diffusion"), out, "expo", 100, "seed=2", *gym_env)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] >= 100 and summary["episodes"] == pytest.approx(summary["env_steps"] / 50, abs=1)
    assert main(["eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", "progress=false", *gym_env]) == 0


def test_each_method_has_its_own_offline_phase_unless_told():
    policy = make_policy()
    assert build_agent("parl", policy, ParlConfig()).offline_critic_steps == 5000
    assert build_agent("expo", policy, ExpoConfig()).offline_critic_steps == 0
    assert build_agent("rlpd", policy, RlpdConfig(actor_hidden=[8])).offline_critic_steps == 0  # no such phase
    assert build_agent("parl", policy, ParlConfig(offline_critic_steps=0)).offline_critic_steps == 0
    assert build_agent("expo", policy, ExpoConfig(offline_critic_steps=10)).offline_critic_steps == 10
