"""RTI warm start: chunk shifting, discrete snapping, start levels per head, episode
boundaries, the few-step solve, calibration and `robo eval sampler=rti`."""

import json

import numpy as np
import pytest
import torch
from tiny_policies import SHAPES, make_policy, observations
from toy_task import TOY_TASK

from robo_policies.cli.main import main
from robo_policies.envs import register_task, task_names
from robo_policies.envs.collect import collect
from robo_policies.commands.evaluate import held_out_start_noise
from robo_policies.sampling.composition import ComposedPolicy
from robo_policies.sampling.warmstart import (
    WarmStart,
    WarmStartConfig,
    calibrate_start_noise,
    sample_chunk,
    shift_chunk,
    snap_discrete,
)
from robo_policies.utils.errors import ConfigError

EXACT = dict(rtol=0.0, atol=0.0)


def test_shift_drops_executed_actions_and_repeats_the_last():
    chunk = torch.arange(12.0).reshape(1, 4, 3)  # steps 0..3, each (3k, 3k+1, 3k+2)
    shifted = shift_chunk(chunk, 2)
    assert shifted[0].tolist() == [[6, 7, 8], [9, 10, 11], [9, 10, 11], [9, 10, 11]]
    torch.testing.assert_close(shift_chunk(chunk, 0), chunk, **EXACT)
    with pytest.raises(ValueError, match="cannot shift a chunk of 4 steps by 4"):
        shift_chunk(chunk, 4)


def test_discrete_dims_snap_to_the_nearest_end_and_others_stay():
    chunk = torch.tensor([[[0.3, -0.2], [0.4, 0.1], [-0.5, 0.0]]])
    snapped = snap_discrete(chunk, [1])
    assert snapped[0, :, 1].tolist() == [-1.0, 1.0, 1.0]
    torch.testing.assert_close(snapped[..., 0], chunk[..., 0], **EXACT)
    torch.testing.assert_close(snap_discrete(chunk, None), chunk, **EXACT)
    with pytest.raises(ValueError, match=r"discrete_dims \[2\] out of range for 2-D actions"):
        snap_discrete(chunk, [2])


def test_start_noise_maps_to_each_heads_time():
    cpu = torch.device("cpu")
    diffusion = make_policy("diffusion").head  # 100 training steps, squaredcos_cap_v2
    t = int(diffusion.time_at_noise_ratio(0.1))
    alpha, sigma = diffusion.noise_levels(torch.tensor([t - 1, t, t + 1]))
    ratios = (sigma / alpha).flatten()
    assert abs(ratios[1] - 0.1) < abs(ratios[0] - 0.1) and abs(ratios[1] - 0.1) <= abs(ratios[2] - 0.1)
    assert make_policy("flow").head.warm_start_time(0.25, 3, cpu) == pytest.approx(0.2)  # t / (1 - t) = 0.25
    assert make_policy("energy").head.warm_start_time(0.25, 3, cpu) is None
    with pytest.raises(ConfigError, match="need a generative head, not MLPBCHead"):
        make_policy("mlp_bc").head.warm_start_time(0.1, 3, cpu)


def test_a_ddim_warm_start_begins_on_its_fixed_grid():
    """DDIM's grid is spaced over the whole schedule: the start moves down to a grid time."""
    head = make_policy("diffusion", scheduler="ddim", inference_steps=10).head
    t = head.time_at_noise_ratio(1.0)
    start = head.warm_start_time(1.0, 3, torch.device("cpu"))
    assert start < t and start == head.time_grid(3, t, torch.device("cpu"))[0]


@pytest.mark.parametrize("head, overrides, warm_nfe", [
    ("diffusion", {"scheduler": "ddpm", "inference_steps": 20}, 3),
    ("diffusion", {"scheduler": "ddim", "inference_steps": 10}, 3),
    ("flow", {"inference_steps": 10}, 3),
    ("energy", {"inference_steps": 10, "min_grad_norm": 0.0}, 3),
])
def test_first_call_is_a_full_solve_then_few_steps_from_the_shifted_chunk(head, overrides, warm_nfe):
    policy = make_policy(head, **overrides)
    warm = WarmStart(WarmStartConfig(steps=3, start_noise=0.2))
    cond = policy.encode(observations())
    first = sample_chunk(policy.head, cond, torch.Generator().manual_seed(0), warm, shift=4)
    assert policy.head.last_nfe == policy.head.nfe
    torch.testing.assert_close(first, policy.head.sample(cond, generator=torch.Generator().manual_seed(0)), **EXACT)
    second = sample_chunk(policy.head, cond, torch.Generator().manual_seed(1), warm, shift=4)
    assert policy.head.last_nfe == warm_nfe
    torch.testing.assert_close(warm.previous, second, **EXACT)
    # Started from the guess rather than from noise: much closer to it than a fresh solve is.
    guess = shift_chunk(first, 4)
    fresh = policy.head.sample(cond, generator=torch.Generator().manual_seed(1))
    assert (second - guess).abs().mean() < 0.5 * (fresh - guess).abs().mean()


def run_episode(policy, frames):
    """Actions for a fixed observation sequence, one act() per frame."""
    return np.stack([policy.act(frame) for frame in frames])


FRAMES = [{key: np.full(shape, 0.1 * i, np.float32) for key, shape in SHAPES.items()} for i in range(10)]


