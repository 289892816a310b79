"""GPC composition: exact reductions to a parent, the diffusion <-> flow mapping, mismatched
chunks and observations, energies, validation errors, saving, `robo eval` and `robo compose`."""

import dataclasses
import json
from itertools import pairwise

import numpy as np
import pytest
import torch
import yaml
from toy_task import TOY_TASK

from robo_policies.commands.model_config import ComposeConfig
from robo_policies.cli.main import main
from robo_policies.envs import register_task, task_names
from robo_policies.envs.runner import EvalResult
from robo_policies.checkpoints import load_saved, saved_metadata
from robo_policies.heads.diffusion import DiffusionHead
from robo_policies.heads.parameterization import to_sample_and_noise
from robo_policies.policy import Policy
from robo_policies.sampling.composition import ComposedPolicy
from robo_policies.commands.compose import Candidate, best_candidate, search_weights, simplex_grid
from tiny_policies import A, SHAPES, make_policy, observations

def chunk(policy, obs):
    """``predict_chunk`` from sampling seed 0 (parents and compositions start from the same noise)."""
    policy.generator.manual_seed(0)
    return policy.predict_chunk(obs)


OBS = observations()
EXACT = dict(rtol=0.0, atol=0.0)


# -- reductions to one parent ---------------------------------------------------------------


@pytest.mark.parametrize("head, overrides", [
    ("diffusion", {}),
    ("diffusion", {"scheduler": "ddpm"}),
    ("diffusion", {"prediction": "sample"}),
    ("flow", {}),
    ("flow", {"solver": "heun"}),
    ("energy", {"min_grad_norm": 0.0}),
])
def test_a_policy_composed_with_itself_is_itself(head, overrides):
    policy = make_policy(head, **overrides)
    composed = ComposedPolicy([policy, policy], [0.5, 0.5])
    torch.testing.assert_close(chunk(composed, OBS), chunk(policy, OBS), **EXACT)
    assert composed.nfe == 2 * policy.nfe


@pytest.mark.parametrize("head", ["diffusion", "flow", "energy"])
def test_one_hot_weights_reproduce_that_parent_and_mixing_differs(head):
    first, second = make_policy(head, seed=0), make_policy(head, seed=1)
    for weights, parent in (([1, 0], first), ([0, 1], second)):
        composed = ComposedPolicy([first, second], weights)
        torch.testing.assert_close(chunk(composed, OBS), chunk(parent, OBS), **EXACT)
    mixed = chunk(ComposedPolicy([first, second], [0.5, 0.5]), OBS)
    for parent in (first, second):
        assert (mixed - chunk(parent, OBS)).abs().max() > 0.01


# -- diffusion <-> flow -----------------------------------------------------------------------


def test_diffusion_lead_follows_a_flow_parent_as_euler_on_the_same_noise_levels():
    """DDIM's update x' = alpha' x0 + sigma' eps is rectified-flow Euler in rescaled
    coordinates, so following only the flow parent must equal Euler steps of the flow net at
    the flow times with DDIM's noise-to-signal ratios: an exact check of the state/time map."""
    diffusion = make_policy("diffusion", seed=0)
    diffusion.head = DiffusionHead(A, 8, diffusion.head.cond_dim, diffusion.head.net,
                                   inference_steps=10, clip_sample=False)
    flow = make_policy("flow", seed=1)
    got = chunk(ComposedPolicy([diffusion, flow], [0, 1]), OBS)

    cond = flow.encode(OBS)
    x = diffusion.head.initial_noise(cond, torch.Generator().manual_seed(0))
    abar = diffusion.head.train_scheduler.alphas_cumprod
    levels = [(abar[step].sqrt(), (1 - abar[step]).sqrt()) for step in range(90, -1, -10)]
    times = [sigma / (alpha + sigma) for alpha, sigma in levels] + [torch.tensor(0.0)]
    x = x / sum(levels[0])  # the same point on the rectified-flow path
    for t, t_next in pairwise(times):
        x = x + (t_next - t) * flow.head.field(x, t, cond)
    expected = flow.normalizer.unnormalize("action", x.clamp(-1, 1))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert (got - chunk(diffusion, OBS)).abs().max() > 0.01


@pytest.mark.parametrize("lead", ["diffusion", "flow"])
def test_diffusion_and_flow_parents_mix_in_either_order(lead):
    parents = [make_policy("diffusion", seed=0, prediction="sample"), make_policy("flow", seed=1)]
    if lead == "flow":
        parents.reverse()
    composed = ComposedPolicy(parents, [0.5, 0.5])
    mixed = chunk(composed, OBS)
    assert mixed.shape == (3, 8, A) and torch.isfinite(mixed).all()
    torch.testing.assert_close(chunk(ComposedPolicy(parents, [1, 0]), OBS), chunk(parents[0], OBS), **EXACT)


