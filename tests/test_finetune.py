"""Online fine-tuning end to end: every head fine-tunes with a falling critic loss, the TD
target backs up the on-the-fly argmax, chunk transitions, saved agents, resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from robo_policies.cli.main import main
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.commands.config import compose_config
from robo_policies.checkpoints import load_saved, saved_metadata
from robo_policies.commands.evaluate import make_warm_start
from robo_policies.rl.chunks import ChunkView
from robo_policies.rl.config import RLConfig
from robo_policies.rl.finetune import finetune
from robo_policies.rl.saved import FinetunedPolicy, build_agent
from tests.tiny_policies import A, make_policy, observations

TINY_TRAIN = ["policy.net=mlp", "policy.hidden_dim=32", "policy.n_blocks=1", "policy.time_dim=16",
              "policy.horizon=8", "policy.n_action_steps=4", "train.batch_size=32", "train.threads=1",
              "progress=false"]
TINY_RL = ["rl.batch_size=32", "rl.critic_members=4", "rl.critic_hidden=[32,32]", "rl.actor_hidden=[32]",
           "rl.inference_steps=2", "rl.critic_lr=1e-3", "rl.start_steps=200", "rl.offline_critic_steps=0", "episodes=2", "video_episodes=0", "progress=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny diffusion, flow and energy policies trained briefly on 6 diffdrive_nav demos."""
    root = tmp_path_factory.mktemp("finetune")
    dataset = root / "nav.zarr"
    collect(get_task("diffdrive_nav"), dataset, episodes=6, seed=0, progress=False)
    runs = {}
    for head in ("diffusion", "flow", "energy"):
        runs[head] = root / head
        assert main(["train", f"dataset={dataset}", f"out={runs[head]}", "train.steps=40",
                     f"policy={head}", *TINY_TRAIN]) == 0
    return runs


def finetune_args(checkpoint, out, algo, env_steps, *extra):
    return ["finetune", f"checkpoint={checkpoint}", f"algo={algo}", f"env_steps={env_steps}",
            f"out={out}", f"eval_every={env_steps}", *TINY_RL, *extra]


@pytest.mark.parametrize("head,algo", [("diffusion", "expo"), ("flow", "parl"), ("energy", "expo"),
                                       ("diffusion", "parl")])
