"""RL building blocks: the critic ensemble and its subset targets, Polyak averaging, the TD
target's termination handling, and replay that mixes offline and online data."""

import numpy as np
import pytest
import torch

from robo_policies.rl.action_optimization import best_action, refine_actions, top_k_actions
from robo_policies.rl.critic import CriticEnsemble, EnsembleLayerNorm, EnsembleLinear, critic_loss, polyak_update
from robo_policies.rl.edit_policy import EditPolicy, on_the_fly_action
from robo_policies.rl.replay import TransitionBuffer, mixed_batch
from robo_policies.rl.td import td_target


def test_members_are_independent_networks_evaluated_together():
    critic = CriticEnsemble(obs_dim=3, action_dim=2, members=4, hidden=(8, 8))
    obs, action = torch.randn(5, 3), torch.randn(5, 2)
    q = critic(obs, action)
    assert q.shape == (4, 5)
    assert not torch.allclose(q[0], q[1])  # each member has its own weights
    # Member 2 alone, written as an ordinary MLP, gives its row.
    x = torch.cat([obs, action], dim=-1)
    for layer in critic.net:
        if isinstance(layer, EnsembleLinear):
            x = x @ layer.weight[2] + layer.bias[2]
        elif isinstance(layer, EnsembleLayerNorm):
            x = torch.nn.functional.layer_norm(x, x.shape[-1:], layer.weight[2, 0], layer.bias[2, 0])
        else:
            x = layer(x)
    torch.testing.assert_close(x.squeeze(-1), q[2])


def test_subset_min_is_the_min_over_the_drawn_members():
    critic = CriticEnsemble(obs_dim=2, action_dim=1, members=6, hidden=(8,))
    obs, action = torch.randn(7, 2), torch.randn(7, 1)
    chosen = torch.randperm(6, generator=torch.Generator().manual_seed(3))[:2]
    expected = critic(obs, action)[chosen].min(dim=0).values
    got = critic.subset_min(obs, action, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(critic.subset_min(obs, action, 6), critic(obs, action).min(dim=0).values)
    with pytest.raises(ValueError, match=r"subset size must be in \[1, 6\], got 7"):
        critic.subset_min(obs, action, 7)


def test_polyak_moves_the_target_by_tau():
    source, target = CriticEnsemble(2, 1, 2, (4,)), CriticEnsemble(2, 1, 2, (4,))
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, source, tau=0.25)
    for old, new, src in zip(before, target.parameters(), source.parameters()):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * src)
    with pytest.raises(ValueError, match="tau must be in"):
        polyak_update(target, source, tau=0.0)


def test_the_critic_fits_a_reward_function():
    torch.manual_seed(0)
    critic = CriticEnsemble(obs_dim=2, action_dim=1, members=3, hidden=(32, 32))
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-3)
    obs, action = torch.rand(256, 2), torch.rand(256, 1)
    target = (obs.sum(dim=1) - action[:, 0]).expand(3, -1)
    losses = []
    for _ in range(300):
        loss = (critic(obs, action) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.02 * losses[0]


def test_only_termination_stops_the_bootstrap():
    reward = torch.tensor([0.0, 1.0, 0.0])
    terminated = torch.tensor([False, True, False])  # the third is a time limit: not terminal
    next_value = torch.tensor([2.0, 5.0, 4.0])
    assert td_target(reward, terminated, next_value, discount=0.5).tolist() == [1.0, 1.0, 2.0]
    # Chunks discount per row: gamma^k for the k steps each ran.
    per_row = td_target(reward, terminated, next_value, discount=torch.tensor([0.25, 0.5, 0.5]))
    assert per_row.tolist() == [0.5, 1.0, 2.0]
    with pytest.raises(ValueError, match="discount must be in"):
        td_target(reward, terminated, next_value, discount=1.5)


SHAPES = {"obs": (2,), "action": (1,), "reward": (), "next_obs": (2,), "terminated": ()}


def transition(i, obs_dim=2):
    return {"obs": np.full(obs_dim, i), "action": np.array([i]), "reward": float(i),
            "next_obs": np.full(obs_dim, i + 1), "terminated": False}


def test_ring_buffer_keeps_the_newest_checks_shapes_and_restores():
    buffer = TransitionBuffer(SHAPES, capacity=3)
    for i in range(5):
        buffer.add(transition(i))
    assert len(buffer) == 3 and sorted(buffer.data["reward"].tolist()) == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match=r"transition\['obs'\] has shape \(3,\), expected \(2,\)"):
        buffer.add(transition(0, obs_dim=3))
    with pytest.raises(KeyError, match="missing \\['terminated'\\]"):
        buffer.add({k: v for k, v in transition(0).items() if k != "terminated"})
    restored = TransitionBuffer(SHAPES, capacity=3)
    restored.load_state_dict(buffer.state_dict())
    restored.add(transition(7))  # overwrites the same (oldest) slot as in the original
    buffer.add(transition(7))
    for key in SHAPES:
        np.testing.assert_array_equal(restored.data[key], buffer.data[key])


