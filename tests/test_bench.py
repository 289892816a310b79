"""`robo bench`: records for what each head declares, measured nfe, and clear errors."""

import json

import pytest

from robo_policies.cli.main import main
from robo_policies.commands import bench
from robo_policies.heads import head_class, head_names
from robo_policies.policy import PolicyConfig

INFERENCE_KEYS = ["head", "sampler", "steps", "nfe", "threads", "model", "ms_p50", "ms_p95", "ms_per_action_p50"]
TRAIN_KEYS = ["head", "samples_per_obs", "obs", "obs_per_s", "denoise_samples_per_s", "peak_mem_mb"]


def test_bench_inference_times_what_every_head_declares(tmp_path, capsys):
    out = tmp_path / "inference.json"
    assert main(["bench", "inference", f"out={out}", "models=[mlp]", "threads=[1]", "calls=2"]) == 0
    records = json.loads(out.read_text())
    declared = [(name, sampler.name, sampler.steps)
                for name in head_names() for sampler in head_class(name).bench_samplers]
    assert [(r["head"], r["sampler"], r["steps"]) for r in records] == declared
    assert {"diffusion", "flow", "energy", "mlp_bc"} <= {r["head"] for r in records}
    ta = PolicyConfig().n_action_steps
    for r in records:
        assert list(r) == INFERENCE_KEYS and r["ms_p95"] >= r["ms_p50"] > 0
        assert r["ms_per_action_p50"] == pytest.approx(r["ms_p50"] / ta)
    # nfe is measured from the head: warm-started calls take the warm steps, a second-order
    # solver calls the network twice per step but once on the last, the energy head can stop early.
    nfe = {(r["head"], r["sampler"], r["steps"]): r["nfe"] for r in records}
    assert nfe[("diffusion", "ddpm", 100)] == 100 and nfe[("flow", "heun", 2)] == 3
    assert nfe[("diffusion", "rti", 3)] == 3 and nfe[("flow", "rti", 3)] == 3
    assert nfe[("energy", "fixed", 2)] == 2 and 2 <= nfe[("energy", "adaptive", 4)] <= 4
    assert "ms_p50" in capsys.readouterr().out  # the table


def test_a_head_without_a_backbone_is_timed_once(monkeypatch):
    monkeypatch.setitem(bench.MODELS, "tiny_unet", PolicyConfig(net="unet", down_dims=[8], time_dim=8))
    records = bench.bench_inference(models=["mlp", "tiny_unet"], threads=[1], calls=1, warmup=0)
    models = {(r["head"], r["model"]) for r in records}
    assert ("mlp_bc", "mlp") in models and ("mlp_bc", "tiny_unet") not in models
    assert {("flow", "mlp"), ("flow", "tiny_unet")} <= models


def test_bench_train_writes_a_record_per_configuration(tmp_path):
    out = tmp_path / "train.json"
    assert main(["bench", "train", f"out={out}", "heads=[flow]", "samples_per_obs=[1,4]",
                 "obs=[low_dim]", "steps=1", "batch_size=4", "threads=1"]) == 0
    records = json.loads(out.read_text())
    assert [(r["head"], r["samples_per_obs"], r["obs"]) for r in records] == [
        ("flow", 1, "low_dim"), ("flow", 4, "low_dim")]
    for r in records:
        assert list(r)[:6] == TRAIN_KEYS
        assert r["denoise_samples_per_s"] == pytest.approx(r["obs_per_s"] * r["samples_per_obs"])


@pytest.mark.parametrize("command, message", [
    (["inference", "models=[resnet]"], "unknown model ['resnet']"),
    (["train", "heads=[transformer]"], "unknown head ['transformer']"),
])
def test_bench_names_an_unknown_choice(tmp_path, capsys, command, message):
    verb, *settings = command
    assert main(["bench", verb, f"out={tmp_path / 'x.json'}", *settings]) == 2
    assert message in capsys.readouterr().err
