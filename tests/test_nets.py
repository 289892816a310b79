"""Shapes, conditioning, gradients, errors and capacity of robo_policies.nets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robo_policies.nets import (
    ConditionalUnet1D,
    ImageEncoder,
    LowDimEncoder,
    MLPResNet,
    MLPResNetDenoiser,
    ObservationEncoder,
    SinusoidalEmbedding,
)

COND_DIM = 12


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These nets are tiny: a second intra-op thread only adds synchronisation, and on a
    busy 2-core machine it slows the file down ~10x. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _inputs(batch: int, horizon: int, action_dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, horizon, action_dim, generator=g)
    t = torch.randint(0, 100, (batch,), generator=g)
    cond = torch.randn(batch, COND_DIM, generator=g)
    return x, t, cond


def _small_unet(action_dim: int) -> ConditionalUnet1D:
    torch.manual_seed(0)
    return ConditionalUnet1D(action_dim, COND_DIM, down_dims=(16, 32, 64), time_dim=16)


def _randomised_mlp_denoiser(action_dim: int, horizon: int) -> MLPResNetDenoiser:
    """A small denoiser whose zero-initialised output layer is perturbed, so its output
    (and every gradient behind the output layer) depends on the inputs."""
    torch.manual_seed(0)
    net = MLPResNetDenoiser(action_dim, horizon, COND_DIM, hidden_dim=32, n_blocks=2, time_dim=16)
    nn.init.normal_(net.mlp.output_proj.weight, std=0.1)
    return net


def _n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _assert_all_grads_nonzero(net: nn.Module) -> None:
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


# --- embeddings -------------------------------------------------------------------------


def test_sinusoidal_embedding_integer_steps_and_scaled_times():
    emb = SinusoidalEmbedding(32)
    steps = emb(torch.arange(1000))
    assert steps.shape == (1000, 32) and steps.dtype == torch.float32
    assert steps.abs().max() <= 1.0
    # Every integer step has its own code; neighbours are closer than distant steps.
    assert torch.cdist(steps, steps).fill_diagonal_(1.0).min() > 0.5
    assert (steps[500] - steps[501]).norm() < (steps[0] - steps[900]).norm()
    # Continuous times scaled by the caller land on the same code as the integer step.
    times = emb(torch.tensor([0.0, 0.25, 0.5]) * 1000)
    torch.testing.assert_close(times, steps[[0, 250, 500]])
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(7)


# --- shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("horizon", [8, 16])
@pytest.mark.parametrize("action_dim", [2, 6])
def test_denoiser_output_shapes(batch: int, horizon: int, action_dim: int):
    x, t, cond = _inputs(batch, horizon, action_dim)
    unet = _small_unet(action_dim)
    mlp = MLPResNetDenoiser(action_dim, horizon, COND_DIM, hidden_dim=32, n_blocks=2, time_dim=16)
    assert unet(x, t, cond).shape == (batch, horizon, action_dim)
    assert mlp(x, t.float() / 100, cond).shape == (batch, horizon, action_dim)


def test_unet_single_level_and_narrow_channels():
    # One level: no down/upsampling, any horizon; 6 channels with 8 groups falls back to 2.
    unet = ConditionalUnet1D(3, COND_DIM, down_dims=(6,), n_groups=8, time_dim=8)
    x, t, cond = _inputs(2, 7, 3)
    assert unet(x, t, cond).shape == (2, 7, 3)


@pytest.mark.parametrize("batch", [1, 5])
def test_mlp_resnet_shapes(batch: int):
    net = MLPResNet(10, 48, hidden_dim=32, n_blocks=2)
    assert net(torch.randn(batch, 10)).shape == (batch, 48)


def test_mlp_denoiser_rejects_other_horizon():
    net = MLPResNetDenoiser(2, 8, COND_DIM, hidden_dim=16, n_blocks=1, time_dim=8)
    x, t, cond = _inputs(2, 16, 2)
    with pytest.raises(ValueError, match=r"\(B, 8, 2\)"):
        net(x, t, cond)


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 50, 37)])
def test_image_encoder_shapes(shape: tuple[int, int, int]):
    enc = ImageEncoder(in_channels=shape[0], out_dim=20, channels=(8, 16))
    assert enc(torch.rand(4, *shape)).shape == (4, 20)


# --- conditioning -----------------------------------------------------------------------


def test_mlp_denoiser_starts_at_zero():
    net = MLPResNetDenoiser(2, 8, COND_DIM, hidden_dim=32, n_blocks=2, time_dim=16)
    x, t, cond = _inputs(3, 8, 2)
    assert torch.equal(net(x, t, cond), torch.zeros(3, 8, 2))


@pytest.mark.parametrize("kind", ["unet", "mlp"])
def test_time_and_cond_change_the_output(kind: str):
    horizon, action_dim = 16, 2
    net = _small_unet(action_dim) if kind == "unet" else _randomised_mlp_denoiser(action_dim, horizon)
    x, t, cond = _inputs(4, horizon, action_dim)
    with torch.no_grad():
        out = net(x, t, cond)
        out_other_cond = net(x, t, cond + 1.0)
        out_other_t = net(x, t + 10, cond)
        out_again = net(x, t, cond)
    torch.testing.assert_close(out, out_again)
    # Per sample, not just somewhere in the batch.
    assert ((out - out_other_cond).abs().amax(dim=(1, 2)) > 1e-3).all()
    assert ((out - out_other_t).abs().amax(dim=(1, 2)) > 1e-3).all()


# --- capacity and horizon ---------------------------------------------------------------


PUBLISHED_LOW_DIM_PARAMS = 65_792_263
"""diffusion_policy's ConditionalUnet1D for its low-dim configuration (action 7, global cond
obs 20 x To 2 = 40, down_dims 256/512/1024, kernel 5, 8 groups, step embedding 256), counted
layer by layer from the published code: the "65.8 M" of the paper's setup."""


