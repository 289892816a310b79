"""Faults on the hardware path, against fake servos on a pty: the link goes quiet, the host
goes silent, the adapter is unplugged, the process is terminated, the recorder dies
mid-episode, the calibration is missing or wrong. In-process on a fake clock (exact), plus
wall-clock runs of `robo deploy` (in-process) and smoke tests of the real `robo` processes (slow)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from typing import Callable

import numpy as np
import pytest
from fake_servos import SYNC_WRITE, WRITE, FakeDynamixelBus, FakeFeetechBus, FakeServoBus
from robot_configs import calibrated_arm, robot_yaml
from tiny_policies import make_policy

from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.data.validate import validate_dataset
from robo_policies.robots.clock import FakeClock
from robo_policies.robots.config import load_robot_config
from robo_policies.robots.factory import make_robot
from robo_policies.robots.keyboard import DriveSettings
from robo_policies.robots.motors import (MotorBusError, MotorCalibration, MotorCommunicationError, load_calibration,
                                         save_calibration)
from robo_policies.robots.record import record
from robo_policies.robots.signals import Terminated, stop_signals
from robo_policies.robots.teleop import ScriptedKeys
from robo_policies.robots.wheeled_base import WheeledBase

pytest.importorskip("dynamixel_sdk")
pytest.importorskip("scservo_sdk")

XL430, STS3215 = 1060, 777
WHEELS = (1, 2)
ARM_IDS = range(1, 7)


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


def die() -> None:
    raise Killed


class KeysThen(ScriptedKeys):
    """Scripted keys; the read after the last one calls ``then`` (kills the recorder, pulls
    the adapter out) and returns no key."""

    def __init__(self, ticks: list[list[str]], then: Callable[[], None]) -> None:
        super().__init__(ticks)
        self.then = then

    def read(self) -> list[str]:
        if not self._ticks:
            self.then()
            return []
        return super().read()


def test_a_recorder_that_dies_loses_only_the_episode_in_progress(tmp_path, fake_base, clock):
    out = tmp_path / "teleop.zarr"
    robot = base(tmp_path, fake_base, clock)
    # Enter, a 10-step episode (0.625 s at 16 Hz); Enter, 5 steps of episode 2 driving forward
    keys = KeysThen([["enter"]] + [[]] * 10 + [["enter"]] + [["w"]] * 5, then=die)
    with robot, pytest.raises(Killed):
        record(robot, keys, out, episodes=3, fps=16.0, episode_s=0.625, settings=DriveSettings(), echo=lambda line: None)
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 1 and buffer.n_steps == 10
    assert {key: buffer[key].shape[0] for key in buffer.keys} == dict.fromkeys(buffer.keys, 10)  # no partial rows
    validate_dataset(out)


def test_a_lerobot_recorder_that_dies_loses_only_the_episode_in_progress(tmp_path, fake_base, clock):
    from robo_policies.data.lerobot.dataset import LeRobotDataset

    out = tmp_path / "teleop"
    robot = base(tmp_path, fake_base, clock)
    keys = KeysThen([["enter"]] + [[]] * 10 + [["enter"]] + [["w"]] * 5, then=die)
    with robot, pytest.raises(Killed):
        record(robot, keys, out, episodes=3, fps=16.0, episode_s=0.625, settings=DriveSettings(),
               echo=lambda line: None, format="lerobot")
    dataset = LeRobotDataset(out)
    assert dataset.n_episodes == 1 and dataset.n_steps == 10
    assert {key: dataset[key].shape[0] for key in dataset.keys} == dict.fromkeys(dataset.keys, 10)
    assert json.loads((out / "meta/info.json").read_text())["total_episodes"] == 1
    validate_dataset(out)


def test_a_lerobot_recorder_killed_while_saving_keeps_the_committed_episodes_and_appends_after_them(
        tmp_path, fake_base, clock, monkeypatch):
    """Killed after episode 2's data file and video are in place but before its meta commit:
    the directory still reads as episode 1 only; the next session removes episode 2's orphaned
    files (LeRobot's loader reads every data parquet) and records on from episode 2."""
    from robo_policies.data.lerobot import writer
    from robo_policies.data.lerobot.dataset import LeRobotDataset

    out = tmp_path / "teleop"
    robot = base(tmp_path, fake_base, clock)
    with robot:
        record(robot, KeysThen([["enter"]] + [[]] * 10, then=lambda: None), out, episodes=1, fps=16.0,
               episode_s=0.625, settings=DriveSettings(), echo=lambda line: None, format="lerobot")
    monkeypatch.setattr(writer, "_write_tasks", lambda *args: die())  # the first meta file of the commit
    with robot, pytest.raises(Killed):
        record(robot, KeysThen([["enter"]] + [["w"]] * 10, then=lambda: None), out, episodes=1, fps=16.0,
               episode_s=0.625, settings=DriveSettings(), echo=lambda line: None, format="lerobot")
    assert (out / "data/chunk-000/file-001.parquet").is_file()  # written, never committed
    assert LeRobotDataset(out).n_episodes == 1
    validate_dataset(out)
    monkeypatch.undo()
    writer.LeRobotWriter.open(out)  # opening to append removes what the kill left
    assert sorted(p.name for p in (out / "data/chunk-000").iterdir()) == ["file-000.parquet"]
    with robot:
        record(robot, KeysThen([["enter"]] + [["d"]] * 6, then=lambda: None), out, episodes=1, fps=16.0,
               episode_s=0.625, settings=DriveSettings(), echo=lambda line: None, format="lerobot")
    dataset = LeRobotDataset(out)
    assert dataset.n_episodes == 2 and dataset.episode_lengths.tolist() == [10, 10]
    assert [p.name for p in out.rglob("*") if ".tmp-" in p.name] == []
    validate_dataset(out)


def test_a_port_lost_while_recording_keeps_the_finished_episodes(tmp_path, fake_base, clock):
    out = tmp_path / "teleop.zarr"
    robot = base(tmp_path, fake_base, clock)
    # Enter, a 10-step episode driving forward; Enter, 5 steps of episode 2; the adapter is pulled out
    keys = KeysThen([["enter"]] + [["w"]] * 10 + [["enter"]] + [["w"]] * 5, then=fake_base.close)
    with pytest.raises(MotorBusError) as lost:
        with robot:
            record(robot, keys, out, episodes=3, fps=16.0, episode_s=0.625, settings=DriveSettings(),
                   echo=lambda line: None)
    # one error naming the port and the motors; the stops that failed after it are notes on it
    assert re.fullmatch(rf"sync read of '\w+' from motors 'left_wheel' \(id 1\), 'right_wheel' \(id 2\) on "
                        rf"{fake_base.port} failed: the port failed \(.+\); is the adapter still plugged in\?",
                        str(lost.value)), str(lost.value)
    assert [note.split(":")[0] for note in lost.value.__notes__] == [
        "then, holding diffdrive_base still failed too", "then, stopping diffdrive_base failed too"]
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 1 and buffer.n_steps == 10
    assert {key: buffer[key].shape[0] for key in buffer.keys} == dict.fromkeys(buffer.keys, 10)  # no partial rows
    validate_dataset(out)


# -- the servos' own communication watchdog ---------------------------------------------------------


def test_the_servos_watchdog_is_armed_with_torque_where_they_have_one(tmp_path, fake_base, clock):
    robot = base(tmp_path, fake_base, clock)
    with robot:
        armed = fake_base.writes("comm_watchdog")
        torque_on = [index for index, _, value in fake_base.writes("torque_enable") if value == 1]
        # cleared (0), then armed: 3 periods of 62.5 ms, rounded up to 10 x 20 ms; before torque goes on
        assert [(motor_id, value) for _, motor_id, value in armed] == [(1, 0), (1, 10), (2, 0), (2, 10)]
        assert armed[-1][0] < torque_on[0] and len(torque_on) == 2
        assert robot.bus.comm_watchdog_s == pytest.approx(0.2)
    assert [fake_base.value(motor_id, "comm_watchdog") for motor_id in WHEELS] == [0, 0]  # disarmed
    assert fake_base.writes("comm_watchdog")[-1][0] > fake_base.writes("torque_enable")[-1][0]  # after torque off

    # Feetech STS servos have no such register: nothing but modes, torque and goals is written
    with FakeFeetechBus({motor_id: STS3215 for motor_id in (7, 8, 9)}, clock=clock.now) as fake:
        omni = make_robot(load_robot_config(robot_yaml(tmp_path, "omni_base")), period_s=0.0625, port=fake.port,
                          clock=clock)
        with omni:
            assert omni.bus.comm_watchdog_s is None
        names = {address: name for name, (address, _, _) in fake.registers.items()}
        written = {names.get(instruction.params[0], instruction.params[0]) for instruction in fake.instructions
                   if instruction.code in (WRITE, SYNC_WRITE)}
        assert written == {"operating_mode", "torque_enable", "goal_velocity"}


def test_a_silent_host_leaves_the_dynamixel_wheels_stopped_by_their_own_watchdog(tmp_path, fake_base, clock):
    robot = base(tmp_path, fake_base, clock, watchdog_s=None)  # no host-side watchdog: the host just goes quiet
    with robot:
        start = robot.bus.read("present_position")
        with fake_base.handled(SYNC_WRITE):
            robot.send_action(np.array([3.0, 3.0]))
        speed = goal_velocities(fake_base)[0] * fake_base.ticks_per_s_per_velocity_unit  # ticks/s
        assert speed > 1900
        clock.advance(1.0)  # not one instruction reaches the servos for a second
        travelled = robot.bus.read("present_position") - start
        np.testing.assert_allclose(travelled, [speed * 0.2] * 2, atol=1)  # they drove for the 0.2 s window only
        assert robot.bus.read("comm_watchdog").tolist() == [-1, -1]  # tripped
        with pytest.raises(MotorBusError, match="rejected the write of 'goal_velocity': data range error"):
            robot.bus.write("goal_velocity", [0], ["left_wheel"])  # goals refused until cleared

        # the host is back: its next command clears and re-arms the watchdogs before the goals go out
        with fake_base.handled(SYNC_WRITE):
            robot.send_action(np.array([3.0, 3.0]))
        assert robot.bus.read("comm_watchdog").tolist() == [10, 10]
        moved_from = robot.bus.read("present_position")
        clock.advance(0.1)
        with fake_base.handled(SYNC_WRITE):
            robot.send_action(np.array([3.0, 3.0]))
        np.testing.assert_allclose(robot.bus.read("present_position") - moved_from, [speed * 0.1] * 2, atol=1)


# -- no torque before a valid calibration ------------------------------------------------------------


@pytest.fixture
def feetech_arm(clock):
    with FakeFeetechBus({motor_id: STS3215 for motor_id in ARM_IDS}, clock=clock.now) as fake:
        yield fake


ARM_COMMANDS = {
    "check": ["robot", "check"],
    "teleop": ["robot", "teleop", "duration_s=0.1"],
    "record": ["record", "out={out}/teleop.zarr", "episode_s=0.1"],
    "deploy": ["deploy", "checkpoint={out}/policy", "policy_hz=10", "duration_s=0.1", "out={out}/deploy",
               "progress=false"],
}


@pytest.mark.parametrize("calibration", ["missing", "mismatched"])
@pytest.mark.parametrize("command", list(ARM_COMMANDS))
def test_no_torque_goes_on_before_a_valid_calibration(tmp_path, robo, feetech_arm, monkeypatch, command, calibration):
    path = robot_yaml(tmp_path, "so101_arm")
    if calibration == "mismatched":  # another arm's: every joint (at tick 2048) far outside its range
        save_calibration(path.parent / "calibration.json",
                         {name: MotorCalibration(3000, 2600, 3400) for name in load_robot_config(path).motors})
    make_policy(shapes={"joint_pos": (6,), "joint_vel": (6,)}, action_dim=6).save(tmp_path / "policy")
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # teleop and record read keys from it
    argv = [arg.format(out=tmp_path) for arg in ARM_COMMANDS[command]]
    code, _, err = robo(*argv, f"robot={path}", f"port={feetech_arm.port}")
    sys.stdin.close()
    assert code == (1 if command == "check" else 2), err
    if calibration == "missing":
        assert "calibration.json is missing: run `robo robot calibrate robot=so101_arm`" in err
        assert feetech_arm.instructions == []  # not even a ping
    elif command == "check":  # it reads without powering: the range check names the joints
        assert "range: outside the calibrated range: shoulder_pan at tick 2048, range 2600..3400" in err
    else:
        assert "joints outside their calibrated range" in err and "Torque stays off" in err
        assert feetech_arm.instructions  # connected and read the joints ...
    assert [value for _, _, value in feetech_arm.writes("torque_enable") if value] == []  # ... never powered them


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


def unplug_after(fake: FakeServoBus, code: int, count: int) -> threading.Thread:
    """A thread that pulls the fake's adapter out once ``count`` instructions of kind ``code``
    were handled (from now)."""
    def unplug() -> None:
        with fake.handled(code, count, timeout=60.0):
            pass
        fake.close()

    thread = threading.Thread(target=unplug, name="unplug", daemon=True)
    thread.start()
    return thread


def test_a_port_lost_during_deploy_is_one_line_after_the_safe_stop_and_deploy_json_says_so(
        tmp_path, robo, wallclock_base, monkeypatch):
    fake = wallclock_base
    make_policy(shapes={"base_pose": (4,), "base_vel": (2,)}, action_dim=2, action_range=3.0).save(
        tmp_path / "policy", metadata={"task": None})
    safe_stops = []
    make_safe = WheeledBase._make_safe
    monkeypatch.setattr(WheeledBase, "_make_safe", lambda robot: safe_stops.append(robot.name) or make_safe(robot))
    unplugged = unplug_after(fake, SYNC_WRITE, 5)  # 5 commands at 20 Hz, then the adapter is gone
    run = robo("deploy", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}", f"port={fake.port}",
               f"checkpoint={tmp_path / 'policy'}", "hz=20", "policy_hz=10", "duration_s=30",
               f"out={tmp_path / 'out'}", "progress=false")
    unplugged.join()
    assert run.code == 2 and run.err.count("\n") == 1, run.err
    cause, *notes = run.err.strip().removeprefix("error: ").split("; then, ")
    assert re.search(rf"'left_wheel' \(id 1\).* on {fake.port} failed: the port failed \(.+\); is the adapter "
                     r"still plugged in\?$", cause), cause
    assert notes and all(note.startswith("stopping diffdrive_base failed too: ") for note in notes)
    assert safe_stops == ["diffdrive_base"]  # the safe stop was tried (and failed: the port is gone)
    report = json.loads((tmp_path / "out" / "deploy.json").read_text())
    assert report["fault"] == "MotorBusError: " + run.err.strip().removeprefix("error: ")
    assert report["episodes"] == 0 and report["ticks"] >= 5


