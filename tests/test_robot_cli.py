"""`robo robot ...` and `robo record` against fake Dynamixel and Feetech servos on a pty.

The real drivers run down to the serial port (``fake_servos.py`` answers byte for byte);
interactive steps are driven by scripted prompts and key sequences.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import select
import sys
import termios
import types

import numpy as np
import pytest
from fake_servos import SYNC_READ, FakeDynamixelBus, FakeFeetechBus
from robot_configs import calibrated_arm, robot_yaml

from robo_policies.commands.config import RecordConfig, RobotSetupMotorsConfig, RobotTeleopConfig, RobotToolConfig
from robo_policies.data.replay_buffer import ReplayBuffer
from robo_policies.robots.bus_setup import find_port, setup_motors
from robo_policies.robots.calibrate import calibrate_robot
from robo_policies.robots.clock import FakeClock
from robo_policies.robots.config import load_robot_config
from robo_policies.robots.factory import make_robot
from robo_policies.robots.keyboard import DriveSettings
from robo_policies.robots.motors import MotorCalibration, save_calibration
from robo_policies.robots.record import record
from robo_policies.robots.teleop import ScriptedKeys, TerminalKeys, parse_keys, teleop
from robo_policies.utils.errors import ConfigError, DeviceFault

pytest.importorskip("dynamixel_sdk")
pytest.importorskip("scservo_sdk")

STS3215, XL430 = 777, 1060
ARM_IDS = range(1, 7)


@pytest.fixture
def clock():
    """The time of the fake servos and of the robots driven in-process: it moves only as the
    teleop loop sleeps, so every run is the same."""
    return FakeClock()


@pytest.fixture
def feetech_arm(clock):
    with FakeFeetechBus({motor_id: STS3215 for motor_id in ARM_IDS}, clock=clock.now) as fake:
        yield fake


@pytest.fixture
def dynamixel_base(clock):
    with FakeDynamixelBus({1: XL430, 2: XL430}, clock=clock.now) as fake:
        yield fake


@pytest.mark.parametrize("argv,schema", [
    (["robot", "setup-motors"], RobotSetupMotorsConfig), (["robot", "calibrate"], RobotToolConfig),
    (["robot", "check"], RobotToolConfig), (["robot", "teleop"], RobotTeleopConfig), (["record"], RecordConfig)])
def test_help_documents_every_setting(robo, argv, schema):
    code, text, _ = robo(*argv, "--help")
    assert code == 0 and "Example:" in text
    for item in dataclasses.fields(schema):
        names = [f"drive.{f.name}" for f in dataclasses.fields(DriveSettings)] if item.name == "drive" else [item.name]
        for name in names:
            line = next(line for line in text.splitlines() if line.startswith(f"  {name}="))
            assert len(line.split("  ", 2)[-1]) > 10, name  # a docstring, not just the default


def test_robot_list_names_every_robot(robo):
    code, out, _ = robo("robot", "list")
    assert code == 0
    for name in ("so101_arm", "dynamixel_arm", "diffdrive_base", "omni_base"):
        assert name in out
    assert "xl330-m288" in out and "front_left_wheel" in out


def rows(out):
    """The check table's rows by check name."""
    return {line.split()[0]: line for line in out.splitlines() if line.split()}


def test_check_reads_a_feetech_arm_without_powering_it(tmp_path, robo, feetech_arm):
    goals = [feetech_arm.value(i, "goal_position") for i in ARM_IDS]
    code, out, err = robo("robot", "check", f"robot={calibrated_arm(tmp_path)}", f"port={feetech_arm.port}")
    assert code == 0, err
    for check in ("connect", "range", "observation", "e-stop", "hold", "nan", "disconnect"):
        assert "PASS" in rows(out)[check], check
    assert "read only, torque off" in rows(out)["connect"] and "dry run" in rows(out)["hold"]
    assert "step" not in rows(out)
    assert [value for _, _, value in feetech_arm.writes("torque_enable") if value] == []  # never powered
    assert [feetech_arm.value(i, "goal_position") for i in ARM_IDS] == goals  # nothing sent


def test_check_move_powers_the_arm_and_steps_one_joint_then_holds(tmp_path, robo, feetech_arm):
    code, out, err = robo("robot", "check", f"robot={calibrated_arm(tmp_path)}", f"port={feetech_arm.port}",
                          "move=true", "move_step=0.05")
    assert code == 0, err
    assert "goal position = present position on every motor" in rows(out)["hold"]
    assert "PASS" in rows(out)["step"] and "shoulder_pan.pos +0.050 from the hold, then held" in rows(out)["step"]
    start = 2048  # every joint stands at its calibrated zero
    assert abs(feetech_arm.value(1, "goal_position") - start) <= 1  # back to the hold after the step
    assert [feetech_arm.value(i, "torque_enable") for i in ARM_IDS] == [0] * 6


