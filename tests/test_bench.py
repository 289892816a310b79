"""`robo bench`: the JSON records and their keys, and clear errors for unknown choices."""

import json

import pytest

from robo_policies.cli.main import main

INFERENCE_KEYS = ["head", "sampler", "steps", "nfe", "threads", "model", "ms_p50", "ms_p95", "ms_per_action_p50"]
TRAIN_KEYS = ["head", "samples_per_obs", "obs", "obs_per_s", "denoise_samples_per_s", "peak_mem_mb"]


def test_bench_inference_writes_a_record_per_sampler(tmp_path, capsys):
    out = tmp_path / "inference.json"
    assert main(["bench", "inference", f"out={out}", "models=[mlp]", "threads=[1]", "calls=2"]) == 0
    records = json.loads(out.read_text())
    samplers = [(r["head"], r["sampler"], r["steps"]) for r in records]
    assert samplers == [("diffusion", "ddpm", 100), ("diffusion", "ddim", 10), ("diffusion", "rti", 3),
                        ("flow", "euler", 1), ("flow", "euler", 2), ("flow", "euler", 5),
                        ("flow", "euler", 10), ("flow", "heun", 2), ("flow", "rti", 3),
                        ("energy", "adaptive", 4), ("energy", "fixed", 2), ("mlp_bc", "regression", 1)]
    assert all(list(r) == INFERENCE_KEYS and r["ms_p95"] >= r["ms_p50"] > 0 for r in records)
    assert all(r["ms_per_action_p50"] == pytest.approx(r["ms_p50"] / 8) for r in records)  # Ta 8
    nfe = {(r["head"], r["sampler"], r["steps"]): r["nfe"] for r in records}
    assert nfe[("diffusion", "ddpm", 100)] == 100 and nfe[("flow", "heun", 2)] == 3
    assert nfe[("diffusion", "rti", 3)] == 3 and nfe[("flow", "rti", 3)] == 3  # warm calls
    assert nfe[("energy", "fixed", 2)] == 2 and 2 <= nfe[("energy", "adaptive", 4)] <= 4
    assert "ms_p50" in capsys.readouterr().out  # the table


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
        assert r["peak_mem_mb"] >= 0


def test_bench_names_an_unknown_model(tmp_path, capsys):
    assert main(["bench", "inference", f"out={tmp_path / 'x.json'}", "models=[resnet]"]) == 1
    assert "unknown model ['resnet']" in capsys.readouterr().err
