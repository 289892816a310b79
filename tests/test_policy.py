"""Policy: action queue and history, save/load round trip, and clear errors for bad files."""

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from robo_policies.data import Normalizer
from robo_policies.policy import Policy, PolicyConfig, history_batch, migrate_flat_config
from robo_policies.utils.errors import CheckpointError, ConfigError
from tiny_policies import tiny_config

SHAPES = {"pos": (3,), "goal": (2,)}


def make_policy(head="diffusion", **overrides) -> Policy:
    rng = np.random.default_rng(0)
    arrays = {"pos": rng.normal(size=(50, 3)), "goal": rng.normal(size=(50, 2)),
              "action": rng.uniform(-2, 2, size=(50, 2))}
    normalizer = Normalizer.fit(arrays, {"pos": "minmax", "goal": "minmax", "action": "minmax"})
    config = tiny_config(head, **overrides)
    torch.manual_seed(0)
    return Policy(config, SHAPES, [], action_dim=2, normalizer=normalizer)


def observation(step: int) -> dict[str, np.ndarray]:
    return {"pos": np.full(3, step, np.float32), "goal": np.zeros(2, np.float32)}


def test_model_runs_once_per_executed_chunk():
    policy = make_policy(n_action_steps=4)
    actions = [policy.act(observation(t)) for t in range(10)]
    assert len(policy.model_call_ms) == 3  # steps 0, 4 and 8
    assert all(a.shape == (2,) for a in actions)
    policy.reset()
    policy.act(observation(0))
    assert len(policy.model_call_ms) == 4  # reset empties the queue


def test_history_repeats_the_first_observation_until_full():
    policy = make_policy(n_obs_steps=3, horizon=8, n_action_steps=2)
    policy.act(observation(5))
    batch = history_batch(list(policy.episode.history), policy.obs_shapes, 3)
    assert batch["pos"].shape == (1, 3, 3) and torch.all(batch["pos"] == 5)
    policy.act(observation(6))
    policy.act(observation(7))
    assert history_batch(list(policy.episode.history), policy.obs_shapes, 3)["pos"][0, :, 0].tolist() == [5, 6, 7]


def test_action_steps_must_fit_the_horizon():
    with pytest.raises(ValueError, match="n_action_steps=16 must be in"):
        make_policy(n_action_steps=16)


@pytest.mark.parametrize("head", ["diffusion", "flow", "energy", "mlp_bc"])
def test_save_load_round_trip(tmp_path, head):
    policy = make_policy(head)
    ema = make_policy(head)
    policy.save(tmp_path / "p", ema=ema, metadata={"task": "toy"})
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "config.yaml", "ema.safetensors", "model.safetensors"]
    obs = {"pos": torch.ones(4, 2, 3), "goal": torch.zeros(4, 2, 2)}
    for use_ema, source in ((True, ema), (False, policy)):
        loaded = Policy.load(tmp_path / "p", use_ema=use_ema)
        source.generator.manual_seed(0)
        loaded.generator.manual_seed(0)
        torch.testing.assert_close(loaded.predict_chunk(obs), source.predict_chunk(obs))
    loaded.generator.manual_seed(1)
    assert loaded.predict_chunk(obs).shape == (4, 16, 2)


def test_load_names_a_missing_or_tampered_file(tmp_path):
    make_policy().save(tmp_path / "p")
    weights = tmp_path / "p" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model\.safetensors: checksum mismatch"):
        Policy.load(tmp_path / "p")
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors: weights file is missing"):
        Policy.load(tmp_path / "p")
    (tmp_path / "p" / "config.yaml").write_text("policy: [unclosed")
    with pytest.raises(ValueError, match=r"config\.yaml: invalid policy config"):
        Policy.load(tmp_path / "p")
    with pytest.raises(FileNotFoundError, match=r"nothing[/\\]config\.yaml"):
        Policy.load(tmp_path / "nothing")


def test_every_listed_weights_file_is_verified_not_only_the_one_loaded(tmp_path):
    make_policy().save(tmp_path / "p", ema=make_policy())
    Policy.load(tmp_path / "p")  # sound checkpoint: loads
    weights = tmp_path / "p" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    for use_ema in (True, False):  # the EMA is sound, but the checkpoint is not
        with pytest.raises(CheckpointError, match=r"model\.safetensors: checksum mismatch"):
            Policy.load(tmp_path / "p", use_ema=use_ema)