def test_every_head_fine_tunes_and_the_critic_loss_falls(tmp_path, trained, head, algo):
    out = tmp_path / "run"
    assert main(finetune_args(trained[head], out, algo, 800, "seed=1")) == 0
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
    assert isinstance(policy, FinetunedPolicy) and policy.agent.policy.config.head == head
    assert main(["eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", "progress=false"]) == 0
    assert json.loads((out / "eval.json").read_text())["episodes"] == 1
    with pytest.raises(ValueError, match="sampler=rti does not apply"):
        make_warm_start(compose_config("eval", ["sampler=rti"]), None, policy, str(out))


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
    agent = build_agent("expo", policy, RLConfig(n_samples=3, n_edit=1, edit_scale=0.3, critic_members=4,
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
    for algo in ("expo", "parl", "rlpd", "imitation"):
        agent = build_agent(algo, policy, RLConfig(n_samples=3, n_edit=3, top_k=2, edit_scale=1.0,
                                                   critic_members=2, critic_hidden=[8], actor_hidden=[8]))
        for warming_up in (False, True):  # the method's choice, then its warm-up actions
            agent.warming_up = warming_up
            windows = agent.act(obs, torch.Generator().manual_seed(0))
            assert windows.shape == (5, policy.config.horizon, A)
            assert agent.view.executed(windows).abs().max() <= 1.0, algo


def test_parl_distils_from_the_windows_cached_with_the_transition():
    policy = make_policy(n_obs_steps=2, horizon=8, n_action_steps=4)
    agent = build_agent("parl", policy, RLConfig(n_samples=3, top_k=2, distill_argmax=True, refine_steps=1,
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


def test_finetuned_policies_need_low_dimensional_observations():
    policy = make_policy()
    policy.image_keys = ["camera"]
    with pytest.raises(ValueError, match=r"low-dimensional observations only; the policy reads images \['camera'\]"):
        ChunkView(policy)
    with pytest.raises(ValueError, match="algo must be one of"):
        build_agent("ppo", make_policy(), RLConfig())


def test_resume_after_sigkill_continues_the_run(tmp_path, trained):
    out = tmp_path / "killed"
    args = finetune_args(trained["diffusion"], out, "expo", 1200, "eval_every=300")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "robo_policies", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoint" / "training_state.pt"
    deadline = time.time() + 240
    while time.time() < deadline:
        if state.is_file() and torch.load(state, weights_only=True)["progress"]["env_steps"] >= 300:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run
    saved = torch.load(state, weights_only=True)
    done = saved["progress"]["env_steps"]
    assert 300 <= done < 1200
    with pytest.raises(FileExistsError, match="pass resume=true"):
        _finetune_direct(args)
    assert main([*args, "resume=true"]) == 0
    curve = json.loads((out / "curve.json").read_text())
    steps = [point["env_steps"] for point in curve]
    assert steps[: len(saved["curve"])] == [point["env_steps"] for point in saved["curve"]]
    assert steps[-1] >= 1200 and steps == sorted(steps)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] >= 1200


def _finetune_direct(args):
    return finetune(compose_config("finetune", args[1:]))


def test_calql_pretraining_ranks_demonstrated_chunks_above_uniform_ones(trained):
    from robo_policies.rl.finetune import _pretrain_critic, demonstration_transitions
    from robo_policies.rl.replay import TransitionBuffer
    from robo_policies.utils.scalars import ScalarLog

    policy = load_saved(trained["flow"] / "checkpoint")
    config = RLConfig(batch_size=32, critic_members=2, critic_hidden=[32, 32], inference_steps=2,
                      critic_lr=1e-3, offline_critic_steps=150, cql_alpha=0.5, cql_samples=2)
    agent = build_agent("parl", policy, config)
    dataset = saved_metadata(trained["flow"] / "checkpoint")["dataset"]
    demos = demonstration_transitions(agent.view, dataset, config.gamma)
    offline = TransitionBuffer(agent.view.transition_shapes(), capacity=len(demos["reward"]))
    offline.extend(demos)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)

    def gap():
        rows = {key: torch.as_tensor(value) for key, value in offline.sample(256, rng).items()}
        batch = agent.view.critic_batch(rows)
        with torch.no_grad():
            uniform = torch.rand(batch["action"].shape, generator=generator) * 2 - 1
            return (agent.critic(batch["obs"], batch["action"]) - agent.critic(batch["obs"], uniform)).mean().item()

    before = gap()
    logger = ScalarLog(trained["flow"] / "calql_log", step_key="env_steps")
    _pretrain_critic(agent, offline, rng, generator, "parl", False, logger)
    logger.close()
    assert gap() > before + 0.05
    assert agent.optimizers["critic"].state == {}  # a fresh optimiser for the online phase
    with pytest.raises(ValueError, match="RLPD baseline learns online from scratch"):
        _pretrain_critic(agent, offline, rng, generator, "rlpd", False, logger)



def test_fine_tuning_runs_on_a_gymnasium_id(tmp_path, trained):
    """env.id instead of the recorded task: episodes end at the env's own TimeLimit."""
    out = tmp_path / "gym"
    gym_env = ["env.id=robo_policies/DiffDriveNav-v0", "+env.kwargs.max_episode_steps=50"]
    assert main(finetune_args(trained["diffusion"], out, "expo", 300, "seed=2", *gym_env)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] >= 300 and summary["episodes"] == pytest.approx(summary["env_steps"] / 50, abs=1)
    assert main(["eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", "progress=false", *gym_env]) == 0


def test_each_method_has_its_own_offline_phase_unless_told():
    policy = make_policy()
    assert build_agent("parl", policy, RLConfig()).offline_critic_steps == 5000
    assert build_agent("expo", policy, RLConfig()).offline_critic_steps == 0
    assert build_agent("parl", policy, RLConfig(offline_critic_steps=0)).offline_critic_steps == 0
    assert build_agent("expo", policy, RLConfig(offline_critic_steps=10)).offline_critic_steps == 10
