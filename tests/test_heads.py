"""Action heads: field conversions, the shared solver, warm starts, mini-batched denoising, energy descent."""

import dataclasses
import itertools

import pytest
import torch

from robo_policies.heads import HeadConfig, build_head, head_class, head_config, register_head
from robo_policies.heads.base import DenoisingHead
from robo_policies.heads.flow import FlowMatchingHead
from robo_policies.heads.registry import config_fields
from robo_policies.heads.parameterization import PREDICTIONS, convert, from_sample_and_noise
from robo_policies.nets import ConditionalUnet1D, MLPResNetDenoiser
from robo_policies.policy import Policy, PolicyConfig
from robo_policies.utils.errors import ConfigError

A, TP, C = 2, 8, 5


def head(name, **overrides):
    torch.manual_seed(0)
    config = PolicyConfig(head=name).with_overrides(
        dict(net="mlp", hidden_dim=32, n_blocks=1, time_dim=16, horizon=TP, **overrides))
    return build_head(config, A, C)


@pytest.mark.parametrize("kind, to", list(itertools.product(PREDICTIONS, PREDICTIONS)))
def test_conversions_agree_with_the_interpolant(kind, to):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, TP, A, generator=g), torch.randn(4, TP, A, generator=g)
    alpha, sigma = torch.rand(4, 1, 1, generator=g) + 0.05, torch.rand(4, 1, 1, generator=g) + 0.05
    x = alpha * x0 + sigma * eps
    converted = convert(from_sample_and_noise(x0, eps, kind), kind, to, x, alpha, sigma)
    torch.testing.assert_close(converted, from_sample_and_noise(x0, eps, to), atol=1e-4, rtol=1e-4)


def test_unknown_prediction_kind_is_named():
    x = torch.zeros(1, TP, A)
    with pytest.raises(ValueError, match="unknown prediction kind 'score'"):
        convert(x, "score", "epsilon", x, torch.ones(1, 1, 1), torch.ones(1, 1, 1))


@pytest.mark.parametrize("name, overrides, nfe", [
    ("diffusion", {"scheduler": "ddim", "inference_steps": 10}, 10),
    ("diffusion", {"scheduler": "ddpm", "inference_steps": 7}, 7),
    ("diffusion", {"prediction": "sample", "inference_steps": 5}, 5),
    ("flow", {"solver": "euler", "inference_steps": 3}, 3),
    ("flow", {"solver": "heun", "inference_steps": 3}, 5),
    ("energy", {"inference_steps": 3, "min_grad_norm": 0.0}, 3),
    ("mlp_bc", {}, 1),
])
def test_every_head_trains_and_samples_through_one_interface(name, overrides, nfe):
    h = head(name, **overrides)
    cond, actions = torch.randn(6, C), torch.rand(6, TP, A) * 2 - 1
    loss = h.loss(cond, actions)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(p.grad is not None for p in h.parameters() if p.requires_grad)
    chunk = h.sample(cond, generator=torch.Generator().manual_seed(0))
    assert chunk.shape == (6, TP, A)
    assert name == "mlp_bc" or chunk.abs().max() <= 1.0  # generative heads stay in the normalised range
    assert h.nfe == nfe and h.last_nfe == nfe


@pytest.mark.parametrize("name, overrides, t_start, steps, nfe", [
    ("diffusion", {"scheduler": "ddpm"}, 3, 3, 3),  # DDPM: an RTI-style short list 3, 2, 0
    ("flow", {}, 0.3, 2, 2),
])
def test_warm_start_runs_the_requested_steps_from_t_start(name, overrides, t_start, steps, nfe):
    h = head(name, **overrides)
    guess = torch.rand(2, TP, A) * 2 - 1
    h.sample(torch.randn(2, C), x_init=guess, t_start=t_start, steps=steps)
    assert h.last_nfe == nfe


def test_ddpm_warm_start_grid_is_explicit_and_descending():
    h = head("diffusion", scheduler="ddpm")
    assert h.time_grid(3, 3, torch.device("cpu")).tolist() == [3, 2, 0, -1]
    assert h.time_grid(None, None, torch.device("cpu"))[0] == 99


def test_sampling_follows_a_supplied_field():
    """Composition replaces the field: a zero velocity leaves a warm start where it is."""
    h = head("flow", inference_steps=4)
    guess = torch.rand(2, TP, A) * 2 - 1
    out = h.sample(torch.randn(2, C), x_init=guess, t_start=0.5, field=lambda x, t: torch.zeros_like(x))
    torch.testing.assert_close(out, guess)
    assert isinstance(h, DenoisingHead) and h.last_nfe == 4


@pytest.mark.parametrize("net", [
    MLPResNetDenoiser(A, TP, C, hidden_dim=32, n_blocks=2, time_dim=16),
    ConditionalUnet1D(A, C, down_dims=(16, 32), time_dim=16),
], ids=["mlp", "unet"])
def test_noisy_copies_do_not_see_each_other(net):
    """Perturbing copy j's noisy input leaves every other copy's prediction unchanged."""
    torch.manual_seed(0)
    for parameter in net.parameters():  # zero-initialised output layers would hide any mixing
        torch.nn.init.normal_(parameter, std=0.2)
    copies = 4
    cond = torch.randn(2, C).repeat_interleave(copies, 0)
    x, t = torch.randn(2 * copies, TP, A), torch.randint(0, 100, (2 * copies,))
    before = net(x, t, cond)
    j = 5
    x[j] += 10 * torch.randn(TP, A)
    after = net(x, t, cond)
    others = [i for i in range(2 * copies) if i != j]
    torch.testing.assert_close(after[others], before[others])
    assert not torch.allclose(after[j], before[j])