@pytest.mark.parametrize("move", [False, True])
def test_check_passes_on_a_dynamixel_base(tmp_path, robo, dynamixel_base, move):
    code, out, err = robo("robot", "check", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}",
                         f"port={dynamixel_base.port}", f"move={str(move).lower()}")
    assert code == 0, err
    assert "PASS: every check" in out
    assert ("goal velocity 0 on every wheel" in out) == move
    assert any(value for _, _, value in dynamixel_base.writes("torque_enable")) == move
    assert [dynamixel_base.value(i, "torque_enable") for i in (1, 2)] == [0, 0]


def test_check_fails_naming_a_missing_motor(tmp_path, robo):
    with FakeFeetechBus({motor_id: STS3215 for motor_id in range(1, 6)}) as fake:  # no id 6
        code, _, err = robo("robot", "check", f"robot={calibrated_arm(tmp_path)}", f"port={fake.port}")
    assert code == 1
    assert err.startswith("FAIL: robot check failed (connect)") and "'gripper' (id 6) does not answer" in err


def test_check_never_powers_an_uncalibrated_arm(tmp_path, robo, feetech_arm):
    # No calibration.json: the check stops before connecting, so no goal position is written
    # and torque is never enabled (an uncalibrated goal sent the joints 0.3-0.4 rad away).
    goals = [feetech_arm.value(i, "goal_position") for i in ARM_IDS]
    code, out, err = robo("robot", "check", f"robot={robot_yaml(tmp_path, 'so101_arm')}",
                          f"port={feetech_arm.port}")
    assert code == 1 and err.startswith("FAIL: robot check failed (calibration)"), err
    assert any(line.startswith("connect") and "SKIP" in line for line in out.splitlines())
    assert [feetech_arm.value(i, "goal_position") for i in ARM_IDS] == goals
    assert [feetech_arm.value(i, "torque_enable") for i in ARM_IDS] == [0] * 6


def test_check_fails_on_a_latched_estop(tmp_path, robo, dynamixel_base):
    (tmp_path / "estop").touch()
    code, _, err = robo("robot", "check", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}",
                       f"port={dynamixel_base.port}")
    assert code == 1 and "e-stop: latched" in err


def test_calibrate_arm_records_zero_pose_and_ranges(tmp_path, feetech_arm):
    path = robot_yaml(tmp_path, "so101_arm")
    zero = dict(zip(ARM_IDS, [2000, 2100, 1900, 2050, 2048, 1500]))  # the gripper open at 1500
    low = dict(zip(ARM_IDS, [1000, 1200, 900, 1100, 600, 1500]))
    high = dict(zip(ARM_IDS, [3000, 3100, 2900, 3050, 2600, 2600]))  # jumps under half a turn: no wrap
    prompts = []

    def user(message):
        """Moves the fake joints as asked, each pose held until the sampling has read it."""
        prompts.append(message)
        for pose in ([zero] if len(prompts) == 1 else [low, high, zero]):
            with feetech_arm.handled(SYNC_READ, count=2):  # the second read starts after the move
                for motor_id, ticks in pose.items():
                    feetech_arm.set_value(motor_id, "present_position", ticks)

    calibrate_robot(load_robot_config(path), feetech_arm.port, prompt=user)
    assert "zero pose" in prompts[0] and "whole range" in prompts[1]
    saved = json.loads((path.parent / "calibration.json").read_text())
    names = list(load_robot_config(path).motors)
    assert saved == {name: {"homing_offset": zero[i], "range_min": low[i], "range_max": high[i], "drive_direction": 1}
                     for name, i in zip(names, ARM_IDS)}
    assert [feetech_arm.value(i, "torque_enable") for i in ARM_IDS] == [0] * 6


def test_calibrate_base_finds_each_wheels_direction(tmp_path, dynamixel_base):
    path = robot_yaml(tmp_path, "diffdrive_base")

    def roll_forward(message):  # the right wheel is mounted mirrored: its ticks count down
        for step in range(1, 11):
            with dynamixel_base.handled(SYNC_READ, count=2):  # each step read before the next
                dynamixel_base.set_value(1, "present_position", 2048 + 100 * step)
                dynamixel_base.set_value(2, "present_position", (2048 - 300 * step) % 4096)  # wraps through 0

    calibration = calibrate_robot(load_robot_config(path), dynamixel_base.port, prompt=roll_forward)
    assert calibration == {"left_wheel": MotorCalibration(0, 0, 4095, 1), "right_wheel": MotorCalibration(0, 0, 4095, -1)}
    assert json.loads((path.parent / "calibration.json").read_text())["right_wheel"]["drive_direction"] == -1


def test_calibrate_needs_someone_at_the_keyboard(tmp_path, dynamixel_base):
    def closed_stdin(message):
        raise EOFError

    with pytest.raises(ConfigError, match="standard input closed: robo robot calibrate is interactive"):
        calibrate_robot(load_robot_config(robot_yaml(tmp_path, "diffdrive_base")), dynamixel_base.port,
                        prompt=closed_stdin)
    assert not (tmp_path / "diffdrive_base" / "calibration.json").exists()