def test_a_flow_parent_at_a_diffusion_state_predicts_what_it_does_at_its_own_state():
    flow = make_policy("flow")
    cond = flow.encode(OBS)
    abar = make_policy("diffusion").head.train_scheduler.alphas_cumprod[37]
    alpha, sigma = abar.sqrt().reshape(1, 1), (1 - abar).sqrt().reshape(1, 1)
    x = torch.randn(3, 8, A)
    x0, eps = flow.head.sample_and_noise_at(x, alpha, sigma, cond)
    t = (sigma / (alpha + sigma)).reshape(())
    x_flow = x / (alpha + sigma)
    velocity = flow.head.field(x_flow, t, cond)
    torch.testing.assert_close(x0, x_flow - t * velocity)
    torch.testing.assert_close(eps, x_flow + (1 - t) * velocity)
    torch.testing.assert_close(alpha * x0 + sigma * eps, x)  # a consistent pair at the diffusion state


def test_a_diffusion_parent_is_queried_at_the_step_with_the_flow_time_noise_ratio():
    diffusion, flow = make_policy("diffusion"), make_policy("flow")
    cond = diffusion.encode(OBS)
    calls = []
    diffusion.head.net.register_forward_hook(lambda module, inputs, out: calls.append((*inputs[:2], out)))
    step = 37
    abar = diffusion.head.train_scheduler.alphas_cumprod
    alpha, sigma = abar[step].sqrt(), (1 - abar[step]).sqrt()
    x = torch.randn(3, 8, A)
    x0, eps = diffusion.head.sample_and_noise_at(x, *flow.head.noise_levels(sigma / (alpha + sigma)), cond)
    ((x_seen, t_seen, prediction),) = calls
    assert t_seen.tolist() == [step] * 3
    torch.testing.assert_close(x_seen, x * (alpha + sigma))  # the same point on the diffusion path
    torch.testing.assert_close((x0, eps), to_sample_and_noise(prediction, "epsilon", x_seen, alpha, sigma))
    # Pure noise maps to the last step, clean data to the first; other times to the nearest step.
    levels = [flow.head.noise_levels(torch.tensor(t)) for t in (1.0, 0.0)]
    assert [int(diffusion.head.time_for_noise_levels(*level)) for level in levels] == [99, 0]
    log_snr = (abar / (1 - abar)).log()
    for fraction, nearest in ((0.3, step), (0.7, step + 1)):  # of the way to the next step's log SNR
        between = log_snr[step] + fraction * (log_snr[step + 1] - log_snr[step])
        levels = flow.head.noise_levels(torch.sigmoid(-between / 2))  # t / (1 - t) = exp(-log_snr / 2)
        assert int(diffusion.head.time_for_noise_levels(*levels)) == nearest


# -- different chunks and observations --------------------------------------------------------


def test_a_longer_parent_keeps_its_tail():
    short, long = make_policy("diffusion", seed=0), make_policy("diffusion", seed=1, horizon=16)
    composed = ComposedPolicy([short, long], [0.5, 0.5])
    assert composed.config.horizon == 16 and chunk(composed, OBS).shape == (3, 16, A)
    torch.testing.assert_close(chunk(ComposedPolicy([short, long], [0, 1]), OBS), chunk(long, OBS), **EXACT)

    conds = composed.encode(OBS)
    x, t = torch.randn(3, 16, A), torch.tensor(50)
    mine, theirs = short.head.field(x[:, :8], t, conds[0]), long.head.field(x, t, conds[1])
    field = composed.field(conds)(x, t)
    torch.testing.assert_close(field[:, :8], 0.5 * mine + 0.5 * theirs[:, :8])
    torch.testing.assert_close(field[:, 8:], theirs[:, 8:])
    # Even at weight 0 the only parent covering the tail moves it.
    field = ComposedPolicy([short, long], [1, 0]).field(conds)(x, t)
    torch.testing.assert_close(field, torch.cat([mine, theirs[:, 8:]], dim=1))


