"""CPU defaults: torch threads leave a core to the rest of the machine (utils/threads.py), and
`robo train` without policy settings trains the demo's CPU recipe."""

import os

import pytest
import torch

from robo_policies.utils import threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, expected", [({0}, 1), ({0, 1}, 1), ({0, 1, 2, 3}, 3), (set(range(16)), 15)])
def test_the_default_is_every_core_the_process_may_use_but_one(monkeypatch, restore_threads, cores, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cores)
    assert threads.available_cores() == len(cores)
    assert threads.use_threads(0) == expected and torch.get_num_threads() == expected


def test_an_explicit_count_is_used_and_a_negative_one_refused(restore_threads):
    assert threads.use_threads(3) == 3 and torch.get_num_threads() == 3
    with pytest.raises(ValueError, match=r"threads must be >= 0 \(0: all available cores but one\), got -1"):
        threads.use_threads(-1)


def test_robo_train_defaults_to_the_cpu_recipe_for_any_dataset():
    """No policy settings: the MLP denoiser with x0-prediction (the demo's recipe), not the UNet."""
    from robo_policies.commands.model_config import train_run_config

    cfg = train_run_config(["dataset=data/anything.zarr"])
    assert cfg.policy.net == "mlp" and cfg.policy.head.name == "diffusion"
    assert cfg.policy.head.prediction == "sample" and cfg.policy.head.scheduler == "ddim"
    assert cfg.policy.head.inference_steps == 10 and cfg.train.steps == 3000 and cfg.train.threads == 0
    for head in ("flow", "energy"):
        assert train_run_config(["dataset=data/anything.zarr", f"policy={head}"]).policy.net == "mlp"
    unet = train_run_config(["dataset=d.zarr", "policy=diffusion_dp_paper", "train=dp_paper"])
    assert unet.policy.net == "unet" and unet.policy.head.prediction == "epsilon"


def test_the_projected_run_time_reads_in_seconds_or_minutes():
    from robo_policies.train.trainer import projected_time

    assert projected_time(0.4, 20, 3000) == "20.0 ms per step over the first 20: the 3000 left take about 60 s"
    assert projected_time(2.0, 20, 12000) == "100.0 ms per step over the first 20: the 12000 left take about 20.0 min"