def test_robot_configs_name_what_is_wrong(tmp_path, robo):
    code, _, err = robo("robot", "check", "robot=no_such_robot")
    assert code == 2 and "no robot named 'no_such_robot'; known robots: [" in err and "so101_arm" in err
    path = robot_yaml(tmp_path, "so101_arm", kind="hexapod")
    code, _, err = robo("robot", "check", f"robot={path}")
    assert code == 2 and f"{path}: unknown robot kind 'hexapod'; known kinds: arm, diffdrive, omni" in err
    path = robot_yaml(tmp_path, "diffdrive_base", geometry={"wheel_radius": 0.03, "wheel_radios": 0.1})
    code, _, err = robo("robot", "check", f"robot={path}")
    assert code == 2 and str(path) in err and "wheel_radios" in err
    path = robot_yaml(tmp_path, "so101_arm", arm_model="nowhere.xml")
    save_calibration(path.parent / "calibration.json",
                     {name: MotorCalibration(2048, 1024, 3072) for name in load_robot_config(path).motors})
    code, _, err = robo("robot", "check", f"robot={path}")
    assert code == 2 and "arm_model 'nowhere.xml' is not a file in a hardware/ folder" in err


def test_setup_motors_gives_a_factory_servo_its_id_and_baud_rate(tmp_path):
    path = robot_yaml(tmp_path, "diffdrive_base", motors={"left_wheel": {"id": 5, "model": "xl430-w250"}})
    with FakeDynamixelBus({1: XL430}) as fake:  # as from the factory: id 1, 57600 bit/s
        fake.set_value(1, "baud_rate", 1)
        prompts = []
        found = setup_motors(load_robot_config(path), fake.port, prompt=prompts.append, latency_timer_ms=4.0)
        # the fake answers at any rate: found at 1 Mbit/s, or at 57600 when a loaded machine
        # made a ping of the first scan late
        assert found[0][:2] == ("left_wheel", 1) and found[0][2] in (1_000_000, 57_600)
        assert list(fake.tables) == [5]
        assert fake.value(5, "id") == 5 and fake.value(5, "baud_rate") == 3  # 1 Mbit/s
    assert prompts == ["Connect ONLY motor 'left_wheel' (to get id 5, xl430-w250) to the bus adapter, with "
                       "power on, then press Enter. "]


def test_setup_motors_retries_a_reply_the_feetech_sdk_cannot_parse(tmp_path):
    path = robot_yaml(tmp_path, "omni_base", motors={"back_wheel": {"id": 8, "model": "sts3215"}})
    with FakeFeetechBus({1: STS3215}) as fake:  # as from the factory: id 1, 1 Mbit/s
        # the scan's ping reads the model number whole; the model check's first reply has no data
        fake.truncate_reads("model_number", count=1, after=1)
        found = setup_motors(load_robot_config(path), fake.port, prompt=lambda message: None, latency_timer_ms=2.0)
        assert found == [("back_wheel", 1, 1_000_000)] and fake.truncated == 1
        assert list(fake.tables) == [8]


@pytest.mark.parametrize("command,asks", [
    ("find-port", "Unplug the USB cable of the bus adapter, then press Enter."),
    ("setup-motors", "Connect ONLY motor 'left_wheel' (to get id 1, xl430-w250) to the bus adapter"),
    ("calibrate", "Roll the base straight forward by hand, about one wheel turn; then press Enter.")])
def test_interactive_commands_stop_at_their_first_question_without_a_terminal(tmp_path, robo, monkeypatch,
                                                                            dynamixel_base, command, asks):
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # a pipe at its end, as in a CI job
    settings = [] if command == "find-port" else [f"robot={robot_yaml(tmp_path, 'diffdrive_base')}",
                                                  f"port={dynamixel_base.port}"]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [types.SimpleNamespace(device="/dev/ttyUSB0")])
    code, _, err = robo("robot", command, *settings)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f'error: standard input is not a terminal, so nobody can answer "{asks}')
    assert err.endswith('": run this command in a terminal\n')
    if command == "setup-motors":
        assert dynamixel_base.instructions == []  # asked before the bus is touched
    if command == "calibrate":
        assert [dynamixel_base.value(i, "torque_enable") for i in (1, 2)] == [0, 0]
        assert not (tmp_path / "diffdrive_base" / "calibration.json").exists()


def test_find_port_names_the_port_that_disappears(capsys):
    ports = [["/dev/ttyS0", "/dev/ttyUSB0"], ["/dev/ttyS0"]]
    assert find_port(list_ports=lambda: ports.pop(0), prompt=lambda message: None) == "/dev/ttyUSB0"
    assert "port=/dev/ttyUSB0" in capsys.readouterr().out