def test_diffusion_policy_preset_parameter_count():
    unet = ConditionalUnet1D(
        action_dim=7, cond_dim=40, down_dims=(256, 512, 1024), kernel_size=5, n_groups=8, time_dim=256
    )
    assert abs(_n_params(unet) / PUBLISHED_LOW_DIM_PARAMS - 1) < 0.005
    assert abs(_n_params(unet) / 65.8e6 - 1) < 0.005


def test_up_path_runs_one_level_coarser_without_the_finest_skip():
    """Each up level takes [features, skip] at the coarser level's width and length and
    upsamples after; the finest level's output is never concatenated."""
    unet = ConditionalUnet1D(2, COND_DIM, down_dims=(8, 16, 32), time_dim=8)
    first_convs = [level.first.conv1[0] for level in unet.up_levels]
    assert [conv.in_channels for conv in first_convs] == [2 * 32, 2 * 16]
    assert [conv.out_channels for conv in first_convs] == [16, 8]
    assert [up.in_channels for up in unet.upsamples] == [16, 8]


@pytest.mark.parametrize(
    ("down_dims", "horizon"),
    [((8, 16), 10), ((8, 16, 32), 12), ((8, 16, 32), 4)],
)
def test_odd_lengths_inside_the_unet_keep_the_shape(down_dims: tuple[int, ...], horizon: int):
    """Any horizon divisible by 2**(levels-1) works, even where a level's length is odd
    (10 -> 5; 12 -> 6 -> 3; 4 -> 2 -> 1; one level takes any horizon: see above)."""
    unet = ConditionalUnet1D(2, COND_DIM, down_dims=down_dims, time_dim=8)
    x, t, cond = _inputs(2, horizon, 2)
    assert unet(x, t, cond).shape == (2, horizon, 2)


def test_indivisible_horizon_is_rejected_with_the_numbers():
    unet = ConditionalUnet1D(2, COND_DIM, down_dims=(8, 16, 32), time_dim=8)
    unet.check_horizon(12)
    with pytest.raises(ValueError, match=r"horizon 10 .* 4 .*\(8, 16, 32\)"):
        unet.check_horizon(10)
    x, t, cond = _inputs(2, 10, 2)
    with pytest.raises(ValueError, match=r"horizon 10"):
        unet(x, t, cond)


# --- encoders ---------------------------------------------------------------------------


def test_low_dim_encoder_sorted_keys_then_time():
    enc = LowDimEncoder({"vel": 2, "pos": 3}, n_obs_steps=2)
    obs = {"vel": torch.randn(4, 2, 2), "pos": torch.randn(4, 2, 3)}
    out = enc(obs)
    assert enc.out_dim == 10 and out.shape == (4, 10)
    expected = torch.cat([obs["pos"], obs["vel"]], dim=-1).reshape(4, 10)
    torch.testing.assert_close(out, expected)
    assert _n_params(enc) == 0


