"""Image encoders of policies that see: augmentation inside the encoder (random crop and colour
jitter in training, centre crop when acting), the small CNN and the ResNet-18 with GroupNorm,
a shared encoder, image policies' mini-batched default, and saved image policies."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from robo_policies.nets.encoders import IMAGE_ENCODERS, ImageAugmentation, ObservationEncoder
from robo_policies.policy import Policy, PolicyConfig
from robo_policies.utils.errors import ConfigError
from tiny_policies import tiny_config

SIDE, CROP = 84, 76
CAMERAS = {"front_image": (SIDE, SIDE, 3), "wrist_image": (SIDE, SIDE, 3)}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: faster than two on the shared 2-core machine. Restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _positions(batch: int, steps: int = 2) -> torch.Tensor:
    """(B, To, 1, 84, 84) images whose pixels hold their own (row, column) as row * 100 + column."""
    rows, cols = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    return (rows * 100 + cols).float().expand(batch, steps, 1, SIDE, SIDE)


def _frames(batch: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {key: torch.randint(0, 256, (batch, 2, *shape), generator=g, dtype=torch.uint8)
            for key, shape in CAMERAS.items()}


def _image_policy(**overrides) -> Policy:
    torch.manual_seed(0)
    config = tiny_config("diffusion", **overrides)
    return Policy(config, {"joint_pos": (3,), **CAMERAS}, sorted(CAMERAS), action_dim=2)


@pytest.mark.parametrize("encoder", sorted(IMAGE_ENCODERS))
@pytest.mark.parametrize("crop_ratio", [0.9, 1.0])
def test_both_encoders_take_84x84_frames_with_and_without_crop(encoder, crop_ratio):
    torch.manual_seed(0)
    net = ObservationEncoder({}, {"cam": (3, SIDE, SIDE)}, n_obs_steps=2, image_feature_dim=16,
                             encoder=encoder, crop_ratio=crop_ratio)
    obs = {"cam": _frames()["front_image"]}
    assert net.augment.crop_size(SIDE, SIDE) == ((CROP, CROP) if crop_ratio < 1 else (SIDE, SIDE))
    out = net.train()(obs)
    assert out.shape == (2, 2 * 16) == (2, net.out_dim)
    out.square().mean().backward()  # every weight is used (DistributedDataParallel needs it)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert net.eval()(obs).shape == (2, 32)


def test_training_crops_are_random_per_sample_and_acting_takes_the_centre():
    augment = ImageAugmentation(crop_ratio=0.9)
    images = _positions(batch=16)
    torch.manual_seed(0)
    first, second = augment.train()(images), augment(images)
    assert first.shape == (16, 2, 1, CROP, CROP)
    assert not torch.equal(first, second)  # new crops each call
    corners = first[:, :, 0, 0, 0]  # row * 100 + column of each crop's top-left pixel
    assert torch.equal(corners[:, 0], corners[:, 1])  # one crop for a sample's To steps
    assert len(corners[:, 0].unique()) > 8  # each sample its own
    for sample, corner in zip(first, corners[:, 0].long().tolist()):
        top, left = divmod(corner, 100)
        assert 0 <= top <= SIDE - CROP and 0 <= left <= SIDE - CROP
        assert torch.equal(sample, images[0, :, :, top:top + CROP, left:left + CROP])
    torch.manual_seed(0)  # the draws come from torch's global RNG: seeded runs repeat
    assert torch.equal(augment(images), first)

    state = torch.get_rng_state()
    centre = augment.eval()(images)
    assert torch.equal(centre, images[..., 4:4 + CROP, 4:4 + CROP]) and torch.equal(augment(images), centre)
    assert torch.equal(torch.get_rng_state(), state)  # acting draws nothing


def test_colour_jitter_changes_images_only_in_training():
    augment = ImageAugmentation(crop_ratio=1.0, color_jitter=0.3)
    images = _frames(batch=4)["front_image"].permute(0, 1, 4, 2, 3).float() / 255
    jittered = augment.train()(images)
    assert jittered.shape == images.shape and 0 <= jittered.min() and jittered.max() <= 1
    assert ((jittered - images).abs().amax(dim=(1, 2, 3, 4)) > 0.01).all()  # every sample
    assert torch.equal(augment.eval()(images), images)
    state = torch.get_rng_state()
    assert torch.equal(ImageAugmentation().train()(images), images)  # off: untouched, no draws
    assert torch.equal(torch.get_rng_state(), state)


def test_resnet18_has_about_11m_parameters_and_no_batch_norm_anywhere():
    policy = _image_policy(encoder="resnet18")
    for name, encoder in policy.encoder.image_encoders.items():
        assert 10.5e6 < sum(p.numel() for p in encoder.parameters()) < 12e6, name
    cnn = IMAGE_ENCODERS["cnn"](3, 64)
    assert sum(p.numel() for p in cnn.parameters()) < 0.2e6
    for net in (policy, cnn):
        assert any(isinstance(m, nn.GroupNorm) for m in net.modules())
        assert not any("BatchNorm" in type(m).__name__ for m in net.modules())


def test_a_resnet18_policy_with_a_shared_encoder_saves_loads_and_acts_identically(tmp_path):
    policy = _image_policy(encoder="resnet18", shared_encoder=True, color_jitter=0.1)
    assert list(policy.encoder.image_encoders) == ["shared"]  # one encoder for both cameras
    policy.save(tmp_path / "p")
    saved = yaml.safe_load((tmp_path / "p" / "config.yaml").read_text())["policy"]
    assert {k: saved[k] for k in ("encoder", "shared_encoder", "crop_ratio", "color_jitter",
                                  "samples_per_obs")} == {
        "encoder": "resnet18", "shared_encoder": True, "crop_ratio": 0.9, "color_jitter": 0.1,
        "samples_per_obs": 8}
    loaded = Policy.load(tmp_path / "p")
    assert loaded.config == policy.config and not loaded.training
    obs = {"joint_pos": torch.randn(1, 2, 3), **_frames(batch=1)}
    policy.eval()
    policy.generator.manual_seed(0)
    loaded.generator.manual_seed(0)
    torch.testing.assert_close(loaded.predict_chunk(obs), policy.predict_chunk(obs), rtol=0, atol=0)


def test_image_policies_default_to_eight_samples_per_observation_low_dim_ones_to_one():
    assert PolicyConfig().samples_per_obs is None  # unset: chosen by what the policy sees
    assert _image_policy(encoder="cnn").config.samples_per_obs == 8
    assert _image_policy(encoder="cnn", samples_per_obs=2).config.samples_per_obs == 2
    low_dim = Policy(tiny_config("flow"), {"pos": (3,)}, [], action_dim=2)
    assert low_dim.config.samples_per_obs == 1


def test_an_image_policy_saved_before_crops_still_acts_without_them(tmp_path):
    policy = _image_policy(crop_ratio=1.0)
    policy.save(tmp_path / "p")
    path = tmp_path / "p" / "config.yaml"
    description = yaml.safe_load(path.read_text())
    for key in ("encoder", "shared_encoder", "crop_ratio", "color_jitter"):
        del description["policy"][key]
    path.write_text(yaml.safe_dump(description))
    loaded = Policy.load(tmp_path / "p", use_ema=False)
    assert loaded.config == policy.config  # cnn, one per camera, no crop, no jitter
    obs = {"joint_pos": torch.randn(1, 2, 3), **_frames(batch=1)}
    torch.testing.assert_close(loaded.encode(obs), policy.eval().encode(obs), rtol=0, atol=0)


@pytest.mark.parametrize("settings, message", [
    ({"encoder": "vit"}, r"encoder='vit' is not one of \['cnn', 'resnet18'\]"),
    ({"crop_ratio": 0.0}, r"crop_ratio=0.0 must be in \(0, 1\]"),
    ({"color_jitter": 1.5}, r"color_jitter=1.5 must be in \[0, 1\)"),
])
def test_bad_encoder_settings_are_named(settings, message):
    with pytest.raises(ConfigError, match=message):
        _image_policy(**settings)


def test_a_shared_encoder_needs_cameras_with_one_channel_count():
    with pytest.raises(ConfigError, match=r"shared_encoder needs cameras with one channel count"):
        ObservationEncoder({}, {"rgb": (3, 32, 32), "depth": (1, 32, 32)}, 2, shared_encoder=True)