def test_terminal_key_names():
    assert parse_keys("W a\x1b[A\x1b\n!") == ["w", "space", "a", "up", "esc", "enter", "!"]


def test_terminal_keys_from_a_terminal_and_a_pipe():
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    with TerminalKeys(os.fdopen(slave, closefd=False)) as keys:
        assert termios.tcgetattr(slave)[3] & termios.ICANON == 0  # keys arrive one by one
        assert keys.read() == []
        os.write(master, b"w \x1b[D")
        assert select.select([slave], [], [], 5.0)[0]  # arrived
        assert keys.read() == ["w", "space", "left"]
    assert termios.tcgetattr(slave) == before  # the terminal's settings are back
    os.close(master)
    os.close(slave)
    read_end, write_end = os.pipe()
    os.write(write_end, b"d")
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        keys = TerminalKeys(pipe)
        assert keys.read() == ["d", "esc"] and keys.read() == ["esc"]  # the end of input quits


def test_teleop_sends_the_expected_wheel_speeds_and_space_latches_the_estop(tmp_path, capsys, dynamixel_base,
                                                                            clock):
    robot = make_robot(load_robot_config(robot_yaml(tmp_path, "diffdrive_base")), period_s=0.05,
                       port=dynamixel_base.port, clock=clock)
    keys = ScriptedKeys([["w"], ["w"], ["w"], ["w"], ["s"], ["s"], ["space"], ["w"], ["a"]])
    with robot:
        sent = teleop(robot, keys, hz=20.0, settings=DriveSettings(speed=0.2))
        latched = robot.estop.is_latched
        goals_after = [dynamixel_base.value(i, "goal_velocity") for i in (1, 2)]
    f = 0.2 / 0.033  # m/s over the wheel radius: 6.06 rad/s, under the 6.5 rad/s limit
    # from rest and reversing, the wheel acceleration limit (100 rad/s^2 at 20 Hz) allows 5 rad/s
    # per command
    expected = [[5, 5], [f, f], [f, f], [f, f], [f - 5, f - 5], [f - 10, f - 10], [0, 0], [0, 0], [0, 0]]
    np.testing.assert_allclose(np.array(sent), expected, atol=1e-9)
    assert latched and goals_after == [0, 0]
    out = capsys.readouterr().out
    assert "left_wheel.vel=+6.061 right_wheel.vel=+6.061" in out and "E-STOP: key 'space' pressed" in out


def test_a_base_stops_when_no_motion_key_arrives_for_key_timeout_s(tmp_path, dynamixel_base, clock):
    robot = make_robot(load_robot_config(robot_yaml(tmp_path, "diffdrive_base")), period_s=0.0625,
                       port=dynamixel_base.port, clock=clock)
    keys = ScriptedKeys([["w"], [], [], [], [], []])  # one press at t = 0, then 62.5 ms ticks without one
    with robot:
        sent = teleop(robot, keys, hz=16.0, settings=DriveSettings(speed=0.2, key_timeout_s=0.125),
                      duration_s=0.375, echo=lambda line: None)
    f = 0.2 / 0.033
    np.testing.assert_allclose(np.array(sent), [[f, f]] * 3 + [[0, 0]] * 3, atol=1e-9)  # 0.125 s still moves
    assert clock.now() == 0.375  # six ticks, each to its deadline


def test_teleop_nudges_an_arm_joint(tmp_path, feetech_arm, clock):
    robot = make_robot(load_robot_config(calibrated_arm(tmp_path)), period_s=0.05, port=feetech_arm.port, clock=clock)
    with robot:
        sent = teleop(robot, ScriptedKeys([["1"], ["1"], ["@"]]), hz=20.0, settings=DriveSettings(joint_step=0.1))
    np.testing.assert_allclose(np.array(sent)[:, :2], [[0.1, 0.0], [0.2, 0.0], [0.2, -0.1]], atol=2 * math.pi / 4096)