def test_a_camera_that_stops_during_deploy_stops_the_robot_and_deploy_json_says_so(tmp_path, robo, wallclock_base):
    """The replayed camera delivers 0.3 s of frames and freezes; the next observation finds its
    newest frame older than camera_timeout_s, and the wheels stop with torque off."""
    import imageio.v3 as iio

    fake = wallclock_base
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):
        iio.imwrite(frames / f"{i}.png", np.full((12, 16, 3), 20 * i, np.uint8))
    config = robot_yaml(tmp_path, "diffdrive_base", camera_timeout_s=0.4,
                        cameras={"front": {"type": "replay", "device": str(frames), "fps": 20}})
    make_policy(shapes={"base_pose": (4,), "base_vel": (2,)}, action_dim=2, action_range=3.0).save(
        tmp_path / "policy", metadata={"task": None})
    run = robo("deploy", f"robot={config}", f"port={fake.port}", f"checkpoint={tmp_path / 'policy'}", "hz=20",
               "policy_hz=10", "duration_s=30", f"out={tmp_path / 'out'}", "progress=false")
    assert run.code == 2 and run.err.count("\n") == 1, run.err
    assert re.fullmatch(r"error: camera 'front' stalled: its newest frame is \d\.\d+ s old \(limit 0\.4 s\)\n",
                        run.err), run.err
    assert goal_velocities(fake) == [0, 0]
    assert [fake.value(motor_id, "torque_enable") for motor_id in WHEELS] == [0, 0]
    report = json.loads((tmp_path / "out" / "deploy.json").read_text())
    assert report["fault"].startswith("CameraError: camera 'front' stalled") and report["ticks"] >= 6
    front = report["cameras"]["front"]
    assert front["frames"] == 6 and front["fps"] == 20 and 0 <= front["frame_age_ms_p50"] <= front["frame_age_ms_p99"]