def test_mixed_batches_hold_the_offline_share_exactly():
    offline, online = TransitionBuffer(SHAPES, 100), TransitionBuffer(SHAPES, 100)
    for i in range(10):
        offline.add({**transition(i), "reward": -1.0})  # offline rows are marked by reward -1
    rng = np.random.default_rng(0)
    assert (mixed_batch(offline, online, 8, 0.5, rng)["reward"] == -1).all()  # no online data yet
    for i in range(10):
        online.add({**transition(i), "reward": 1.0})
    for ratio, expected in ((0.5, 32), (0.25, 16), (1.0, 64), (0.0, 0)):
        batch = mixed_batch(offline, online, 64, ratio, rng)
        assert (batch["reward"] == -1).sum() == expected and batch["obs"].shape == (64, 2)
        np.testing.assert_array_equal(batch["offline"], batch["reward"] == -1)  # rows are marked


# -- EXPO's edit policy and on-the-fly selection ----------------------------------------------


class ToyCritic:
    """Q(s, a) = -|a_0 - s_0|: the best action copies the observation (one 'member')."""

    def subset_min(self, obs, action, size, generator=None):
        return -(action[:, 0] - obs[:, 0]).abs()


def test_edits_stay_in_bounds_with_a_finite_log_probability():
    edit = EditPolicy(obs_dim=2, action_dim=3, edit_scale=0.7, hidden=(16,))
    torch.nn.init.constant_(edit.gaussian.mean.bias, 5.0)  # push every edit hard towards +beta
    action = torch.tensor([[0.9, -1.0, 1.0]] * 4)
    edited, log_prob = edit(torch.zeros(4, 2), action, torch.Generator().manual_seed(0))
    assert edited.max() <= 1.0 and edited.min() >= -1.0
    assert edited[:, 1].min() > -1.0 + 0.5  # moved up by nearly beta = 0.7
    assert torch.isfinite(log_prob).all() and log_prob.shape == (4,)
    edited.sum().backward()  # reparameterised: gradients reach the edit policy
    assert edit.gaussian.mean.weight.grad is not None
    with pytest.raises(ValueError, match="edit_scale must be > 0"):
        EditPolicy(2, 3, edit_scale=0.0)


def test_on_the_fly_action_is_the_critics_argmax_over_samples_and_edits():
    obs = torch.tensor([[0.3], [-0.5]])
    base = torch.tensor([[[0.0], [0.0]], [[0.25], [-0.9]], [[1.0], [-0.45]]])  # N=3, B=2, A=1
    best = on_the_fly_action(obs, base, ToyCritic())
    torch.testing.assert_close(best[:, 0], torch.tensor([0.25, -0.45]), rtol=0, atol=0)
    # An edit policy that moves every action by +beta = 0.05 makes 0.25 -> 0.30 the best for the
    # first state; only the first n_edit=2 samples are edited.
    edit = EditPolicy(1, 1, edit_scale=0.05, hidden=(4,))
    for layer in (edit.gaussian.mean, edit.gaussian.log_std):
        torch.nn.init.zeros_(layer.weight)
    torch.nn.init.constant_(edit.gaussian.mean.bias, 20.0)
    torch.nn.init.constant_(edit.gaussian.log_std.bias, -5.0)
    best = on_the_fly_action(obs, base, ToyCritic(), edit, n_edit=2)
    torch.testing.assert_close(best[:, 0], torch.tensor([0.30, -0.45]))
    with pytest.raises(ValueError, match="n_edit=4 exceeds the 3 base samples"):
        on_the_fly_action(obs, base, ToyCritic(), edit, n_edit=4)


# -- PA-RL's action optimisation ---------------------------------------------------------------


class QuadraticCritic:
    """Two members: Q_i(s, a) = -sum (a - s)^2 + i, so the best action copies the observation."""

    def __call__(self, obs, action):
        q = -(action - obs).pow(2).sum(dim=-1)
        return torch.stack([q, q + 1.0])


def test_global_keeps_the_k_best_samples_and_local_climbs_without_getting_worse():
    obs = torch.tensor([[0.5, -0.5]])
    samples = torch.tensor([[[0.0, 0.0]], [[0.4, -0.4]], [[1.0, 1.0]], [[0.5, -0.2]]])  # N=4, B=1
    kept = top_k_actions(obs, samples, QuadraticCritic(), k=2)
    torch.testing.assert_close(kept[:, 0], torch.tensor([[0.4, -0.4], [0.5, -0.2]]), rtol=0, atol=0)
    refined = refine_actions(obs, kept, QuadraticCritic(), steps=40, step_size=0.1)  # x0.8 per step
    torch.testing.assert_close(refined, obs.expand(2, 1, 2), atol=1e-3, rtol=0)
    # A step size that overshoots (every step jumps past the optimum) keeps the start.
    unmoved = refine_actions(obs, kept, QuadraticCritic(), steps=3, step_size=5.0)
    torch.testing.assert_close(unmoved, kept)
    # The bounds hold: an optimum outside [-1, 1] is approached from inside.
    edge = refine_actions(torch.tensor([[3.0, 0.0]]), kept[:1], QuadraticCritic(), steps=50, step_size=0.2)
    assert edge.max() <= 1.0 and edge[0, 0, 0] == 1.0
    torch.testing.assert_close(best_action(obs, kept, QuadraticCritic()), torch.tensor([[0.4, -0.4]]), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\], got 5"):
        top_k_actions(obs, samples, QuadraticCritic(), k=5)