def test_record_stores_each_cameras_frames_as_uint8_one_frame_per_chunk_and_trains(tmp_path, dynamixel_base, clock):
    """A looping replayed camera on the base; its frames go in as front_image beside the joints,
    and a policy trains on the recording with the camera as an input."""
    import imageio.v3 as iio

    from robo_policies.data.validate import validate_dataset
    from robo_policies.policy import Policy, PolicyConfig
    from robo_policies.train.config import TrainConfig
    from robo_policies.train.trainer import train

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        iio.imwrite(frames / f"{i}.png", np.full((12, 16, 3), 50 * i, np.uint8))
    config = robot_yaml(tmp_path, "diffdrive_base", camera_timeout_s=1000.0,  # the fake clock outruns the replay
                        cameras={"front": {"type": "replay", "device": str(frames), "fps": 100, "loop": True}})
    robot = make_robot(load_robot_config(config), period_s=0.05, port=dynamixel_base.port, clock=clock)
    out = tmp_path / "camera.zarr"
    with robot:
        keys = ScriptedKeys([["enter"], ["w"], ["w"], [], [], [], ["enter"], ["d"], ["d"], ["d"], [], []])
        record(robot, keys, out, episodes=2, fps=20.0, episode_s=0.25, settings=DriveSettings(), echo=lambda line: None)
    buffer = ReplayBuffer.open(out)
    images = buffer["front_image"]
    assert buffer.n_episodes == 2 and images.shape == (10, 12, 16, 3) and images.dtype == np.uint8
    assert images.chunks == (1, 12, 16, 3) and set(np.unique(images[:])) <= {0, 50, 100}
    validate_dataset(out)
    result = train(out, tmp_path / "run", PolicyConfig(net="mlp", n_obs_steps=1, horizon=4, n_action_steps=2,
                                                     image_feature_dim=8, samples_per_obs=1),
                   TrainConfig(steps=2, batch_size=4, log_every=1, checkpoint_every=2, val_ratio=0.0,
                               loader_workers=0), progress=False)
    policy = Policy.load(result.policy_dir)
    assert policy.obs_shapes["front_image"] == (12, 16, 3) and "timestamp" not in policy.obs_shapes
    small = tmp_path / "small.zarr"  # image_size: frames stored as deploy would feed a policy
    with robot:
        keys = ScriptedKeys([["enter"], ["w"], [], [], [], [], ["enter"]])
        record(robot, keys, small, episodes=1, fps=20.0, episode_s=0.25, settings=DriveSettings(),
               echo=lambda line: None, image_size=8)
    images = ReplayBuffer.open(small)["front_image"]
    assert images.shape == (5, 8, 8, 3) and set(np.unique(images[:])) <= {0, 50, 100}
    with robot, pytest.raises(ConfigError, match=r"small.zarr: 'front_image' is stored as \(8, 8, 3\) per step, "
                                                 r"the robot now gives \(6, 6, 3\)"):  # refused before recording
        record(robot, ScriptedKeys([["enter"], [], [], [], [], [], ["enter"]]), small, episodes=1, fps=20.0,
               episode_s=0.25, settings=DriveSettings(), echo=lambda line: None, image_size=6)
    assert ReplayBuffer.open(small).n_episodes == 1


def test_replay_sends_a_recorded_episodes_actions_again_and_refuses_another_robots(tmp_path, dynamixel_base, clock):
    from robo_policies.robots.replay_episode import recorded_actions, replay_episode

    out = tmp_path / "teleop.zarr"
    robot = make_robot(load_robot_config(robot_yaml(tmp_path, "diffdrive_base")), period_s=0.05,
                       port=dynamixel_base.port, clock=clock)
    with robot:
        keys = ScriptedKeys([["enter"], ["w"], ["w"], ["d"], [], [], ["enter"], ["a"], [], [], [], []])
        record(robot, keys, out, episodes=2, fps=20.0, episode_s=0.25, settings=DriveSettings(), echo=lambda line: None)
    recorded = ReplayBuffer.open(out).episode(0)["action"]
    sent = []
    with robot:
        send = robot.send_action
        robot.send_action = lambda action: sent.append(send(action)) or sent[-1]
        start = clock.now()
        assert replay_episode(robot, recorded_actions(robot, out, 0), rate=20.0, echo=lambda line: None) == 5
        assert clock.now() - start == pytest.approx(0.25)  # at the recorded rate
    np.testing.assert_allclose(np.array(sent), recorded, rtol=1e-6)  # the chain let all of it through again
    with pytest.raises(ConfigError, match=r"holds episodes 0\.\.1; episode=2 is not one"):
        recorded_actions(robot, out, 2)
    robot.name = "other_base"
    with pytest.raises(ConfigError, match="was recorded on robot 'diffdrive_base', not 'other_base'"):
        recorded_actions(robot, out, 0)