def test_a_camera_that_delivers_nothing_stops_deploy_before_the_bus_is_touched(tmp_path, robo, wallclock_base):
    fake = wallclock_base
    (tmp_path / "empty").mkdir()
    config = robot_yaml(tmp_path, "diffdrive_base", cameras={"front": {"type": "replay", "device": str(tmp_path / "empty"),
                                                                        "fps": 20}})
    make_policy(shapes={"base_pose": (4,), "base_vel": (2,)}, action_dim=2, action_range=3.0).save(
        tmp_path / "policy", metadata={"task": None})
    run = robo("deploy", f"robot={config}", f"port={fake.port}", f"checkpoint={tmp_path / 'policy'}", "hz=20",
               "policy_hz=10", "duration_s=30", f"out={tmp_path / 'out'}", "progress=false")
    assert run.code == 2 and run.err.count("\n") == 1, run.err
    assert run.err == f"error: camera 'front': {tmp_path / 'empty'} holds no images\n"
    assert fake.instructions == []  # not even a ping: the cameras come first


def test_deploy_feeds_camera_frames_at_the_size_the_policy_was_trained_on(tmp_path, robo, wallclock_base):
    """The camera delivers 12x16 frames; the policy reads 84x84: each frame is cropped and shrunk
    to it. A policy reading a camera the robot lacks is refused before any packet is sent."""
    import imageio.v3 as iio

    fake = wallclock_base
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        iio.imwrite(frames / f"{i}.png", np.full((12, 16, 3), 40 * i, np.uint8))
    config = robot_yaml(tmp_path, "diffdrive_base",
                        cameras={"front": {"type": "replay", "device": str(frames), "fps": 20, "loop": True}})
    shapes = {"base_pose": (4,), "base_vel": (2,), "front_image": (84, 84, 3)}
    make_policy(shapes=shapes, action_dim=2, action_range=3.0).save(tmp_path / "policy", metadata={"task": None})
    run = robo("deploy", f"robot={config}", f"port={fake.port}", f"checkpoint={tmp_path / 'policy'}", "hz=20",
               "policy_hz=10", "duration_s=1", f"out={tmp_path / 'out'}", "progress=false")
    assert run.code == 0, run.err
    report = json.loads((tmp_path / "out" / "deploy.json").read_text())
    assert report["fault"] is None and report["ticks"] == 20 and report["cameras"]["front"]["frames"] >= 10
    make_policy(shapes={**shapes, "wrist_image": (84, 84, 3)}, action_dim=2, action_range=3.0).save(
        tmp_path / "two_cameras", metadata={"task": None})
    before = len(fake.instructions)
    run = robo("deploy", f"robot={config}", f"port={fake.port}", f"checkpoint={tmp_path / 'two_cameras'}", "hz=20",
               "policy_hz=10", "duration_s=1", f"out={tmp_path / 'out2'}", "progress=false")
    assert run.code == 2 and "observation key(s) ['wrist_image'] missing" in run.err, run.err
    assert len(fake.instructions) == before


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
    report = json.loads((tmp_path / "deploy" / "deploy.json").read_text())
    assert report["fault"] == "terminated by SIGTERM" and report["ticks"] > 0