@pytest.mark.parametrize("head", ["diffusion", "flow", "energy"])
def test_after_reset_an_episode_repeats_what_a_fresh_policy_does(head):
    used, fresh = make_policy(head, n_action_steps=2), make_policy(head, n_action_steps=2)
    for policy in (used, fresh):
        policy.warm_start = WarmStart(WarmStartConfig(steps=2, start_noise=0.1))
    used.reset(seed=5)
    run_episode(used, FRAMES[::-1])  # some other episode first
    leftover = used.episode.previous
    used.reset(seed=5)
    fresh.reset(seed=5)
    expected = run_episode(fresh, FRAMES)
    np.testing.assert_array_equal(run_episode(used, FRAMES), expected)
    # The other episode's chunk, had it been kept, would have changed the actions.
    fresh.reset(seed=5)
    fresh.episode.previous = leftover
    assert not np.array_equal(run_episode(fresh, FRAMES), expected)


def test_the_gripper_guess_is_snapped_but_the_executed_chunk_is_not():
    policy = make_policy("flow", n_action_steps=2)
    policy.warm_start = WarmStart(WarmStartConfig(steps=2, start_noise=0.1, discrete_dims=[1]))
    policy.reset(seed=0)
    executed = run_episode(policy, FRAMES[:2])  # one model call
    remembered = policy.warm_start.previous
    assert set(remembered[0, :, 1].tolist()) <= {-1.0, 1.0}
    normalised = policy.normalizer.normalize("action", torch.as_tensor(executed, dtype=torch.float32))
    assert not set(normalised[:, 1].tolist()) <= {-1.0, 1.0}  # the executed values are the solver's


def test_a_composition_warm_starts_like_a_policy():
    parents = [make_policy("diffusion", scheduler="ddpm", inference_steps=10, seed=s) for s in (0, 1)]
    composed = ComposedPolicy(parents, [0.5, 0.5])
    composed.warm_start = WarmStart(WarmStartConfig(steps=2, start_noise=0.1))
    composed.reset(seed=0)
    run_episode(composed, FRAMES[:6])  # calls at steps 0, 4 (Ta 4)
    assert composed.model_call_nfe == [20, 4]  # 2 parents x (10 full, then 2 warm) steps


def test_calibration_reads_the_error_of_the_shifted_guess():
    head = make_policy("flow", inference_steps=4).head
    cond = torch.randn(6, head.cond_dim, generator=torch.Generator().manual_seed(0))
    assert calibrate_start_noise(head, cond, cond, shift=0) == pytest.approx(1e-3)  # same chunk: floor
    level = calibrate_start_noise(head, cond, cond.flip(0), shift=2)
    assert 0.01 < level < 2.0
    with pytest.raises(ValueError, match="equal, non-empty batches"):
        calibrate_start_noise(head, cond, cond[:3], shift=2)


def test_robo_eval_with_rti_reports_fewer_evaluations_per_call(tmp_path, capsys):
    if TOY_TASK.name not in task_names():
        register_task(TOY_TASK)
    policy = make_policy("diffusion", shapes={"pos": (1,)}, action_dim=1, scheduler="ddpm",
                         inference_steps=20, n_action_steps=1)
    policy.save(tmp_path / "p", metadata={"task": TOY_TASK.name})
    common = [f"checkpoint={tmp_path / 'p'}", "episodes=3", "video_episodes=0", "progress=false"]
    assert main(["eval", *common, f"out={tmp_path / 'full'}"]) == 0
    assert main(["eval", *common, "sampler=rti", "rti.steps=2", "rti.start_noise=0.1",
                 f"out={tmp_path / 'rti'}"]) == 0
    full = json.loads((tmp_path / "full" / "eval.json").read_text())
    rti = json.loads((tmp_path / "rti" / "eval.json").read_text())
    assert full["nfe"] == 20 and rti["nfe"] == 2  # the median call is a warm one
    assert full["sampler"] == {"name": "full"}
    assert rti["sampler"] == {"name": "rti", "steps": 2, "start_noise": 0.1, "renoise": True,
                              "calibrate": False, "discrete_dims": []}  # toy_reach has none
    assert full["ms_per_action_p50"] > 0 and rti["ms_per_action_p50"] > 0
    assert main(["eval", *common, "sampler=warm"]) != 0
    assert "sampler must be full or rti, got 'warm'" in capsys.readouterr().err


def test_calibration_on_held_out_episodes_of_the_training_data(tmp_path):
    dataset = tmp_path / "toy.zarr"
    collect(TOY_TASK, dataset, episodes=4, seed=0, progress=False)
    policy = make_policy("flow", shapes={"pos": (1,)}, action_dim=1, inference_steps=4, n_action_steps=2)
    level = held_out_start_noise(policy, {"dataset": str(dataset), "val_episodes": [1, 3]})
    assert 1e-3 <= level < 2.0
    with pytest.raises(ValueError, match="rti.calibrate needs a policy trained by `robo train`"):
        held_out_start_noise(policy, {"dataset": str(dataset)})


@pytest.mark.parametrize("renoise", [False, True])
def test_the_guess_is_used_as_is_or_noised_to_the_start_level(renoise):
    """With a zero velocity field the solver leaves its start state alone, which shows it."""
    head = make_policy("flow", inference_steps=4).head
    cond = torch.zeros(2, head.cond_dim)
    warm = WarmStart(WarmStartConfig(steps=2, start_noise=1.0, renoise=renoise))
    warm.previous = torch.linspace(-0.5, 0.5, 2 * 8 * 2).reshape(2, 8, 2)
    guess = shift_chunk(warm.previous, 4)
    still = dict(field=lambda x, t: torch.zeros_like(x))
    out = sample_chunk(head, cond, torch.Generator().manual_seed(3), warm, shift=4, **still)
    if not renoise:
        torch.testing.assert_close(out, guess, **EXACT)
    else:  # t = 0.5 for a ratio of 1: half guess, half noise from the generator
        noise = torch.randn(guess.shape, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(out, (0.5 * guess + 0.5 * noise).clamp(-1, 1))