def test_parents_with_different_history_lengths_are_aligned_in_time():
    two, three = make_policy("flow", seed=0), make_policy("flow", seed=1, n_obs_steps=3)
    composed = ComposedPolicy([two, three], [0.5, 0.5])
    # `three`'s chunk starts one step earlier (at its first observation): the composed chunk
    # follows it, and `two` covers steps 1..8.
    assert (composed.config.n_obs_steps, composed.config.horizon, composed.config.n_action_steps) == (3, 9, 4)
    assert composed.windows == [slice(1, 9), slice(0, 8)]
    obs = observations(steps=3)
    conds = composed.encode(obs)
    torch.testing.assert_close(conds[0], two.encode({k: v[:, 1:] for k, v in obs.items()}), **EXACT)
    torch.testing.assert_close(conds[1], three.encode(obs), **EXACT)
    x, t = torch.randn(3, 9, A), torch.tensor(0.5)
    field = composed.field(conds)(x, t)
    torch.testing.assert_close(field[:, 0], three.head.field(x[:, :8], t, conds[1])[:, 0])
    torch.testing.assert_close(field[:, 8], two.head.field(x[:, 1:], t, conds[0])[:, 7])

    # act: history of 3 frames (the first repeated), execution from step To - 1 = 2.
    frame = {"pos": np.ones(3, np.float32), "goal": np.zeros(2, np.float32)}
    composed.generator.manual_seed(0)
    first = composed.act(frame)
    window = {key: torch.as_tensor(np.stack([value] * 3))[None] for key, value in frame.items()}
    expected = chunk(composed, window)[0, 2].numpy()
    np.testing.assert_allclose(first, expected)
    assert len(composed.model_call_ms) == 1
    for _ in range(4):
        composed.act(frame)
    assert len(composed.model_call_ms) == 2  # a new chunk after n_action_steps = 4


def test_parents_reading_different_observation_keys():
    positions = make_policy("diffusion", seed=0, shapes={"pos": (3,)})
    goals = make_policy("diffusion", seed=1, shapes={"goal": (2,)})
    composed = ComposedPolicy([positions, goals], [0.5, 0.5])
    assert composed.obs_shapes == SHAPES
    conds = composed.encode(OBS)
    torch.testing.assert_close(conds[0], positions.encode({"pos": OBS["pos"]}), **EXACT)
    torch.testing.assert_close(conds[1], goals.encode({"goal": OBS["goal"]}), **EXACT)
    mixed = chunk(composed, OBS)
    assert mixed.shape == (3, 8, A) and torch.isfinite(mixed).all()
    with pytest.raises(KeyError, match="goal"):
        composed.predict_chunk({"pos": OBS["pos"]})


# -- what cannot be composed --------------------------------------------------------------------


def test_energy_and_denoising_parents_do_not_mix():
    names = ["runs/energy", "runs/diffusion"]
    with pytest.raises(ValueError, match=r"cannot compose energy parents \['runs/energy'\] with field "
                                         r"parents \['runs/diffusion'\].*no\s+time"):
        ComposedPolicy([make_policy("energy"), make_policy("diffusion")], [0.5, 0.5], names)
    with pytest.raises(ValueError, match="runs/bc: a MLPBCHead cannot be composed: it has neither"):
        ComposedPolicy([make_policy("flow"), make_policy("mlp_bc")], [0.5, 0.5], ["runs/flow", "runs/bc"])
    with pytest.raises(ValueError, match=r"same chunk.*runs/a has \(2, 8\), runs/b has \(2, 16\)"):
        ComposedPolicy([make_policy("energy"), make_policy("energy", horizon=16)], [0.5, 0.5],
                       ["runs/a", "runs/b"])


@pytest.mark.parametrize("other, message", [
    ({"action_dim": 3}, "parents runs/a and runs/b differ in action_dim: 2 vs 3"),
    ({"action_range": 3.0}, "parents runs/a and runs/b differ in action normalisation: scale"),
    ({"shapes": {"pos": (4,)}}, r"observation 'pos' has shape \(3,\) for runs/a but \(4,\) for runs/b"),
])
def test_parents_that_disagree_are_named(other, message):
    with pytest.raises(ValueError, match=message):
        ComposedPolicy([make_policy(), make_policy(seed=1, **other)], [0.5, 0.5], ["runs/a", "runs/b"])


@pytest.mark.parametrize("weights, message", [
    ([1.0], r"got 1 weights \[1.0\] for 2 parents"),
    ([-0.5, 1.5], r"finite and >= 0, got \[-0.5, 1.5\]"),
    ([0.5, 0.6], r"sum to 1, got \[0.5, 0.6\] \(sum 1.1\)"),
])
def test_weights_are_checked(weights, message):
    policy = make_policy()
    with pytest.raises(ValueError, match=message):
        ComposedPolicy([policy, policy], weights)


