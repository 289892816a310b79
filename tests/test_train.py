"""Training end to end: run layout, exact resume after SIGKILL, torchrun, robomimic data, gym ids."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from robo_policies.cli.main import main
from robo_policies.data.convert import convert
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.policy import Policy, PolicyConfig
from robo_policies.utils.scalars import ScalarLog

TINY = ["policy.net=mlp", "policy.hidden_dim=32", "policy.n_blocks=1", "policy.time_dim=16",
        "train.batch_size=32", "train.threads=1", "progress=false"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "nav.zarr"
    collect(get_task("diffdrive_nav"), path, episodes=6, seed=0, progress=False)
    return path


def train_args(dataset, out, steps, *extra, policy="diffusion"):
    """`robo train` of a tiny ``policy`` (2 solver steps where its head has steps)."""
    steps_setting = "inference_steps" in PolicyConfig(head=policy).setting_names()
    head = ["policy.head.inference_steps=2"] if steps_setting else []
    return ["train", f"dataset={dataset}", f"out={out}", f"train.steps={steps}", f"policy={policy}",
            *TINY, *head, *extra]


def run_robo(*args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "robo_policies", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("policy", ["diffusion", "flow", "energy", "mlp_bc"])
def test_run_writes_checkpoints_logs_and_curve(tmp_path, dataset, policy):
    out = tmp_path / "run"
    assert main(train_args(dataset, out, 60, "train.log_every=20", "train.checkpoint_every=30",
                           "train.eval_every=30", "train.eval_episodes=1", "seed=3", policy=policy)) == 0
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == [
        "config.yaml", "ema.safetensors", "model.safetensors"]
    assert (out / "checkpoints" / "last").read_text().strip() == "step_0000060"
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == [
        "step_0000030", "step_0000060"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in rows if "eval_success_rate" in row]
    assert [row["step"] for row in evals] == [30, 60]
    rows = [row for row in rows if "train_loss" in row]
    assert [row["step"] for row in rows] == [20, 40, 60]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert (out / "curve.png").stat().st_size > 1000
    assert "seed: 3" in (out / "config.yaml").read_text()
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 60


def test_existing_run_needs_resume(tmp_path, dataset, robo):
    out = tmp_path / "run"
    assert main(train_args(dataset, out, 5)) == 0
    result = robo(*train_args(dataset, out, 10))
    assert result.code == 2 and "pass resume=true" in result.err
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 5  # untouched


@pytest.mark.parametrize("setting", ["train.steps=-5", "train.steps=0", "train.batch_size=0",
                                     "train.checkpoint_every=0", "train.val_ratio=1.5"])
def test_out_of_range_train_settings_fail_before_any_work(tmp_path, dataset, robo, setting):
    out = tmp_path / "run"
    result = robo(*train_args(dataset, out, 5), setting)
    key, value = setting.split("=")
    assert result.code == 2 and f"{key}={value} must be" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not out.exists()  # no checkpoint, no run directory


def test_resume_without_a_run_is_an_error_naming_the_directory(tmp_path, dataset, robo):
    out = tmp_path / "never_ran"
    result = robo(*train_args(dataset, out, 5), "resume=true")
    assert result.code == 2 and f"{out} holds no run to resume" in result.err
    assert not out.exists()


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_it_over(tmp_path, dataset, robo):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("seed: 0\n")  # written at start; killed before a checkpoint
    result = robo(*train_args(dataset, out, 3), "resume=true")
    assert result.code == 0 and "no checkpoint yet; training from step 0" in result.err
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 3


@pytest.mark.parametrize("key", ["action", "goal"])
def test_non_finite_training_data_is_refused_naming_key_and_step(tmp_path, dataset, robo, key):
    import shutil

    import numpy as np
    import zarr

    copy = tmp_path / "nan.zarr"
    shutil.copytree(dataset, copy)
    array = zarr.open_group(str(copy), mode="r+")[f"data/{key}"]
    row = array[7].copy()
    row[0] = np.inf
    array[7] = row
    out = tmp_path / "run"
    result = robo(*train_args(copy, out, 5))
    assert result.code == 2 and f"'data/{key}' has inf at step 7 (episode 0)" in result.err
    assert not (out / "checkpoint").exists() and not (out / "checkpoints").exists()


def _delete_chunk(path):
    (path / "data" / "action" / "0.0").unlink()


def _truncate_chunk(path):
    chunk = path / "data" / "action" / "0.0"
    chunk.write_bytes(chunk.read_bytes()[:20])


def _delete_goal(path):
    import shutil

    shutil.rmtree(path / "data" / "goal")


def _drop_episodes(path):
    from robo_policies.data import ReplayBuffer

    ReplayBuffer.create(path, overwrite=True, attrs={"task": "diffdrive_nav"})


@pytest.mark.parametrize("damage,message,validates", [
    (_delete_chunk, "'data/action' is missing its chunk file '0.0' (rows 0:", False),
    (_truncate_chunk, "'data/action' is corrupt or truncated in rows 0:", False),
    (_delete_goal, "missing key 'data/goal' that task 'diffdrive_nav' observes", True),
    (_drop_episodes, "no episodes (meta/episode_ends is empty)", False),
], ids=["deleted_chunk", "corrupt_chunk", "missing_observation", "no_episodes"])
def test_a_damaged_dataset_is_refused_in_one_line_before_training(tmp_path, dataset, robo, damage, message,
                                                                   validates):
    """A missing chunk is not zeros, a key the task observes is not optional, no episodes is
    not OK: ``robo train`` stops before any work and ``robo dataset validate`` agrees (a
    dataset lacking an observation is valid data, just not enough for this task's policy)."""
    import shutil

    copy = tmp_path / "damaged.zarr"
    shutil.copytree(dataset, copy)
    damage(copy)
    out = tmp_path / "run"
    result = robo(*train_args(copy, out, 5))
    assert result.code == 2 and f"{copy}: " in result.err and message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (out / "checkpoint").exists() and not (out / "checkpoints").exists()
    checked = robo("dataset", "validate", copy)
    assert checked.code == (0 if validates else 1)
    assert validates or message in checked.err


def test_an_hdf5_dataset_is_named_with_the_command_that_converts_it(tmp_path, robo):
    import h5py

    path = tmp_path / "demos.hdf5"
    with h5py.File(path, "w") as f:
        f["data/demo_0/actions"] = [[0.0, 1.0]]
    result = robo(*train_args(path, tmp_path / "run", 5))
    assert result.code == 2 and f"{path}: this is an HDF5 file" in result.err
    assert f"robo dataset convert {path} {tmp_path / 'demos.zarr'}" in result.err


def assert_same_weights(run_a, run_b):
    for name in ("model.safetensors", "ema.safetensors"):
        expected = load_file(str(run_a / "checkpoint" / name))
        got = load_file(str(run_b / "checkpoint" / name))
        assert expected.keys() == got.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)