@pytest.mark.parametrize("follower_name, leader_name, fake_bus, follower_model, leader_model", [
    ("so101_arm", "so101_leader", FakeFeetechBus, STS3215, STS3215),
    ("dynamixel_arm", "koch_leader", FakeDynamixelBus, 1200, 1190),  # XL330-M288 follower, XL330-M077 leader
])
def test_a_leader_arm_drives_the_follower_through_its_chain_and_is_never_powered(
        tmp_path, clock, follower_name, leader_name, fake_bus, follower_model, leader_model):
    from robo_policies.robots.leader import LeaderArm, leader_session

    calibrated = []
    for name in (follower_name, leader_name):  # both arms calibrated alike: the same zero pose
        path = robot_yaml(tmp_path, name)
        calibration = {motor: MotorCalibration(2048, 1024, 3072) for motor in load_robot_config(path).motors}
        calibration["gripper"] = MotorCalibration(2048, 2048, 3000)
        save_calibration(path.parent / "calibration.json", calibration)
        calibrated.append(path)
    follower_yaml, leader_yaml = calibrated
    with fake_bus({i: follower_model for i in ARM_IDS}, clock=clock.now) as fake_follower, \
            fake_bus({i: leader_model for i in ARM_IDS}, clock=clock.now) as fake_leader:
        ticks = [2148, 1998, 2048, 2100, 2048, 2524]  # +100, -50, 0, +52 ticks; the gripper half closed
        for motor_id, tick in zip(ARM_IDS, ticks):
            fake_leader.set_value(motor_id, "present_position", tick)
        follower = make_robot(load_robot_config(follower_yaml), period_s=0.05, port=fake_follower.port, clock=clock)
        with leader_session(load_robot_config(leader_yaml), fake_leader.port) as leader, follower:
            sent = teleop(follower, ScriptedKeys([[], [], ["esc"]]), hz=20.0, settings=DriveSettings(),
                          controller=LeaderArm(leader, follower), echo=lambda line: None)
        assert [value for _, _, value in fake_leader.writes("torque_enable") if value] == []
        assert fake_leader.writes("goal_position") == []
    radians = 2 * math.pi / 4096
    expected = [100 * radians, -50 * radians, 0.0, 52 * radians, 0.0, (2524 - 2048) / (3000 - 2048)]
    np.testing.assert_allclose(sent[-1], expected, atol=radians)


def test_a_gamepad_drives_the_base_only_while_its_enable_button_is_held(tmp_path, dynamixel_base, clock):
    """A fake gamepad: a FIFO carrying Linux joystick events (8 bytes each)."""
    from robo_policies.robots.gamepad import ENABLE_BUTTON, EVENT, LEFT_Y, RIGHT_X, GamepadDrive, Joystick

    def event(kind, number, value):
        return EVENT.pack(0, value, kind, number)

    fifo = tmp_path / "js0"
    os.mkfifo(fifo)
    joystick = Joystick(str(fifo))
    writer = os.open(fifo, os.O_WRONLY)
    robot = make_robot(load_robot_config(robot_yaml(tmp_path, "diffdrive_base")), period_s=0.05,
                       port=dynamixel_base.port, clock=clock)
    settings = DriveSettings(speed=0.05, turn_speed=0.5)
    try:
        with robot:
            drive = GamepadDrive(robot, joystick, settings)
            os.write(writer, event(0x82, LEFT_Y, -32767) + event(0x82, RIGHT_X, 0))  # initial state: stick up
            sent = teleop(robot, ScriptedKeys([[], ["esc"]]), hz=20.0, settings=settings, controller=drive,
                          echo=lambda line: None)
            assert np.allclose(sent, 0.0)  # the stick alone does nothing without the enable button
            full = event(0x01, ENABLE_BUTTON, 1)
            os.write(writer, full[:5])  # an event split across reads is put back together
            os.write(writer, full[5:] + event(0x02, RIGHT_X, 16384))
            sent = teleop(robot, ScriptedKeys([[], ["esc"]]), hz=20.0, settings=settings, controller=drive,
                          echo=lambda line: None)
            turn = -(16384 / 32767 - 0.1) / 0.9 * settings.turn_speed
            np.testing.assert_allclose(sent[-1], robot.twist_command(settings.speed, turn), rtol=1e-6)
            os.write(writer, event(0x01, ENABLE_BUTTON, 0))  # let go: the base stops
            sent = teleop(robot, ScriptedKeys([["esc"]]), hz=20.0, settings=settings, controller=drive,
                          echo=lambda line: None)
            assert np.allclose(sent, 0.0)
    finally:
        os.close(writer)
        joystick.close()
    with pytest.raises(DeviceFault, match=r"gamepad /nonexistent/js0: cannot open it .* is it plugged in"):
        Joystick("/nonexistent/js0")


def test_a_gamepad_that_disappears_is_a_device_fault_naming_it(tmp_path, monkeypatch):
    import errno

    from robo_policies.robots import gamepad

    fifo = tmp_path / "js0"
    os.mkfifo(fifo)
    joystick = gamepad.Joystick(str(fifo))

    def unplugged(fd, size):
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(gamepad.os, "read", unplugged)
    with pytest.raises(DeviceFault, match=f"gamepad {fifo} was lost \\(No such device\\)"):
        joystick.poll()
    monkeypatch.undo()
    joystick.close()


def test_an_uncalibrated_leader_stops_the_start_before_the_follower_is_touched(tmp_path, feetech_arm, robo):
    leader_yaml = robot_yaml(tmp_path, "so101_leader")  # never calibrated
    run = robo("record", f"robot={calibrated_arm(tmp_path)}", f"port={feetech_arm.port}", "teleop=leader",
               f"leader={leader_yaml}", "leader_port=/dev/null", f"out={tmp_path / 'x.zarr'}")
    assert run.code == 2 and "calibration.json is missing: run `robo robot calibrate robot=so101_leader`" in run.err, \
        run.err
    assert feetech_arm.instructions == []  # the follower was not even pinged