# -- saving, robo eval, robo compose ----------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    composed = ComposedPolicy([make_policy("diffusion"), make_policy("flow", seed=1)], [0.3, 0.7],
                              ["runs/a", "runs/b"], tasks=["toy_reach", None])
    composed.save(tmp_path / "c", metadata={"task": "toy_reach"})
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["composition.yaml", "parent_0", "parent_1"]
    loaded = load_saved(tmp_path / "c")
    assert isinstance(loaded, ComposedPolicy)
    assert loaded.weights == (0.3, 0.7) and loaded.names == ["runs/a", "runs/b"]
    assert loaded.tasks == ["toy_reach", None]  # what each parent's keys mean
    torch.testing.assert_close(chunk(loaded, OBS), chunk(composed, OBS), **EXACT)
    assert saved_metadata(tmp_path / "c") == {"task": "toy_reach"}
    assert isinstance(load_saved(tmp_path / "c" / "parent_0"), Policy)

    description = yaml.safe_load((tmp_path / "c" / "composition.yaml").read_text())
    (tmp_path / "c" / "composition.yaml").write_text(yaml.safe_dump({**description, "weights": [1.0]}))
    with pytest.raises(ValueError, match=r"composition\.yaml: got 1 weights"):
        load_saved(tmp_path / "c")


def test_each_sampling_setting_goes_to_the_parents_that_have_it(tmp_path):
    ComposedPolicy([make_policy("diffusion"), make_policy("flow", seed=1)], [0.5, 0.5]).save(tmp_path / "c")
    loaded = load_saved(tmp_path / "c", overrides={"scheduler": "ddpm", "inference_steps": 3})
    diffusion, flow = (parent.config.head for parent in loaded.parents)
    assert (diffusion.scheduler, diffusion.inference_steps, flow.inference_steps) == ("ddpm", 3, 3)
    with pytest.raises(ValueError, match=r"\['best_of'\] not settings of any parent"):
        load_saved(tmp_path / "c", overrides={"best_of": 2})


@pytest.fixture(scope="module")
def toy_parents(tmp_path_factory):
    """Two untrained policies saved as trained on the toy task (pure Python, 8-step episodes)."""
    if TOY_TASK.name not in task_names():
        register_task(TOY_TASK)
    root = tmp_path_factory.mktemp("parents")
    heads = {"a": "diffusion", "b": "flow"}
    for name, head in heads.items():
        policy = make_policy(head, seed=len(name), shapes={"pos": (1,)}, action_dim=1)
        policy.save(root / name, metadata={"task": TOY_TASK.name})
    return [root / name for name in heads]


def test_robo_eval_scores_a_saved_composition(tmp_path, toy_parents):
    parents = [Policy.load(path) for path in toy_parents]
    ComposedPolicy(parents, [0.5, 0.5]).save(tmp_path / "c", metadata={"task": TOY_TASK.name})
    assert main(["eval", f"checkpoint={tmp_path / 'c'}", "episodes=2", "video_episodes=0",
                 "progress=false"]) == 0
    report = json.loads((tmp_path / "c" / "eval.json").read_text())
    assert report["episodes"] == 2 and report["nfe"] == 8  # 2 parents x 4 solver steps
    assert [r["seed"] for r in report["records"]] == [100000, 100001]
    assert all(1 <= r["length"] <= 8 and r["model_calls"] >= 1 for r in report["records"])


def test_robo_eval_in_several_envs_gives_the_serial_records(tmp_path, toy_parents):
    parents = [Policy.load(path) for path in toy_parents]
    ComposedPolicy(parents, [0.5, 0.5]).save(tmp_path / "c", metadata={"task": TOY_TASK.name})
    records = {}
    for num_envs in (1, 2):
        out = tmp_path / f"envs{num_envs}"
        assert main(["eval", f"checkpoint={tmp_path / 'c'}", "episodes=3", "video_episodes=0",
                     "progress=false", f"num_envs={num_envs}", f"out={out}"]) == 0
        records[num_envs] = [{key: r[key] for key in ("seed", "success", "length", "return", "model_calls")}
                             for r in json.loads((out / "eval.json").read_text())["records"]]
    assert records[2] == records[1]


def test_robo_compose_searches_saves_the_best_and_robo_eval_tests_it(tmp_path, toy_parents, capsys):
    out = tmp_path / "search"
    assert main(["compose", f"checkpoints=[{toy_parents[0]},{toy_parents[1]}]", "step=0.5", "episodes=3",
                 f"out={out}", "progress=false"]) == 0
    report = json.loads((out / "search.json").read_text())
    assert [c["weights"] for c in report["candidates"]] == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    assert all(c["episodes"] == 3 and c["seed"] == 200000 for c in report["candidates"])
    assert report["best"] in report["candidates"] and report["val_seed"] == 200000
    assert "w=0.5,0.5" in capsys.readouterr().out and "w=0.5,0.5" in (out / "search.md").read_text()
    saved = load_saved(out / "checkpoint")
    assert list(saved.weights) == report["best"]["weights"]
    assert saved.names == [str(path) for path in toy_parents]
    assert main(["eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", "progress=false"]) == 0
    assert json.loads((out / "eval.json").read_text())["seed"] == 100000


