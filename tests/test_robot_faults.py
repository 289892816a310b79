"""Faults on the hardware path, against fake servos on a pty: the link goes quiet, the process
is terminated, the recorder is killed. Timings are measured, not assumed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from fake_servos import FakeDynamixelBus
from robot_configs import robot_yaml

from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.data.validate import validate_dataset
from robo_policies.robots.config import load_robot_config
from robo_policies.robots.factory import make_robot
from tests.tiny_policies import make_policy

pytest.importorskip("dynamixel_sdk")

XL430 = 1060
WHEELS = (1, 2)


@pytest.fixture
def fake_base():
    with FakeDynamixelBus({motor_id: XL430 for motor_id in WHEELS}) as fake:
        yield fake


def goal_velocities(fake) -> list[int]:
    return [fake.value(motor_id, "goal_velocity") for motor_id in WHEELS]


def wait_for(condition, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc is None or proc.poll() is None, f"the process ended with status {proc.returncode}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_communication_loss_stops_the_wheels_within_the_watchdog_period(tmp_path, fake_base):
    watchdog_s = 0.2
    config = load_robot_config(robot_yaml(tmp_path, "diffdrive_base", watchdog_s=watchdog_s))
    robot = make_robot(config, period_s=0.05, port=fake_base.port)
    with robot:
        for _ in range(10):  # 20 Hz
            time.sleep(0.05)
            robot.send_action(robot.twist_command(0.1, 0.0))
        last_command = robot.last_record.timestamp  # when it was written
        assert all(goal_velocities(fake_base))
        # the commands stop: the link or the loop is gone
        while any(goal_velocities(fake_base)):
            assert time.perf_counter() - last_command < 2.0, "the wheels never stopped"
            time.sleep(0.001)
        stopped_after = time.perf_counter() - last_command
    assert watchdog_s - 0.01 <= stopped_after <= watchdog_s + 0.1, stopped_after


def test_sigterm_during_deploy_leaves_the_wheels_stopped_and_torque_off(tmp_path, fake_base):
    policy = make_policy(shapes={"base_pose": (4,), "base_vel": (2,)}, action_dim=2, action_range=3.0)
    policy.save(tmp_path / "policy", metadata={"task": None})
    command = [sys.executable, "-m", "robo_policies", "deploy", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}",
               f"port={fake_base.port}", f"checkpoint={tmp_path / 'policy'}", "hz=20", "policy_hz=10",
               "duration_s=30", f"out={tmp_path / 'deploy'}", "progress=false"]
    with open(tmp_path / "deploy.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: any(goal_velocities(fake_base)), 60.0, proc)  # moving
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM, (tmp_path / "deploy.log").read_text()
    finally:
        proc.kill()
    assert goal_velocities(fake_base) == [0, 0]
    assert [fake_base.value(motor_id, "torque_enable") for motor_id in WHEELS] == [0, 0]


def test_killed_recorder_loses_only_the_episode_in_progress(tmp_path, fake_base):
    out = tmp_path / "teleop.zarr"
    command = [sys.executable, "-m", "robo_policies", "record", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}",
               f"port={fake_base.port}", f"out={out}", "episodes=3", "fps=20", "episode_s=0.5"]
    with open(tmp_path / "record.log", "w") as log:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.stdin.write(b"\n")  # Enter: record episode 1 (10 steps)
        proc.stdin.flush()
        wait_for(lambda: episodes_in(out) == 1, 60.0, proc)
        proc.stdin.write(b"\nw")  # episode 2, driving forward
        proc.stdin.flush()
        wait_for(lambda: any(goal_velocities(fake_base)), 10.0, proc)
        time.sleep(0.2)  # inside episode 2 (0.5 s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    log = (tmp_path / "record.log").read_text()
    assert "episode 1 saved: 10 steps" in log and "recording episode 2" in log and "episode 2 saved" not in log
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 1 and buffer.n_steps == 10
    assert {key: buffer[key].shape[0] for key in buffer.keys} == dict.fromkeys(buffer.keys, 10)  # no partial rows
    assert np.isfinite(buffer["action"][:]).all()
    validate_dataset(out)


def episodes_in(path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ReplayBuffer.open(path).n_episodes
        except Exception:  # not created yet, or mid-write
            return 0