class Crash(BaseException):
    """Stands in for a kill: nothing in the trainer or the CLI catches it."""


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, dataset, monkeypatch):
    """The in-process twin of the SIGKILL test below: the run dies at step 30, between its
    checkpoints at 20 and 40, and resumes from 20."""
    steps = ["40", "train.checkpoint_every=20", "train.log_every=10", "seed=5"]
    assert main(train_args(dataset, tmp_path / "full", *steps)) == 0

    log = ScalarLog.log

    def log_then_crash(self, step, **values):
        log(self, step, **values)
        if step == 30:
            raise Crash

    monkeypatch.setattr(ScalarLog, "log", log_then_crash)
    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        main(train_args(dataset, crashed, *steps))
    monkeypatch.undo()
    assert (crashed / "checkpoints" / "last").read_text().strip() == "step_0000020"

    assert main(train_args(dataset, crashed, *steps, "resume=true")) == 0
    assert json.loads((crashed / "train_summary.json").read_text())["steps"] == 40
    assert_same_weights(tmp_path / "full", crashed)
    logged = [[json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
              for run in (tmp_path / "full", crashed)]
    assert logged[0] == logged[1] == [10, 20, 30, 40]  # the row logged at 30 before the crash is not kept twice


def test_a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path, dataset, monkeypatch, robo):
    compute_loss = Policy.compute_loss
    calls = []

    def diverge_at_step_15(self, batch):
        calls.extend([1] if self.training else [])  # validation losses are not training steps
        loss = compute_loss(self, batch)
        return loss * float("nan") if self.training and len(calls) == 15 else loss

    monkeypatch.setattr(Policy, "compute_loss", diverge_at_step_15)
    out = tmp_path / "run"
    run = robo(*train_args(dataset, out, "40", "train.checkpoint_every=10", "train.log_every=10",
                           "train.eval_every=0"))
    assert run.code == 2 and "the training loss is nan at step 15" in run.err
    assert (out / "checkpoints" / "last").read_text().strip() == "step_0000010"
    assert not (out / "checkpoint").exists()  # no final policy from a diverged run