def test_robo_replay_of_another_robots_dataset_is_refused_before_the_bus_is_touched(tmp_path, dynamixel_base, robo):
    out = tmp_path / "other.zarr"
    ReplayBuffer.create(out, attrs={"robot": "omni_base", "fps": 20.0}).add_episode(
        {"action": np.zeros((3, 3), np.float32)})
    run = robo("replay", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}", f"port={dynamixel_base.port}",
               f"dataset={out}")
    assert run.code == 2 and "was recorded on robot 'omni_base', not 'diffdrive_base'" in run.err, run.err
    assert dynamixel_base.instructions == []


def test_record_saves_the_sent_actions_and_resumes(tmp_path, capsys, dynamixel_base, clock):
    out = tmp_path / "teleop.zarr"
    robot = make_robot(load_robot_config(robot_yaml(tmp_path, "diffdrive_base")), period_s=0.05,
                       port=dynamixel_base.port, clock=clock)
    sent = []
    with robot:
        send = robot.send_action
        robot.send_action = lambda action: sent.append(send(action)) or sent[-1]
        # Enter starts an episode (one tick of the reset phase), then 5 recorded ticks (0.25 s at 20 Hz)
        keys = ScriptedKeys([["enter"], ["w"], ["w"], [], [], [], ["enter"], ["d"], ["d"], ["d"], [], []])
        result = record(robot, keys, out, episodes=2, fps=20.0, episode_s=0.25, settings=DriveSettings(),
                        task="drive forward")
    assert result.episodes_saved == 2 and result.steps_saved == 10
    buffer = ReplayBuffer.open(out)
    assert buffer.n_episodes == 2 and set(buffer.keys) == {"action", "base_pose", "base_vel", "wheel_vel", "timestamp"}
    np.testing.assert_allclose(buffer.episode(0)["timestamp"], np.arange(5) / 20.0)  # the robot's (fake) clock
    np.testing.assert_allclose(buffer.episode(0)["action"], sent[1:6], rtol=1e-6)
    np.testing.assert_allclose(buffer.episode(1)["action"], sent[7:12], rtol=1e-6)
    assert np.all(buffer.episode(0)["action"][:2] > 0)  # forward, ramping up
    assert buffer.attrs["robot"] == "diffdrive_base" and buffer.attrs["fps"] == 20.0

    # resumed: the episodes there are reported; Backspace discards an episode to record it again;
    # Esc mid-episode drops that episode only
    with robot:
        keys = ScriptedKeys([["enter"], ["d"], ["backspace"], ["enter"], ["w"], ["w"], [], [], [],
                             ["enter"], ["w"], ["esc"]])
        result = record(robot, keys, out, episodes=3, fps=20.0, episode_s=0.25, settings=DriveSettings(),
                        task="turn")
    printed = capsys.readouterr().out
    assert "2 episodes already recorded" in printed and "episode 3 discarded (2 steps): record it again" in printed
    buffer = ReplayBuffer.open(out)
    assert result.episodes_saved == 1 and buffer.n_episodes == 3 and buffer["action"].shape[0] == 15
    assert buffer.attrs["tasks"] == ["drive forward", "turn"] and buffer.meta("task_index").tolist() == [0, 0, 1]


