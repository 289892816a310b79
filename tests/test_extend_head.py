"""A head from outside the project (tests/plugins/toy_head.py + configs/policy/toy.yaml) is
trained, evaluated, warm-started and composed through `robo` without editing a project file."""

import json

import pytest
import torch
import yaml
from toy_task import TOY_TASK

from robo_policies.checkpoints import load_saved
from robo_policies.cli.main import main
from robo_policies.envs import register_task, task_names
from robo_policies.policy import Policy, PolicyConfig

PLUGIN = "plugins.toy_head"
COMMON = ["progress=false"]


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    """A toy-task dataset and two toy-head policies trained on it by `robo` (seeds 0 and 1;
    the first with ``policy.head.schedule_power=3``)."""
    if TOY_TASK.name not in task_names():
        register_task(TOY_TASK)
    root = tmp_path_factory.mktemp("extend_head")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROBO_PLUGINS", PLUGIN)
        data = root / "toy.zarr"
        assert main(["collect", f"task.name={TOY_TASK.name}", "episodes=6", f"out={data}", *COMMON]) == 0
        runs = [root / "a", root / "b"]
        for seed, (run, power) in enumerate(zip(runs, ("3.0", "2.0"))):
            assert main(["train", "policy=toy", f"policy.head.schedule_power={power}",
                         f"task.name={TOY_TASK.name}", f"dataset={data}", f"out={run}",
                         "train.steps=30", "train.batch_size=16", "train.threads=1",
                         f"seed={seed}", *COMMON]) == 0
        yield runs


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.setenv("ROBO_PLUGINS", PLUGIN)


def test_the_saved_policy_names_its_head_and_keeps_the_new_setting(toy_runs):
    saved = yaml.safe_load((toy_runs[0] / "checkpoint" / "config.yaml").read_text())["policy"]
    assert saved["head"] == {"name": "toy", "inference_steps": 3, "schedule_power": 3.0}
    assert (saved["net"], saved["horizon"], saved["n_action_steps"]) == ("mlp", 8, 4)  # toy.yaml
    policy = Policy.load(toy_runs[0] / "checkpoint")
    assert type(policy.head).__name__ == "ToyHead" and policy.head.schedule_power == 3.0


def test_robo_eval_runs_full_solves_and_rti_warm_starts(toy_runs, tmp_path, plugin):
    checkpoint = f"checkpoint={toy_runs[0]}"
    assert main(["eval", checkpoint, "episodes=1", "video_episodes=0", f"out={tmp_path / 'full'}",
                 *COMMON]) == 0
    full = json.loads((tmp_path / "full" / "eval.json").read_text())
    assert full["episodes"] == 1 and len(full["records"]) == 1 and full["seed"] == 100000
    assert full["nfe"] == 3 and full["sampler"] == {"name": "full"}

    assert main(["eval", checkpoint, "episodes=1", "video_episodes=0", "sampler=rti", "rti.steps=2",
                 "sampling.n_action_steps=1", "sampling.schedule_power=1.0",
                 f"out={tmp_path / 'rti'}", *COMMON]) == 0
    rti = json.loads((tmp_path / "rti" / "eval.json").read_text())
    record = rti["records"][0]
    assert rti["sampler"]["name"] == "rti" and rti["sampler"]["steps"] == 2
    assert record["model_calls"] == record["length"] >= 2  # Ta 1: a call per step (>= 2 steps to reach 0)
    assert rti["nfe"] == 2  # every call after an episode's first is a 2-step warm start


def test_sampling_keys_the_head_lacks_and_misspelt_head_keys_are_errors(toy_runs, plugin, capsys):
    assert main(["eval", f"checkpoint={toy_runs[0]}", "episodes=1", "sampling.solver=heun", *COMMON]) == 2
    assert "['solver'] not settings of a 'toy' policy" in capsys.readouterr().err
    assert main(["train", "policy=toy", "policy.head.schedule_powr=2", "train.steps=1", *COMMON]) == 2
    assert "schedule_powr" in capsys.readouterr().err


def test_robo_compose_searches_two_toy_policies(toy_runs, tmp_path, plugin):
    out = tmp_path / "search"
    assert main(["compose", f"checkpoints=[{toy_runs[0]},{toy_runs[1]}]", "step=0.5", "episodes=1",
                 f"out={out}", *COMMON]) == 0
    report = json.loads((out / "search.json").read_text())
    assert [c["weights"] for c in report["candidates"]] == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    composed = load_saved(out / "checkpoint")
    assert list(composed.weights) == report["best"]["weights"]
    assert [parent.config.head.schedule_power for parent in composed.parents] == [3.0, 2.0]
    assert main(["eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", *COMMON]) == 0
    assert json.loads((out / "eval.json").read_text())["nfe"] == 6  # 2 parents x 3 steps


def test_the_toy_grid_follows_its_power():
    """The new setting does what its docstring says (no CLI: the unit-level check)."""
    import plugins.toy_head  # noqa: F401  (registers the head)

    config = PolicyConfig(head={"name": "toy", "schedule_power": 2.0}, net="mlp", hidden_dim=16,
                          n_blocks=1, time_dim=8, horizon=8, n_action_steps=4)
    policy = Policy(config, {"pos": (1,)}, [], action_dim=1)
    grid = policy.head.time_grid(4, None, torch.device("cpu"))
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]) ** 2)
    assert policy.head.warm_start_time(1.0, 2, torch.device("cpu")) == pytest.approx(0.5)