KILL_AT_STEP_250 = """
import os, signal, sys
from robo_policies.cli.main import main
from robo_policies.utils.scalars import ScalarLog

log = ScalarLog.log

def log_then_die(self, step, **values):
    log(self, step, **values)
    if step == 250:
        os.kill(os.getpid(), signal.SIGKILL)

ScalarLog.log = log_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, dataset):
    steps = ["400", "train.checkpoint_every=100", "train.log_every=50", "seed=5"]
    full = run_robo(*train_args(dataset, tmp_path / "full", *steps))
    assert full.returncode == 0, full.stderr

    killed_out = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILL_AT_STEP_250,
                             *train_args(dataset, killed_out, *steps)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (killed_out / "checkpoints" / "last").read_text().strip() == "step_0000200"

    resumed = run_robo(*train_args(dataset, killed_out, *steps, "resume=true"))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((killed_out / "train_summary.json").read_text())["steps"] == 400
    assert_same_weights(tmp_path / "full", killed_out)


@pytest.mark.slow
def test_torchrun_two_processes_keep_identical_replicas(tmp_path, dataset, capsys):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "robo_policies", *train_args(dataset, out, 50)]
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 50
    assert len(summary["replica_digests"]) == 2
    assert summary["replica_digests"][0] == summary["replica_digests"][1]
    assert main(["eval", f"checkpoint={out}", "episodes=2", "video_episodes=0",
                 "progress=false"]) == 0
    assert json.loads((out / "eval.json").read_text())["episodes"] == 2


def test_robomimic_hdf5_trains_and_evaluates(tmp_path, dataset, read_video):
    hdf5 = tmp_path / "demos.hdf5"
    convert(dataset, hdf5)  # a robomimic-format file with this task's observation keys
    assert main(["dataset", "convert", str(hdf5), str(tmp_path / "back.zarr")]) == 0
    out = tmp_path / "run"
    assert main(train_args(tmp_path / "back.zarr", out, 20)) == 0
    assert main(["eval", f"checkpoint={out}", "task=diffdrive_nav", "episodes=2",
                 "video_episodes=1", "max_steps=20", "progress=false"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["episodes"] == 2 and report["nfe"] == 2
    frames, _ = read_video(out / "rollout.mp4")  # the first episode: after reset + every step
    assert len(frames) == report["records"][0]["length"] + 1


@pytest.mark.parametrize("policy, nfe", [("flow", 2), ("energy", 2)])
def test_robo_eval_evaluates_every_generative_head(tmp_path, dataset, policy, nfe, read_video):
    out = tmp_path / "run"
    assert main(train_args(dataset, out, 10, policy=policy)) == 0
    assert main(["eval", f"checkpoint={out}", "episodes=2", "video_episodes=1", "max_steps=10",
                 "progress=false"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["episodes"] == 2 and report["nfe"] == nfe
    assert all(r["length"] == 10 for r in report["records"])
    assert len(read_video(out / "rollout.mp4")[0]) == 11


def test_eval_changes_sampling_without_retraining(tmp_path, dataset):
    out = tmp_path / "run"
    assert main(train_args(dataset, out, 10)) == 0
    assert main(["eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", "max_steps=10",
                 "sampling.scheduler=ddpm", "sampling.inference_steps=7", "progress=false"]) == 0
    assert json.loads((out / "eval.json").read_text())["nfe"] == 7


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_weights_or_resume_file_is_refused_in_one_line(tmp_path, dataset, robo):
    """One flipped byte in the final weights stops ``robo eval``; one in a checkpoint's resume
    state stops ``resume=true`` before it trains or writes anything."""
    out = tmp_path / "run"
    assert main(train_args(dataset, out, 4, "train.checkpoint_every=2", "train.eval_every=0")) == 0
    weights = out / "checkpoint" / "model.safetensors"
    _flip_a_byte(weights)
    result = robo("eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", "progress=false")
    assert result.code == 2 and result.err.strip() == (
        f"error: {weights}: checksum mismatch with config.yaml (file modified or damaged)")
    assert not (out / "eval.json").exists()
    state = out / "checkpoints" / "step_0000004" / "training_state.pt"
    _flip_a_byte(state)
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    result = robo(*train_args(dataset, out, 8, "train.checkpoint_every=2", "train.eval_every=0"), "resume=true")
    assert result.code == 2 and result.err.strip() == (
        f"error: {state}: checksum mismatch with training_state.pt.sha256 (file modified or damaged)")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before


def test_a_policy_evaluates_with_the_env_settings_its_data_was_collected_with(tmp_path, monkeypatch):
    from robo_policies.checkpoints import saved_metadata
    from robo_policies.envs import diffdrive_nav

    dataset = tmp_path / "near.zarr"
    collect(get_task("diffdrive_nav"), dataset, episodes=2, seed=0, progress=False,
            env_kwargs={"start_distance": 0.5})
    out = tmp_path / "run"
    assert main(train_args(dataset, out, 2, policy="mlp_bc")) == 0
    assert saved_metadata(out / "checkpoint")["env_kwargs"] == {"start_distance": 0.5}
    built = []
    make = diffdrive_nav.DiffDriveNavEnv.__init__

    def record(self, *args, **kwargs):
        built.append(kwargs.get("start_distance"))
        make(self, *args, **kwargs)

    monkeypatch.setattr(diffdrive_nav.DiffDriveNavEnv, "__init__", record)
    assert main(["eval", f"checkpoint={out}", "episodes=1", "video_episodes=0", "max_steps=5", "progress=false"]) == 0
    assert built and set(built) == {0.5}


def test_eval_by_gymnasium_id(tmp_path, dataset):
    out = tmp_path / "run"
    assert main(train_args(dataset, out, 10)) == 0
    report_dir = tmp_path / "gym_eval"
    assert main(["eval", f"checkpoint={out / 'checkpoint'}", "env.id=robo_policies/DiffDriveNav-v0",
                 "env.import=robo_policies.envs.diffdrive_nav", "episodes=3", "video_episodes=0",
                 f"out={report_dir}", "max_steps=30", "progress=false"]) == 0
    report = json.loads((report_dir / "eval.json").read_text())
    assert report["episodes"] == 3 and report["seed"] == 100000
    assert [r["seed"] for r in report["records"]] == [100000, 100001, 100002]
    assert all(r["length"] == 30 for r in report["records"])


def test_demo_smoke_run_writes_the_promised_layout(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "tasks=[diffdrive_nav]", f"out={out}", f"data={tmp_path / 'data'}",
                 "demos=3", "train_steps=20", "eval_episodes=2", "progress=false", "jobs=2"]) == 0
    for run in ("diffdrive_nav", "diffdrive_nav_mlp_bc"):
        names = {p.name for p in (out / run).iterdir()}
        assert {"checkpoint", "eval.json", "rollout.mp4", "curve.png"} <= names, run
    assert {p.name for p in (out / "logs").iterdir()} == {"diffdrive_nav_collect.txt", "diffdrive_nav.txt",
                                                          "diffdrive_nav_mlp_bc.txt"}
    results = json.loads((out / "results.json").read_text())
    assert results["diffdrive_nav"]["episodes"] == 2
    assert results["diffdrive_nav (mlp_bc)"]["nfe"] == 1
    assert results["diffdrive_nav"]["left"] + results["diffdrive_nav"]["right"] == 2
    table = capsys.readouterr().out
    assert "diffdrive_nav (mlp_bc)" in table and "passes left" in table
    # The same demo in one process, one run after another: the same policies, the same episodes.
    serial = tmp_path / "serial"
    assert main(["demo", "tasks=[diffdrive_nav]", f"out={serial}", f"data={tmp_path / 'data1'}",
                 "demos=3", "train_steps=20", "eval_episodes=2", "progress=false", "jobs=1"]) == 0
    for run in ("diffdrive_nav", "diffdrive_nav_mlp_bc"):
        parallel_eval, serial_eval = (json.loads((d / run / "eval.json").read_text()) for d in (out, serial))
        assert [(r["seed"], r["success"], r["length"]) for r in parallel_eval["records"]] == \
            [(r["seed"], r["success"], r["length"]) for r in serial_eval["records"]], run


def test_a_resumed_runs_event_file_sorts_after_one_made_in_the_same_second(tmp_path):
    """TensorBoard reads event files in name order (creation second, host, pid): a run resumed
    within the second its killed predecessor (a larger pid) started must still come after it."""
    import socket
    import time

    from robo_policies.utils.scalars import ScalarLog

    board = tmp_path / "tensorboard"
    board.mkdir()
    # made in the coming second by a process with a larger pid (tensorboard's import may take a second)
    earlier = board / f"events.out.tfevents.{int(time.time()) + 1}.{socket.gethostname()}.99999999.0"
    earlier.write_bytes(b"")
    log = ScalarLog(tmp_path, first_step=40)
    log.log(40, loss=1.0)
    log.close()
    names = sorted(path.name for path in board.iterdir())
    assert len(names) == 2 and names[0] == earlier.name