def _obs_encoder() -> ObservationEncoder:
    torch.manual_seed(0)
    return ObservationEncoder(
        low_dim={"state": 5, "goal": 2},
        images={"wrist": (3, 24, 32), "front": (1, 16, 16)},
        n_obs_steps=2,
        image_feature_dim=8,
    )


def _obs(batch: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "state": torch.randn(batch, 2, 5, generator=g),
        "goal": torch.randn(batch, 2, 2, generator=g),
        "wrist": torch.randint(0, 256, (batch, 2, 24, 32, 3), generator=g, dtype=torch.uint8),
        "front": torch.randint(0, 256, (batch, 2, 16, 16, 1), generator=g, dtype=torch.uint8),
    }


def test_observation_encoder_uint8_hwc_images():
    enc = _obs_encoder()
    obs = _obs()
    out = enc(obs)
    assert enc.out_dim == 2 * (5 + 2 + 2 * 8) == 46
    assert out.shape == (3, 46) and out.dtype == torch.float32
    # Low-dim values pass through untouched: step 0 starts with goal then state.
    torch.testing.assert_close(out[:, :7], torch.cat([obs["goal"][:, 0], obs["state"][:, 0]], -1))
    # uint8 HWC gives the same features as the equivalent float CHW in [0, 1].
    as_float = dict(obs)
    for key in ("wrist", "front"):
        as_float[key] = obs[key].permute(0, 1, 4, 2, 3).float() / 255
    torch.testing.assert_close(enc(as_float), out)
    # Each image key has its own encoder, and each time step is encoded separately.
    assert set(enc.image_encoders) == {"front", "wrist"}
    swapped = dict(obs, wrist=obs["wrist"].flip(1))
    assert not torch.allclose(enc(swapped), out)


def test_observation_encoder_missing_key():
    enc = _obs_encoder()
    for key in ("state", "wrist"):
        obs = _obs()
        del obs[key]
        with pytest.raises(KeyError, match=key):
            enc(obs)


def test_observation_encoder_wrong_shapes():
    enc = _obs_encoder()
    bad_image = dict(_obs(), wrist=torch.zeros(3, 2, 32, 24, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="wrist"):
        enc(bad_image)
    bad_steps = dict(_obs(), state=torch.zeros(3, 3, 5))
    with pytest.raises(ValueError, match="state"):
        enc(bad_steps)


# --- gradients and training -------------------------------------------------------------


def test_every_parameter_gets_a_gradient():
    """No unused parameters (DistributedDataParallel would need find_unused_parameters)."""
    x, t, cond = _inputs(3, 8, 2)
    for net in (_small_unet(2), _randomised_mlp_denoiser(2, 8)):
        net(x, t, cond).square().mean().backward()
        _assert_all_grads_nonzero(net)

    mlp = MLPResNet(6, 4, hidden_dim=16, n_blocks=2)
    mlp(torch.randn(5, 6)).square().mean().backward()
    _assert_all_grads_nonzero(mlp)

    enc = _obs_encoder()
    enc(_obs()).square().mean().backward()
    _assert_all_grads_nonzero(enc)


def test_zero_initialised_mlp_denoiser_still_reaches_every_parameter():
    net = MLPResNetDenoiser(2, 8, COND_DIM, hidden_dim=16, n_blocks=2, time_dim=8)
    x, t, cond = _inputs(3, 8, 2)
    (net(x, t, cond) - x).square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert net.mlp.output_proj.weight.grad.abs().sum() > 0


def test_tiny_unet_overfits_a_fixed_chunk():
    torch.manual_seed(0)
    unet = ConditionalUnet1D(2, 4, down_dims=(16, 32), time_dim=16)
    x, t = torch.randn(4, 8, 2), torch.tensor([0, 10, 50, 99])
    cond, target = torch.randn(4, 4), torch.randn(4, 8, 2)
    optimiser = torch.optim.Adam(unet.parameters(), lr=3e-3)
    for _ in range(200):
        loss = (unet(x, t, cond) - target).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 1e-3