def test_record_format_lerobot_writes_a_v30_directory_that_reads_back_appends_and_trains(tmp_path, robo,
                                                                                          dynamixel_base, clock):
    """Two episodes with a replayed camera into format=lerobot: LeRobotDataset reads the same
    actions and clock as the zarr recording of the same keys and the frames within the codec's
    loss; a second session appends a third episode with a new task; a policy trains on it."""
    import imageio.v3 as iio

    from robo_policies.data.lerobot.dataset import LeRobotDataset
    from robo_policies.data.validate import validate_dataset
    from robo_policies.policy import Policy

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        iio.imwrite(frames / f"{i}.png", np.full((16, 24, 3), 60 * i + 20, np.uint8))
    config = robot_yaml(tmp_path, "diffdrive_base", camera_timeout_s=1000.0,
                        cameras={"front": {"type": "replay", "device": str(frames), "fps": 100, "loop": True}})
    keys = [["enter"], ["w"], ["w"], [], [], [], ["enter"], ["d"], ["d"], ["d"], [], []]
    recorded = {}
    for format, out in (("zarr", tmp_path / "teleop.zarr"), ("lerobot", tmp_path / "teleop")):
        robot = make_robot(load_robot_config(config), period_s=0.05, port=dynamixel_base.port, clock=FakeClock())
        with robot:
            record(robot, ScriptedKeys(keys), out, episodes=2, fps=20.0, episode_s=0.25, settings=DriveSettings(),
                   echo=lambda line: None, task="drive", format=format)
        recorded[format] = out
    zarr, lerobot = ReplayBuffer.open(recorded["zarr"]), LeRobotDataset(recorded["lerobot"])
    assert lerobot.n_episodes == 2 and lerobot.episode_lengths.tolist() == [5, 5]
    assert lerobot.keys == zarr.keys == ["action", "base_pose", "base_vel", "front_image", "timestamp", "wheel_vel"]
    for key in ("action", "base_pose", "base_vel", "wheel_vel", "timestamp"):
        assert lerobot[key].dtype == zarr[key].dtype and lerobot[key].shape == zarr[key].shape, key
        np.testing.assert_array_equal(lerobot[key], zarr[key][:], err_msg=key)  # the recorded clock too
    assert np.abs(zarr["action"][:]).max() > 0  # the keys moved the base
    images = lerobot["front_image"][:]
    assert images.shape == (10, 16, 24, 3) and images.dtype == np.uint8
    levels = np.array([20, 80, 140])  # the camera's frames (which one a step got depends on the wall clock)
    nearest = levels[np.abs(images.mean(axis=(1, 2, 3))[:, None] - levels).argmin(1)]
    assert np.abs(images.astype(int) - nearest[:, None, None, None]).mean() < 2.0  # AV1 at CRF 30, flat frames
    assert lerobot.attrs["robot"] == "diffdrive_base" and lerobot.attrs["tasks"] == ["drive"]
    assert lerobot.meta("task_index").tolist() == [0, 0] and lerobot.meta("start_time").shape == (2,)
    validate_dataset(recorded["lerobot"])

    robot = make_robot(load_robot_config(config), period_s=0.05, port=dynamixel_base.port, clock=clock)
    with robot:  # a second session: episode 3 with another task
        result = record(robot, ScriptedKeys([["enter"], ["a"], [], [], [], [], ["enter"]]), recorded["lerobot"],
                        episodes=1, fps=20.0, episode_s=0.25, settings=DriveSettings(), echo=lambda line: None,
                        task="turn left", format="lerobot")
    assert result.episodes_before == 2 and result.episodes_saved == 1
    lerobot = LeRobotDataset(recorded["lerobot"])
    assert lerobot.n_episodes == 3 and lerobot.episode_lengths.tolist() == [5, 5, 5]
    assert lerobot.attrs["tasks"] == ["drive", "turn left"] and lerobot.meta("task_index").tolist() == [0, 0, 1]
    root = recorded["lerobot"]
    info = json.loads((root / "meta/info.json").read_text())
    assert info["total_episodes"] == 3 and info["total_frames"] == 15 and info["total_tasks"] == 2
    assert sorted(p.name for p in (root / "data/chunk-000").iterdir()) == ["file-000.parquet", "file-001.parquet",
                                                                         "file-002.parquet"]
    assert len(list((root / "videos/observation.images.front/chunk-000").iterdir())) == 3
    np.testing.assert_array_equal(lerobot["action"][:10], zarr["action"][:])  # the first two kept as they were
    run = robo("train", f"dataset={root}", f"out={tmp_path / 'run'}", "policy=mlp_bc", "policy.net=mlp",
               "policy.n_obs_steps=1", "policy.horizon=4", "policy.n_action_steps=2", "policy.hidden_dim=32",
               "policy.n_blocks=1", "train.batch_size=4", "train.steps=3", "train.threads=1",
               "train.loader_workers=0", "progress=false")
    assert run.code == 0, run.err
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["steps"] == 3
    assert Policy.load(tmp_path / "run" / "checkpoint").obs_shapes["front_image"] == (16, 24, 3)


def test_record_refuses_an_out_of_the_other_format(tmp_path, dynamixel_base, clock):
    robot = make_robot(load_robot_config(robot_yaml(tmp_path, "diffdrive_base")), period_s=0.05,
                       port=dynamixel_base.port, clock=clock)
    keys = [["enter"], [], [], [], [], [], ["enter"]]
    with robot:
        record(robot, ScriptedKeys(keys), tmp_path / "a.zarr", 1, 20.0, 0.25, DriveSettings(), echo=lambda line: None)
        record(robot, ScriptedKeys(keys), tmp_path / "b", 1, 20.0, 0.25, DriveSettings(), echo=lambda line: None,
               format="lerobot")
        with pytest.raises(ConfigError, match=r"b is a LeRobot dataset directory \(it has meta/info.json\): record "
                                              r"into it with format=lerobot"):
            record(robot, ScriptedKeys(keys), tmp_path / "b", 1, 20.0, 0.25, DriveSettings(), echo=lambda line: None)
        with pytest.raises(ConfigError, match=r"a.zarr exists and is not a LeRobot dataset directory"):
            record(robot, ScriptedKeys(keys), tmp_path / "a.zarr", 1, 20.0, 0.25, DriveSettings(),
                   echo=lambda line: None, format="lerobot")
        with pytest.raises(ConfigError, match=r"format='parquet': choose one of zarr, lerobot"):
            record(robot, ScriptedKeys(keys), tmp_path / "c", 1, 20.0, 0.25, DriveSettings(), echo=lambda line: None,
                   format="parquet")