def test_samples_per_obs_encodes_once_and_trains_m_copies():
    config = PolicyConfig(head="flow", net="mlp", hidden_dim=32, n_blocks=1, time_dim=16, samples_per_obs=16)
    policy = Policy(config, {"pos": (3,)}, [], action_dim=A)
    encoded, head_rows = [], []
    policy.encoder.register_forward_hook(lambda m, inputs, out: encoded.append(out.shape[0]))
    loss = policy.head.loss
    policy.head.loss = lambda cond, actions, pad=None: head_rows.append(cond.shape[0]) or loss(cond, actions, pad)
    policy.compute_loss({"pos": torch.randn(8, 2, 3), "action": torch.randn(8, 16, A)})
    assert encoded == [8] and head_rows == [8 * 16]


def test_samples_per_obs_must_be_positive():
    with pytest.raises(ValueError, match="samples_per_obs must be >= 1, got 0"):
        Policy(PolicyConfig(samples_per_obs=0), {"pos": (3,)}, [], action_dim=A)


@pytest.fixture(scope="module")
def trained_energy_head():
    """An energy head fitted to a deterministic map cond -> chunk (a few hundred steps)."""
    h = head("energy", inference_steps=8)
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(64, C, generator=g)
    target = torch.tanh(cond[:, :A, None].expand(64, A, TP).transpose(1, 2))
    optimizer = torch.optim.Adam(h.parameters(), lr=3e-3)
    for _ in range(300):
        optimizer.zero_grad()
        h.loss(cond, target).backward()
        optimizer.step()
    return h, cond, target


def test_energy_descent_lowers_the_energy_and_fits_the_data(trained_energy_head):
    h, cond, target = trained_energy_head
    start = h.initial_noise(cond, torch.Generator().manual_seed(1))
    chunk = h.sample(cond, x_init=start.clone(), steps=8)
    assert (h.energy(chunk, cond) < h.energy(start, cond)).float().mean() > 0.9
    assert torch.nn.functional.mse_loss(chunk, target) < 0.5 * torch.nn.functional.mse_loss(start.clamp(-1, 1), target)
    torch.testing.assert_close(h.last_energy.shape, torch.Size([64]))


def test_energy_gradient_norm_stop_ends_sampling_early(trained_energy_head):
    h, cond, _ = trained_energy_head
    h.min_grad_norm = 0.0
    h.sample(cond, steps=8)
    assert h.last_nfe == 8  # never flat enough: runs to the cap
    h.min_grad_norm = 1e6
    h.sample(cond, steps=8)
    assert h.last_nfe == 2  # flat at once: stops after the minimum of 2 evaluations
    h.min_grad_norm = 1e-3


def test_energy_best_of_keeps_the_lowest_energy_candidate(trained_energy_head):
    h, cond, _ = trained_energy_head
    h.best_of = 4
    chunk = h.sample(cond[:3], steps=4, generator=torch.Generator().manual_seed(0))
    h.best_of = 1
    assert chunk.shape == (3, TP, A) and h.last_energy.shape == (3,)


def test_the_registry_names_unknown_heads_and_settings():
    with pytest.raises(ConfigError, match=r"unknown policy head 'trnsformer'; choose from \['diffusion', 'flow', "
                                          r"'energy', 'mlp_bc'.*ROBO_PLUGINS"):
        PolicyConfig(head="trnsformer")
    with pytest.raises(ConfigError, match=r"\['solvr'\] not settings of the 'flow' head; its settings: "
                                          r"\['inference_steps', 'solver', 'time_sampling'\]"):
        head_config("flow", solvr="heun")


def test_a_taken_name_or_a_config_of_another_name_cannot_register():
    @dataclasses.dataclass
    class OtherFlowConfig(HeadConfig):
        name: str = "flow"

    with pytest.raises(ValueError, match="head 'flow' is already registered"):
        register_head("flow", OtherFlowConfig)(type("OtherFlowHead", (FlowMatchingHead,), {}))
    with pytest.raises(ValueError, match=r"head 'other': OtherFlowConfig.name must default to 'other'"):
        register_head("other", OtherFlowConfig)
    assert head_class("flow") is FlowMatchingHead


@pytest.mark.parametrize("name", ["diffusion", "flow", "energy", "mlp_bc"])
def test_each_head_builds_from_its_own_config(name):
    """What the config says is what the head does: the step count and the network size."""
    config = PolicyConfig(head=name, net="mlp", hidden_dim=24, n_blocks=1, time_dim=8, horizon=TP)
    settings = {"inference_steps": 3} if "inference_steps" in config_fields(config.head) else {}
    h = build_head(config.with_overrides(settings), A, C)
    assert isinstance(h, head_class(name))
    assert h.nfe == (3 if settings else 1)
    assert any(module.out_features == 24 for module in h.modules() if isinstance(module, torch.nn.Linear))