def record_and_kill_in_episode_2(tmp_path, fake, out, *settings):
    """`robo record` of the wall-clock base into ``out``: episode 1 (10 steps) is recorded, then
    the process is SIGKILLed while it records episode 2; returns its output."""
    command = [sys.executable, "-m", "robo_policies", "record", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}",
               f"port={fake.port}", f"out={out}", "episodes=3", "fps=20", "episode_s=0.5", *settings]
    log_path = tmp_path / "record.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.stdin.write(b"\n")  # Enter: record episode 1 (10 steps)
        proc.stdin.flush()
        wallclock_wait_for(lambda: "episode 1 saved" in log_path.read_text(), 60.0, proc)
        proc.stdin.write(b"\nw")  # episode 2, driving forward
        proc.stdin.flush()
        wallclock_wait_for(lambda: any(goal_velocities(fake)), 10.0, proc)  # inside episode 2 (0.5 s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    log = log_path.read_text()
    assert "episode 1 saved: 10 steps" in log and "recording episode 2" in log and "episode 2 saved" not in log
    return log


@pytest.mark.slow
def test_smoke_wallclock_killed_recorder_loses_only_the_episode_in_progress(tmp_path, wallclock_base):
    out = tmp_path / "teleop.zarr"
    record_and_kill_in_episode_2(tmp_path, wallclock_base, out)
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 1 and buffer.n_steps == 10
    assert {key: buffer[key].shape[0] for key in buffer.keys} == dict.fromkeys(buffer.keys, 10)  # no partial rows
    assert np.isfinite(buffer["action"][:]).all()
    validate_dataset(out)


