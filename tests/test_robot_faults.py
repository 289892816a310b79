"""Faults on the hardware path, against fake servos on a pty: the link goes quiet, the process
is terminated, the recorder dies mid-episode. In-process on a fake clock (exact), plus two
wall-clock smoke tests of the real `robo` processes (slow)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from fake_servos import SYNC_WRITE, FakeDynamixelBus
from robot_configs import robot_yaml
from tiny_policies import make_policy

from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.data.validate import validate_dataset
from robo_policies.robots.clock import FakeClock
from robo_policies.robots.config import load_robot_config
from robo_policies.robots.factory import make_robot
from robo_policies.robots.keyboard import DriveSettings
from robo_policies.robots.motors import MotorCommunicationError
from robo_policies.robots.record import record
from robo_policies.robots.signals import Terminated, stop_signals
from robo_policies.robots.teleop import ScriptedKeys

pytest.importorskip("dynamixel_sdk")

XL430 = 1060
WHEELS = (1, 2)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake_base(clock):
    with FakeDynamixelBus({motor_id: XL430 for motor_id in WHEELS}, clock=clock.now) as fake:
        yield fake


def goal_velocities(fake) -> list[int]:
    return [fake.value(motor_id, "goal_velocity") for motor_id in WHEELS]


def base(tmp_path, fake, clock, **changes):
    """diffdrive_base on the fake servos, commanded at 16 Hz on ``clock``."""
    config = load_robot_config(robot_yaml(tmp_path, "diffdrive_base", **changes))
    return make_robot(config, period_s=0.0625, port=fake.port, clock=clock)


def test_communication_loss_stops_the_wheels_at_the_watchdog_timeout(tmp_path, fake_base, clock):
    robot = base(tmp_path, fake_base, clock, watchdog_s=0.25)
    with robot:
        for _ in range(10):  # each command handled by the servos before time moves on, as on the wire
            clock.advance(0.0625)
            with fake_base.handled(SYNC_WRITE):
                robot.send_action(robot.twist_command(0.1, 0.0))
        last_command = robot.last_record.timestamp
        # the commands stop: the link or the loop is gone
        clock.advance(0.1875)
        assert not robot.watchdog.check() and all(goal_velocities(fake_base))  # still driving
        with fake_base.handled(SYNC_WRITE):  # the watchdog's stop (its thread may get there first)
            clock.advance(0.0625)
            robot.watchdog.check()
        assert goal_velocities(fake_base) == [0, 0]
        assert robot.watchdog.expired_at - last_command == 0.25
        assert [fake_base.value(motor_id, "torque_enable") for motor_id in WHEELS] == [1, 1]  # holding
    assert [fake_base.value(motor_id, "torque_enable") for motor_id in WHEELS] == [0, 0]


def test_the_failure_that_ended_a_run_is_reported_not_the_cleanups(tmp_path, fake_base, clock, monkeypatch):
    robot = base(tmp_path, fake_base, clock)

    def silent():
        raise MotorCommunicationError("stop failed: no status packet", port=fake_base.port)

    with pytest.raises(MotorCommunicationError, match="read failed") as raised:
        with robot:
            monkeypatch.setattr(robot, "_make_safe", silent)  # the servos went silent
            raise MotorCommunicationError("read failed: no status packet", port=fake_base.port)
    assert any("stopping" in note and "stop failed" in note for note in getattr(raised.value, "__notes__", []))
    assert not robot.is_connected


def test_sigterm_unwinds_to_wheels_stopped_and_torque_off(tmp_path, fake_base, clock):
    robot = base(tmp_path, fake_base, clock)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as ended:
        with stop_signals(robot, "SIGUSR1"), robot:
            with fake_base.handled(SYNC_WRITE):
                robot.send_action(robot.twist_command(0.1, 0.0))
            assert all(goal_velocities(fake_base))
            signal.raise_signal(signal.SIGTERM)  # the handler raises before the next statement
            pytest.fail("SIGTERM did not end the block")
    assert ended.value.code == 128 + signal.SIGTERM
    assert goal_velocities(fake_base) == [0, 0]
    assert [fake_base.value(motor_id, "torque_enable") for motor_id in WHEELS] == [0, 0]
    assert signal.getsignal(signal.SIGTERM) is before


class Killed(BaseException):
    """The recording process dies (as from SIGKILL: nothing of it runs afterwards)."""


class KeysThenDeath(ScriptedKeys):
    """Scripted keys; the read after the last one kills the recorder."""

    def read(self) -> list[str]:
        if not self._ticks:
            raise Killed
        return super().read()


def test_a_recorder_that_dies_loses_only_the_episode_in_progress(tmp_path, fake_base, clock):
    out = tmp_path / "teleop.zarr"
    robot = base(tmp_path, fake_base, clock)
    # Enter, a 10-step episode (0.625 s at 16 Hz); Enter, 5 steps of episode 2 driving forward
    keys = KeysThenDeath([["enter"]] + [[]] * 10 + [["enter"]] + [["w"]] * 5)
    with robot, pytest.raises(Killed):
        record(robot, keys, out, episodes=3, fps=16.0, episode_s=0.625, settings=DriveSettings(), echo=lambda line: None)
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 1 and buffer.n_steps == 10
    assert {key: buffer[key].shape[0] for key in buffer.keys} == dict.fromkeys(buffer.keys, 10)  # no partial rows
    validate_dataset(out)


# -- the real processes, on the wall clock ---------------------------------------------------------


@pytest.fixture
def wallclock_base():
    with FakeDynamixelBus({motor_id: XL430 for motor_id in WHEELS}) as fake:
        yield fake


def wallclock_wait_for(condition, timeout_s: float, proc: subprocess.Popen) -> None:
    """Poll ``condition`` until it holds (for the smoke tests, which watch another process)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"the process ended with status {proc.returncode}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_smoke_wallclock_sigterm_during_deploy_leaves_the_wheels_stopped_and_torque_off(tmp_path, wallclock_base):
    fake = wallclock_base
    policy = make_policy(shapes={"base_pose": (4,), "base_vel": (2,)}, action_dim=2, action_range=3.0)
    policy.save(tmp_path / "policy", metadata={"task": None})
    command = [sys.executable, "-m", "robo_policies", "deploy", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}",
               f"port={fake.port}", f"checkpoint={tmp_path / 'policy'}", "hz=20", "policy_hz=10",
               "duration_s=30", f"out={tmp_path / 'deploy'}", "progress=false"]
    with open(tmp_path / "deploy.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wallclock_wait_for(lambda: any(goal_velocities(fake)), 60.0, proc)  # moving
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM, (tmp_path / "deploy.log").read_text()
    finally:
        proc.kill()
    assert goal_velocities(fake) == [0, 0]
    assert [fake.value(motor_id, "torque_enable") for motor_id in WHEELS] == [0, 0]


@pytest.mark.slow
def test_smoke_wallclock_killed_recorder_loses_only_the_episode_in_progress(tmp_path, wallclock_base):
    fake = wallclock_base
    out = tmp_path / "teleop.zarr"
    command = [sys.executable, "-m", "robo_policies", "record", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}",
               f"port={fake.port}", f"out={out}", "episodes=3", "fps=20", "episode_s=0.5"]
    with open(tmp_path / "record.log", "w") as log:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.stdin.write(b"\n")  # Enter: record episode 1 (10 steps)
        proc.stdin.flush()
        wallclock_wait_for(lambda: episodes_in(out) == 1, 60.0, proc)
        proc.stdin.write(b"\nw")  # episode 2, driving forward
        proc.stdin.flush()
        wallclock_wait_for(lambda: any(goal_velocities(fake)), 10.0, proc)  # inside episode 2 (0.5 s)
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
