"""Adding an RL algorithm from outside the project: the toy plugin (``plugins/toy_algo.py``,
one module plus a preset) fine-tunes through ``robo finetune algo=toy``, its own setting
reaches the saved agent, and ``robo eval`` acts with it."""

import json

import numpy as np
import pytest
import torch
import yaml

from robo_policies.checkpoints import load_saved
from robo_policies.envs import get_task, register_task, task_names
from robo_policies.envs.collect import collect
from toy_task import TOY_TASK

TINY_TRAIN = ["policy.net=mlp", "policy.hidden_dim=16", "policy.n_blocks=1", "policy.time_dim=8",
              "policy.horizon=4", "policy.n_action_steps=2", "train.steps=10", "train.batch_size=16",
              "train.threads=1", "progress=false"]


@pytest.fixture(scope="module")
def toy_policy(tmp_path_factory):
    """A tiny diffusion policy trained briefly on toy_reach demonstrations."""
    from robo_policies.cli.main import main

    if TOY_TASK.name not in task_names():
        register_task(TOY_TASK)  # fine-tuning and evaluation build the policy's recorded task
    root = tmp_path_factory.mktemp("toy_algo")
    collect(get_task(TOY_TASK.name), root / "toy.zarr", episodes=6, seed=0, progress=False)
    assert main(["train", f"dataset={root / 'toy.zarr'}", f"out={root / 'policy'}", *TINY_TRAIN]) == 0
    return root / "policy"


@pytest.mark.parametrize("setting,offset", [("rl.action_offset=-2.0", -2.0), ("rl=toy_away", 2.0)])
def test_a_plugin_algorithm_fine_tunes_and_evaluates_through_the_cli(tmp_path, monkeypatch, robo, toy_policy,
                                                                     setting, offset):
    """The offset (set directly or by the plugin's preset) saturates every normalised action at
    -1 or 1: the saved agent acts at that bound of the demonstrations' actions, and ``robo
    eval`` on the fine-tuning's evaluation seeds scores what its last evaluation did."""
    monkeypatch.setenv("ROBO_PLUGINS", "plugins.toy_algo")
    out = tmp_path / "toy"
    run = robo("finetune", f"checkpoint={toy_policy}", "algo=toy", setting, "rl.start_steps=0",
               "rl.inference_steps=2", "env_steps=16", "eval_every=16", "episodes=2", "video_episodes=0",
               "progress=false", f"out={out}")
    assert run.code == 0, run.err
    description = yaml.safe_load((out / "checkpoint" / "finetuned.yaml").read_text())
    assert description["algo"] == "toy" and description["config"]["action_offset"] == offset
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "toy" and summary["env_steps"] >= 16  # whole episodes

    agent = load_saved(out / "checkpoint")
    bound = agent.agent.acting_policy.normalizer.unnormalize("action", torch.full((1, 1), offset / 2))
    torch.testing.assert_close(torch.as_tensor(agent.act({"pos": np.array([3.0], np.float32)})), bound[0])

    run = robo("eval", f"checkpoint={out}", "episodes=2", "video_episodes=0", "progress=false")
    assert run.code == 0, run.err
    result = json.loads((out / "eval.json").read_text())
    final = json.loads((out / "curve.json").read_text())[-1]
    assert (result["episodes"], result["success_rate"]) == (2, final["success_rate"])


def test_a_setting_the_plugin_algorithm_does_not_have_is_an_error(tmp_path, monkeypatch, robo, toy_policy):
    monkeypatch.setenv("ROBO_PLUGINS", "plugins.toy_algo")
    run = robo("finetune", f"checkpoint={toy_policy}", "algo=toy", "+rl.n_edit=3", f"out={tmp_path / 'x'}")
    assert run.code == 2
    assert "rl.n_edit: not a setting of algo=toy (its settings: gamma," in run.err
    assert "action_offset" in run.err