def test_critic_loss_regresses_every_member_on_the_target_critics_value_at_the_next_action():
    critic, target = CriticEnsemble(1, 1, 3, (8,)), CriticEnsemble(1, 1, 3, (8,))
    batch = {"obs": torch.zeros(4, 1), "action": torch.zeros(4, 1), "reward": torch.ones(4),
             "next_obs": torch.ones(4, 1), "terminated": torch.tensor([0.0, 0.0, 1.0, 0.0]),
             "discount": torch.full((4,), 0.9)}
    next_action = torch.full((4, 1), 0.5)
    loss = critic_loss(critic, target, batch, next_action, subset_size=2,
                       generator=torch.Generator().manual_seed(1))
    next_q = target.subset_min(batch["next_obs"], next_action, 2, torch.Generator().manual_seed(1))
    expected = 1.0 + 0.9 * torch.tensor([1.0, 1.0, 0.0, 1.0]) * next_q
    torch.testing.assert_close(loss, (critic(batch["obs"], batch["action"]) - expected).pow(2).mean())
    loss.backward()
    assert all(p.grad is None for p in target.parameters())  # the target is not trained
    assert all(p.grad is not None for p in critic.parameters())


def test_calql_penalty_floors_policy_candidates_at_the_mc_return():
    from robo_policies.rl.calql import calql_penalty

    class SumCritic:  # two members: Q = sum of the action, and twice that
        def __call__(self, obs, action):
            return torch.stack([action.sum(-1), 2 * action.sum(-1)])

    obs = torch.zeros(1, 3)
    data = torch.tensor([[0.5, 0.0]])
    uniform = torch.tensor([[[0.0, -1.0]]])  # Q = -1, -2
    policy = torch.tensor([[[0.1, 0.0]]])  # Q = 0.1, 0.2; floored at the MC return 0.3
    penalty = calql_penalty(SumCritic(), obs, data, uniform, policy, torch.tensor([0.3]))
    expected = np.mean([np.logaddexp(-1.0, 0.3) - 0.5, np.logaddexp(-2.0, 0.3) - 1.0])
    assert penalty.item() == pytest.approx(expected, abs=1e-6)


FRAME_FIELDS = {"reward": (), "obs_frames": (2,), "next_obs_frames": (2,)}


def camera_episode(episode, steps=6):
    """Decisions every 2 steps over windows of 2 frames; each frame's pixels hold 10 * episode + its row."""
    frames = {"cam": np.repeat(10 * episode + np.arange(steps + 1, dtype=np.uint8), 12).reshape(-1, 2, 2, 3)}
    anchors = np.arange(0, steps, 2)
    obs_rows = np.clip(anchors[:, None] + np.array([-1, 0]), 0, steps)
    transitions = {"reward": np.full(len(anchors), float(episode)), "obs_frames": obs_rows,
                   "next_obs_frames": obs_rows + 2}
    return transitions, frames


def shown(rows, prefix):
    """The pixel value of every frame of each row's windows at ``prefix``: (rows, To)."""
    return rows[f"{prefix}.cam"][..., 0, 0, 0]


def test_camera_frames_are_kept_once_as_uint8_for_as_long_as_a_transition_shows_them():
    buffer = TransitionBuffer(FRAME_FIELDS, capacity=5, frame_shapes={"cam": (2, 2, 3)})
    slots = buffer.extend(*camera_episode(0))
    rows = buffer.rows(slots)
    assert rows["obs.cam"].dtype == np.uint8 and rows["obs.cam"].shape == (3, 2, 2, 2, 3)
    assert shown(rows, "obs").tolist() == [[0, 0], [1, 2], [3, 4]]
    assert shown(rows, "next_obs").tolist() == [[2, 2], [3, 4], [5, 6]]
    assert buffer.frames.end == 7  # the 12 windows show 7 frames, each stored once
    with pytest.raises(ValueError, match="need their frames"):
        buffer.extend(camera_episode(1)[0])
    for episode in (1, 2, 3):  # the ring wraps: old transitions, and the frames only they showed, go
        buffer.extend(*camera_episode(episode))
    rows = buffer.rows(np.arange(len(buffer)))
    for reward, obs, next_obs in zip(rows["reward"], shown(rows, "obs"), shown(rows, "next_obs")):
        assert (obs // 10 == reward).all() and (next_obs == obs + 2).all()  # still the frames it showed
    assert buffer.frames.first >= 7  # episode 0's frames are gone
    restored = TransitionBuffer(FRAME_FIELDS, capacity=5, frame_shapes={"cam": (2, 2, 3)})
    restored.load_state_dict(buffer.state_dict())
    for replay in (buffer, restored):
        replay.extend(*camera_episode(4))
    np.testing.assert_equal(restored.rows(np.arange(5)), buffer.rows(np.arange(5)))