def test_robo_compose_help_documents_every_setting(capsys):
    with pytest.raises(SystemExit):
        main(["compose", "--help"])
    text = capsys.readouterr().out
    for item in dataclasses.fields(ComposeConfig):
        if item.name not in ("defaults", "task"):  # groups (sampling, rti) show as "name:"
            assert f"  {item.name}=" in text or f"  {item.name}:" in text, item.name


# -- weight search ----------------------------------------------------------------------------


def test_weight_grids_cover_the_simplex():
    pairs = simplex_grid(2, 0.1)
    assert len(pairs) == 11 and (0.3, 0.7) in pairs and all(abs(sum(w) - 1) < 1e-9 for w in pairs)
    triples = simplex_grid(3, 0.5)
    assert sorted(triples) == [(0, 0, 1), (0, 0.5, 0.5), (0, 1, 0), (0.5, 0, 0.5), (0.5, 0.5, 0), (1, 0, 0)]
    with pytest.raises(ValueError, match="step=0.3: 1/step must be a whole number"):
        simplex_grid(2, 0.3)


def result(success_rate, mean_len=10.0):
    return EvalResult(success_rate=success_rate, episodes=10, mean_episode_len=mean_len, mean_return=0.0,
                      latency_ms_p50=None, latency_ms_p95=None, nfe=None, seed=0)


def test_coarse_to_fine_refines_around_the_coarse_winner():
    successes = {0.6: 0.9, 0.7: 1.0, 0.8: 0.9}  # by the first weight; everything else 0.5
    candidates = search_weights(lambda w: result(successes.get(round(w[0], 1), 0.5)), 2,
                                "coarse_to_fine", step=0.1, coarse_step=0.2)
    firsts = [round(c.weights[0], 1) for c in candidates]
    # Coarse 0.6 and 0.8 tie; 0.6 is closer to uniform, so 0.5 and 0.7 are refined.
    assert firsts == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.5, 0.7]
    assert best_candidate(candidates).weights == (0.7, 0.3)
    with pytest.raises(ValueError, match="coarse_step=0.25 must be a whole multiple of step=0.1"):
        search_weights(lambda w: result(0.5), 2, "coarse_to_fine", step=0.1, coarse_step=0.25)
    with pytest.raises(ValueError, match="unknown search 'random'"):
        search_weights(lambda w: result(0.5), 2, "random")


def test_ties_go_to_shorter_episodes_then_to_uniform_weights_then_first():
    def best(*rows):
        return best_candidate([Candidate(weights, result(*scores)) for weights, scores in rows]).weights

    assert best(((1, 0), (0.8, 30)), ((0, 1), (0.9, 50))) == (0, 1)
    assert best(((1, 0), (0.9, 30)), ((0.5, 0.5), (0.9, 50))) == (1, 0)
    assert best(((1, 0), (0.9, 30)), ((0.6, 0.4), (0.9, 30)), ((0.4, 0.6), (0.9, 30))) == (0.6, 0.4)


def test_a_registered_saved_kind_is_recognised_before_the_built_in_ones(tmp_path, monkeypatch):
    import robo_policies.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "_KINDS", list(checkpoints._KINDS))
    assert checkpoints.saved_kinds() == ["finetuned", "composition", "policy"]
    marker = "bundle.yaml"
    checkpoints.register_saved_kind(checkpoints.SavedKind(
        "bundle", lambda d: (d / marker).is_file(), lambda d, o: ("loaded", d, o), lambda d: {"task": "t"}))
    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint" / marker).write_text("x")
    directory = checkpoints.resolve_saved(tmp_path / "run")
    assert directory == tmp_path / "run" / "checkpoint" and checkpoints.kind_of(directory).name == "bundle"
    assert checkpoints.load_saved(directory, {"a": 1}) == ("loaded", directory, {"a": 1})
    assert checkpoints.saved_metadata(directory) == {"task": "t"}
    with pytest.raises(ValueError, match="'bundle' is already registered"):
        checkpoints.register_saved_kind(checkpoints.kind_of(directory))
    with pytest.raises(FileNotFoundError, match="not a saved agent"):
        checkpoints.kind_of(tmp_path)
