"""Adding a robot kind from outside the project: the toy plugin (``plugins/toy_robot.py``, one
module, and ``plugins/hardware/toy_slider/robot.yaml``) is listed, checked, driven by keys,
recorded from and deployed on through ``robo``, without a change to the project."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from tiny_policies import make_policy

from robo_policies.data.replay_buffer import ReplayBuffer

PORT = "mem://toy_slider"


@pytest.fixture
def carriages(monkeypatch):
    """The toy's devices by port, none yet; ``robo`` loads the plugin."""
    monkeypatch.setenv("ROBO_PLUGINS", "plugins.toy_robot")
    from plugins import toy_robot

    toy_robot.CARRIAGES.clear()
    return toy_robot.CARRIAGES


@pytest.fixture
def type_keys(monkeypatch):
    """``type_keys(text)``: what the user typed, waiting on standard input (a pipe kept open,
    so the keys end without an end of input)."""
    read_fd, write_fd = os.pipe()
    stdin = os.fdopen(read_fd)
    monkeypatch.setattr(sys, "stdin", stdin)
    yield lambda text: os.write(write_fd, text.encode())
    os.close(write_fd)
    stdin.close()


def test_robot_list_shows_the_plugin_robot(robo, carriages):
    run = robo("robot", "list")
    assert run.code == 0, run.err
    row = next(line for line in run.out.splitlines() if line.startswith("toy_slider"))
    assert row.split() == ["toy_slider", "slider", "memory", PORT, "0", "bit/s", "-", "1", "carriage", "toy-carriage"]
    assert "so101_arm" in run.out  # the package's robots come first, still there


def test_check_passes_on_the_toy_and_names_what_fails(robo, carriages):
    # The toy cannot connect without power: it is connected as usual and, unless move=true,
    # only dry-runs its commands through the chain.
    for move, hold, nan in [("false", "the chain leaves it unchanged (dry run)", "would send (dry run) [0.0] for [nan]"),
                            ("true", "the motor holds the carriage", "sent [0.0] for [nan]")]:
        run = robo("robot", "check", "robot=toy_slider", f"move={move}")
        assert run.code == 0, run.err
        rows = {line.split()[0]: line for line in run.out.splitlines() if line.split()}
        for check, detail in [("connect", "the carriage answers at 0.000 m"), ("rail", "carriage at 0.000 m of 0..0.3 m"),
                              ("hold", hold), ("nan", nan)]:
            assert "PASS" in rows[check] and detail in rows[check], check
    assert "PASS" in rows["step"] and "carriage.pos +0.050 from the hold, then held" in rows["step"]
    assert "calibration" not in rows and "PASS: every check" in run.out
    assert carriages[PORT].powered is False  # disconnected safely

    carriages[PORT].position = 0.5  # off the rail: the chain changes even "stay where you are"
    run = robo("robot", "check", "robot=toy_slider")
    assert run.code == 1
    assert run.err.startswith("FAIL: robot check failed (rail, hold): "
                              "rail: carriage at 0.500 m of 0..0.3 m")


def test_teleop_moves_the_carriage_through_the_safety_chain(robo, carriages, type_keys):
    type_keys("ddd")  # 3 x 0.02 m asked, 0.05 m allowed from where it is
    run = robo("robot", "teleop", "robot=toy_slider", "hz=50", "duration_s=0.1", "drive.joint_step=0.02")
    assert run.code == 0, run.err
    assert "teleop toy_slider at 50 Hz: d/a move the carriage, x hold" in run.out
    assert "sent carriage.pos=+0.050" in run.out
    assert carriages[PORT].position == pytest.approx(0.05) and carriages[PORT].powered is False


def test_record_stores_what_was_sent(robo, carriages, type_keys, tmp_path):
    type_keys("dd\n")  # two nudges while setting the scene, then Enter: a 5-step episode
    out = tmp_path / "slider.zarr"
    run = robo("record", "robot=toy_slider", f"out={out}", "episodes=1", "fps=50", "episode_s=0.1",
               "drive.joint_step=0.01")
    assert run.code == 0, run.err
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 1 and set(buffer.keys) == {"slider_pos", "action", "timestamp"}
    np.testing.assert_allclose(buffer["action"][:], np.full((5, 1), 0.02), rtol=1e-6)
    np.testing.assert_allclose(buffer["slider_pos"][:], np.full((5, 1), 0.02), rtol=1e-6)
    assert buffer.attrs["robot"] == "toy_slider" and buffer.attrs["action_names"] == ["carriage.pos"]


def test_deploy_runs_a_policy_on_the_toy_and_kind_limits_are_errors(robo, carriages, tmp_path):
    policy = make_policy(shapes={"slider_pos": (1,)}, action_dim=1, action_range=1.0)
    policy.save(tmp_path / "policy", metadata={"task": None})
    common = ["robot=toy_slider", f"checkpoint={tmp_path / 'policy'}", "policy_hz=10", "rt_priority=0",
              "progress=false", f"out={tmp_path / 'deploy'}"]
    run = robo("deploy", *common, "hz=20", "duration_s=0.2")
    assert run.code == 0, run.err
    report = json.loads((tmp_path / "deploy" / "deploy.json").read_text())
    assert (report["robot"], report["sim"], report["episodes"], report["ticks"]) == ("toy_slider", False, 1, 4)
    assert report["success_rate"] is None and set(report["safety_interventions"]) == {
        "reject_non_finite", "joint_limits", "max_step", "estop"}
    assert 0.0 <= carriages[PORT].position <= 0.3

    run = robo("deploy", *common, "sim=true")
    assert run.code == 2 and "toy_slider has no MuJoCo twin (sim_task is not set)" in run.err
    run = robo("robot", "calibrate", "robot=toy_slider")
    assert run.code == 2 and "robots of kind 'slider' have nothing to calibrate" in run.err