def test_the_loaded_weights_file_must_have_a_checksum(tmp_path):
    make_policy().save(tmp_path / "p")
    config = tmp_path / "p" / "config.yaml"
    description = yaml.safe_load(config.read_text())
    description["sha256"] = {}
    config.write_text(yaml.safe_dump(description))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: no checksum for it in .*config\.yaml"):
        Policy.load(tmp_path / "p")


def test_missing_observation_key_is_named():
    policy = make_policy()
    with pytest.raises(KeyError, match="goal"):
        policy.predict_chunk({"pos": torch.zeros(1, 2, 3)})


def test_flat_overrides_go_to_the_policy_or_its_head(tmp_path):
    make_policy("flow").save(tmp_path / "p")
    loaded = Policy.load(tmp_path / "p", overrides={"inference_steps": 7, "solver": "heun", "n_action_steps": 2})
    assert (loaded.head.inference_steps, loaded.head.solver, loaded.config.n_action_steps) == (7, "heun", 2)
    assert loaded.nfe == 13  # heun: 2 calls per step, 1 on the last
    with pytest.raises(ConfigError, match=r"\['scheduler'\] not settings of a 'flow' policy; .*"
                                          r"its head's: \['inference_steps', 'solver', 'time_sampling'\]"):
        Policy.load(tmp_path / "p", overrides={"scheduler": "ddpm"})


def test_the_saved_config_nests_the_head_settings(tmp_path):
    make_policy("energy", best_of=3).save(tmp_path / "p")
    saved = yaml.safe_load((tmp_path / "p" / "config.yaml").read_text())["policy"]
    assert saved["head"] == {"name": "energy", "inference_steps": 4, "min_grad_norm": 1e-3,
                             "train_steps": [2, 2], "step_size": 1.0, "max_step_size": 2.0,
                             "langevin_sigma": [0.2, 0.002], "best_of": 3}
    assert "best_of" not in saved and "inference_steps" not in saved


FLAT = {  # a policy config.yaml as written before heads had their own configs
    "head": "flow", "net": "mlp", "samples_per_obs": 1, "n_obs_steps": 2, "horizon": 16,
    "n_action_steps": 8, "obs_keys": [], "down_dims": [64, 128, 256], "kernel_size": 5,
    "hidden_dim": 32, "n_blocks": 1, "time_dim": 16, "train_steps": 100, "inference_steps": 4,
    "scheduler": "ddim", "prediction": "epsilon", "flow_solver": "heun", "flow_time_sampling": "beta",
    "energy_min_grad_norm": 0.001, "energy_train_steps": [2, 2], "energy_step_size": 1.0,
    "energy_max_step_size": 2.0, "energy_langevin_sigma": [0.2, 0.002], "energy_best_of": 1,
    "image_feature_dim": 64, "obs_norm": "minmax", "action_norm": "minmax",
}


@pytest.mark.parametrize("head, expected", [
    ("flow", {"name": "flow", "inference_steps": 4, "solver": "heun", "time_sampling": "beta"}),
    ("energy", {"name": "energy", "inference_steps": 4, "min_grad_norm": 0.001, "train_steps": [2, 2],
                "step_size": 1.0, "max_step_size": 2.0, "langevin_sigma": [0.2, 0.002], "best_of": 1}),
    ("mlp_bc", {"name": "mlp_bc"}),
])
def test_an_old_flat_config_is_migrated(head, expected):
    migrated = migrate_flat_config({**FLAT, "head": head})
    assert migrated["head"] == expected
    assert {k: v for k, v in migrated.items() if k != "head"} == {
        k: FLAT[k] for k in PolicyConfig().shared_settings() if k in FLAT}


def test_a_policy_saved_in_the_old_flat_layout_still_loads(tmp_path):
    policy = make_policy("flow", solver="heun", time_sampling="beta")
    policy.save(tmp_path / "p")
    path = tmp_path / "p" / "config.yaml"
    description = yaml.safe_load(path.read_text())
    description["policy"] = {**FLAT, "obs_keys": description["policy"]["obs_keys"]}
    path.write_text(yaml.safe_dump(description))
    loaded = Policy.load(tmp_path / "p", use_ema=False)
    assert loaded.config == dataclasses.replace(policy.config, crop_ratio=1.0)  # it predates crops
    obs = {"pos": torch.ones(2, 2, 3), "goal": torch.zeros(2, 2, 2)}
    policy.generator.manual_seed(0)
    loaded.generator.manual_seed(0)
    torch.testing.assert_close(loaded.predict_chunk(obs), policy.predict_chunk(obs))