@pytest.mark.slow
def test_smoke_wallclock_killed_lerobot_recorder_loses_only_the_episode_in_progress(tmp_path, wallclock_base):
    """`robo record format=lerobot` SIGKILLed in episode 2: a valid v3.0 directory with episode 1."""
    from robo_policies.data.lerobot.dataset import LeRobotDataset

    out = tmp_path / "teleop"
    record_and_kill_in_episode_2(tmp_path, wallclock_base, out, "format=lerobot")
    dataset = LeRobotDataset(out)
    assert dataset.n_episodes == 1 and dataset.n_steps == 10 and np.isfinite(dataset["action"]).all()
    validate_dataset(out)


@pytest.mark.slow
def test_smoke_wallclock_leader_recording_with_a_camera_keeps_finished_episodes_after_a_kill_and_trains(tmp_path):
    """`robo record` of the SO-101 follower led by a (fake) leader arm, with a replayed front
    camera, at 20 Hz: two finished episodes survive a SIGKILL in the third, their steps are
    1/fps apart (within 5%), and a policy trains on them with the camera as an input."""
    import imageio.v3 as iio

    from robo_policies.policy import Policy, PolicyConfig
    from robo_policies.train.config import TrainConfig
    from robo_policies.train.trainer import train

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        iio.imwrite(frames / f"{i}.png", np.full((24, 32, 3), 40 * i, np.uint8))
    follower_yaml = calibrated_arm(tmp_path)
    follower_yaml.write_text(follower_yaml.read_text() + (
        f"cameras:\n  front: {{type: replay, device: '{frames}', fps: 30, loop: true}}\n"))
    leader_yaml = robot_yaml(tmp_path, "so101_leader")
    save_calibration(leader_yaml.parent / "calibration.json",
                     load_calibration(follower_yaml.parent / "calibration.json"))  # both arms calibrated alike
    out = tmp_path / "led.zarr"
    ids = {motor_id: STS3215 for motor_id in ARM_IDS}
    with FakeFeetechBus(ids) as follower, FakeFeetechBus(ids) as leader:
        leader.set_value(1, "present_position", 2148)  # the leader's shoulder turned by 100 ticks
        command = [sys.executable, "-m", "robo_policies", "record", f"robot={follower_yaml}", f"port={follower.port}",
                   "teleop=leader", f"leader={leader_yaml}", f"leader_port={leader.port}", f"out={out}",
                   "episodes=3", "fps=20", "episode_s=0.5"]
        with open(tmp_path / "record.log", "w") as log:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        try:
            for episode in (1, 2):
                proc.stdin.write(b"\n")  # Enter: record the episode (10 steps)
                proc.stdin.flush()
                wallclock_wait_for(lambda: episodes_in(out) == episode, 60.0, proc)
            proc.stdin.write(b"\n")  # the third episode, killed while it records
            proc.stdin.flush()
            wallclock_wait_for(lambda: "recording episode 3" in (tmp_path / "record.log").read_text(), 10.0, proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            proc.kill()
        assert [value for _, _, value in leader.writes("torque_enable") if value] == []  # the leader stayed unpowered
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 2 and buffer.n_steps == 20
    assert buffer["front_image"].shape == (20, 24, 32, 3) and buffer["front_image"].dtype == np.uint8
    for episode in range(2):
        steps = np.diff(buffer.episode(episode, keys=["timestamp"])["timestamp"])
        assert abs(steps.mean() - 0.05) <= 0.05 * 0.05, steps
    np.testing.assert_allclose(buffer["action"][-1][0], 100 * 2 * np.pi / 4096, atol=2 * np.pi / 4096)  # led
    validate_dataset(out)
    result = train(out, tmp_path / "run", PolicyConfig(net="mlp", n_obs_steps=1, horizon=4, n_action_steps=2,
                                                     image_feature_dim=8, samples_per_obs=1),
                   TrainConfig(steps=2, batch_size=4, log_every=1, checkpoint_every=2, val_ratio=0.0,
                               loader_workers=0), progress=False)
    assert set(Policy.load(result.policy_dir).obs_shapes) == {"joint_pos", "joint_vel", "front_image"}


def episodes_in(path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ReplayBuffer.open(path).n_episodes
        except Exception:  # not created yet, or mid-write
            return 0
