"""The deploy path against the MuJoCo twins: control loop, policy worker, safety chain, e-stop."""

import json
import os
import threading

import numpy as np
import pytest
import torch
from fake_servos import FakeDynamixelBus, FakeFeetechBus
from robot_configs import calibrated_arm, robot_yaml
from tiny_policies import make_policy

from robo_policies.envs.registry import get_task
from robo_policies.robots.clock import FakeClock
from robo_policies.robots.config import load_robot_config, robot_names
from robo_policies.robots.control_loop import Chunk, LoopStats, PolicyWorker, run_episode
from robo_policies.robots.factory import make_robot
from robo_policies.utils.errors import ConfigError

XL430, STS3215 = 1060, 777


class ExpertPolicy:
    """The task's scripted expert behind ``predict_chunk``: one action per call."""

    class config:  # noqa: N801 - the attribute a policy has
        n_obs_steps = 1
        n_action_steps = 1

    def __init__(self, keys):
        self.obs_shapes = dict.fromkeys(keys, ())
        self.expert = None
        self.override = None
        """When set, ``override(action)`` replaces the expert's action (fault injection)."""

    def predict_chunk(self, batch):
        obs = {key: value[0, -1].numpy() for key, value in batch.items()}
        action = np.asarray(self.expert(obs), dtype=np.float64)
        if self.override is not None:
            action = self.override(action)
        return torch.as_tensor(action)[None, None]


class GatedPolicy:
    """A constant chunk of Ta actions on a diffdrive base; from its ``open_calls``-th call on,
    each call waits until the test opens ``gate`` (a policy still computing)."""

    obs_shapes = {"base_pose": (4,)}

    def __init__(self, value=0.0, n_action_steps=8, open_calls=1):
        self.config = type("config", (), {"n_obs_steps": 1, "n_action_steps": n_action_steps})
        self.value, self.open_calls = value, open_calls
        self.calls = 0
        self.gate = threading.Event()

    def predict_chunk(self, batch):
        self.calls += 1
        if self.calls > self.open_calls and not self.gate.wait(30.0):
            raise TimeoutError("the test never opened the gate")
        return torch.full((1, self.config.n_action_steps, 2), self.value)


def twin_base(hz, clock):
    """diffdrive_base's twin, commanded at ``hz``, keeping ``clock``."""
    return make_robot(load_robot_config("diffdrive_base"), sim=True, period_s=1.0 / hz, clock=clock)


def run_expert(robot_name, episodes, hz=10.0, override=None):
    """Episodes of the expert driving a robot's twin through the loop; (successes, robot, stats)."""
    config = load_robot_config(robot_name)
    task = get_task(config.sim_task)
    robot = make_robot(config, sim=True, period_s=1.0 / hz)
    policy = ExpertPolicy(robot.observation_features)
    policy.override = override
    worker = PolicyWorker(policy, step_s=0.1)
    stats = LoopStats(period_s=1.0 / hz)
    successes = []
    with robot:
        worker.start()
        try:
            for episode in range(episodes):
                robot.start_episode(episode)
                policy.expert = task.make_expert(robot.env, np.random.default_rng(episode))
                outcome = run_episode(robot, worker, hz, robot.horizon_s, stats, done=robot.is_success,
                                      realtime=False)
                successes.append(outcome.success)
        finally:
            worker.stop()
    return successes, robot, stats


def test_hardware_configs_load():
    assert {"so101_arm", "diffdrive_base"} <= set(robot_names())
    arm = load_robot_config("so101_arm")
    assert arm.action_names[-1] == "gripper.pos" and len(arm.action_names) == 6
    assert load_robot_config("diffdrive_base").action_names == ["left_wheel.vel", "right_wheel.vel"]


@pytest.mark.parametrize("robot_name,hz", [("so101_arm", 10.0), ("diffdrive_base", 50.0)])
def test_expert_succeeds_through_the_loop_and_safety_chain(robot_name, hz):
    successes, robot, stats = run_expert(robot_name, episodes=2, hz=hz)
    assert successes == [True, True]
    assert stats.starved_ticks == 0
    assert robot.safety.interventions["reject_non_finite"] == 0


def test_nan_actions_are_never_sent():
    calls = {"n": 0}

    def every_third_nan(action):
        calls["n"] += 1
        return np.full_like(action, np.nan) if calls["n"] % 3 == 0 else action

    config = load_robot_config("diffdrive_base")
    robot = make_robot(config, sim=True, period_s=0.1)
    policy = ExpertPolicy(robot.observation_features)
    policy.override = every_third_nan
    worker = PolicyWorker(policy, step_s=0.1)
    sent = []
    with robot:
        worker.start()
        robot.start_episode(0)
        policy.expert = get_task("diffdrive_nav").make_expert(robot.env, np.random.default_rng(0))
        original = robot.send_action
        robot.send_action = lambda action: sent.append(original(action)) or sent[-1]
        run_episode(robot, worker, 10.0, 3.0, LoopStats(0.1), realtime=False)
        worker.stop()
        assert np.isfinite(robot.env.data.ctrl).all()
    assert len(sent) == 30 and np.isfinite(sent).all()
    assert robot.safety.interventions["reject_non_finite"] == 10


def test_out_of_limit_action_is_clamped_and_the_clamped_value_returned():
    robot = make_robot(load_robot_config("so101_arm"), sim=True, period_s=0.1)
    with robot:
        robot.start_episode(0)
        present = robot.present_position()
        sent = robot.send_action(np.array([5.0, -5.0, 0.0, 0.0, 0.0, 3.0]))
    # joint limits first (pan 1.92, lift -1.75, gripper 1), then at most 0.4 rad (gripper 1.0)
    # from the present position, then at most 6 rad/s x 0.1 s from nothing sent before.
    expected = np.clip(np.array([1.92, -1.75, 0.0, 0.0, 0.0, 1.0]),
                       present - [0.4, 0.4, 0.4, 0.4, 0.5, 1.0], present + [0.4, 0.4, 0.4, 0.4, 0.5, 1.0])
    np.testing.assert_allclose(sent, expected)
    assert robot.last_record.events == ["joint_limits", "max_step"]


def test_estop_latches_until_reset_and_holds_from_the_next_send(tmp_path):
    config = load_robot_config("diffdrive_base")
    config.estop.file = str(tmp_path / "estop")
    clock = FakeClock()
    robot = make_robot(config, sim=True, period_s=0.1, clock=clock)
    forward = np.array([3.0, 3.0])
    with robot:
        robot.start_episode(0)
        np.testing.assert_allclose(robot.send_action(forward), forward)
        clock.advance(0.1)
        (tmp_path / "estop").touch()  # noticed by the next send, which holds
        np.testing.assert_allclose(robot.send_action(forward), [0.0, 0.0])
        assert robot.estop.latched_at == robot.last_record.timestamp == 0.1
        (tmp_path / "estop").unlink()
        for _ in range(3):
            clock.advance(0.1)
            np.testing.assert_allclose(robot.send_action(forward), [0.0, 0.0])
        assert robot.estop.is_latched and "estop" in robot.estop.reason
        robot.estop.reset()
        np.testing.assert_allclose(robot.send_action(forward), forward)
        clock.advance(0.03)
        robot.estop.trigger("operator")  # between two sends of the loop
        clock.advance(0.07)
        np.testing.assert_allclose(robot.send_action(forward), [0.0, 0.0])
        assert robot.last_record.timestamp - robot.estop.latched_at == pytest.approx(0.07)  # the latency
    assert robot.safety.interventions["estop"] == 5


def test_chunk_schedules_actions_from_its_observation_time():
    chunk = Chunk(start=0.3, actions=np.arange(4.0)[:, None], step_s=0.1)
    assert chunk.action_at(0.29) is None and chunk.action_at(0.7) is None
    assert chunk.action_at(0.3)[0] == 0 and chunk.action_at(0.45)[0] == 1 and chunk.action_at(0.6)[0] == 3
    assert chunk.steps_left(0.3) == 3 and chunk.steps_left(0.65) == 0


def test_loop_stats_report_periods_within_episodes():
    stats = LoopStats(period_s=0.02)
    for start in (0.0, 10.0):  # the gap between episodes is not a period
        stats.new_episode()
        stats.tick_starts += [start + 0.02 * i for i in range(51)] + [start + 1.03]
    summary = stats.summary()
    assert summary["ticks"] == 104 and summary["period_ms_p50"] == pytest.approx(20.0)
    assert summary["period_ms_max"] == pytest.approx(30.0)


def test_deploy_command_writes_its_report(tmp_path, robo):
    shapes = {"base_pose": (4,), "base_vel": (2,), "goal": (2,), "obstacle": (2,)}
    policy = make_policy(shapes=shapes, action_dim=2, action_range=6.0)
    policy.save(tmp_path / "policy", metadata={"task": "diffdrive_nav"})
    run = robo("deploy", "robot=diffdrive_base", f"checkpoint={tmp_path / 'policy'}", "sim=true",
               "episodes=2", "hz=50", "realtime=false", f"out={tmp_path / 'out'}", "progress=false")
    assert run.code == 0, run.err
    report = json.loads((tmp_path / "out" / "deploy.json").read_text())
    assert report["episodes"] == 2 and report["success_rate"] == 0.0  # random weights
    assert report["ticks"] == 2 * 200 * 5 and report["starved_ticks"] == 0
    assert {"period_ms_p50", "period_ms_p99", "missed_deadlines"} <= set(report)
    assert "success rate" in run.out


def test_deploy_refuses_a_checkpoint_from_another_task(tmp_path, robo):
    policy = make_policy(shapes={"base_pose": (4,)}, action_dim=2)
    policy.save(tmp_path / "policy", metadata={"task": "diffdrive_nav"})
    run = robo("deploy", "robot=so101_arm", f"checkpoint={tmp_path / 'policy'}", "sim=true", f"out={tmp_path / 'out'}")
    assert run.code == 2 and "trained on task 'diffdrive_nav'" in run.err


def test_a_key_the_robot_does_not_provide_is_named_with_what_it_provides(tmp_path, robo):
    # A policy that reads privileged simulator state (the cube) on a base's twin: one line
    # naming the key, what the policy reads and what the robot gives.
    policy = make_policy(shapes={"base_pose": (4,), "cube_pos": (3,)}, action_dim=2)
    policy.save(tmp_path / "policy", metadata={"task": None})
    run = robo("deploy", "robot=diffdrive_base", f"checkpoint={tmp_path / 'policy'}", "sim=true",
               "episodes=1", "realtime=false", "policy_hz=10", f"out={tmp_path / 'out'}", "progress=false")
    assert run.code == 2 and run.err.count("\n") == 1, run.err
    assert "observation key(s) ['cube_pos'] missing" in run.err
    assert "the policy reads ['base_pose', 'cube_pos']" in run.err and "'base_vel'" in run.err


def test_a_policy_the_robot_cannot_feed_is_refused_before_anything_is_sent(tmp_path, robo):
    # The real base has odometry, not the goal the twin's task shows: refused before connecting,
    # so not one packet reaches the servos (no ping, no mode write, no torque).
    policy = make_policy(shapes={"base_pose": (4,), "goal": (2,)}, action_dim=2)
    policy.save(tmp_path / "policy", metadata={"task": None})
    with FakeDynamixelBus({1: XL430, 2: XL430}) as fake:
        run = robo("deploy", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}", f"port={fake.port}",
                   f"checkpoint={tmp_path / 'policy'}", "policy_hz=10", "duration_s=1",
                   f"out={tmp_path / 'out'}", "progress=false")
        assert run.code == 2 and "observation key(s) ['goal'] missing from diffdrive_base's observation" in run.err
        assert fake.instructions == []
    run = robo("deploy", "robot=diffdrive_base", "sim=true", f"checkpoint={tmp_path / 'policy'}",
               "policy_hz=10", "episodes=1", "realtime=false", f"out={tmp_path / 'twin'}", "progress=false")
    assert run.code == 0, run.err  # the twin's task does show the goal


def test_a_state_arm_policy_on_the_real_arm_is_refused_naming_the_simulator_keys_before_any_packet(tmp_path, robo):
    # arm_pick_place's state policy reads the cube, the target and the tool position: the real
    # so101_arm has encoders only. Refused before the bus is opened: no torque-enable packet,
    # not even a ping, reaches the servos.
    shapes = {key: space.shape for key, space in
              get_task("arm_pick_place").env().unwrapped.observation_space.spaces.items()}
    policy = make_policy(shapes=shapes, action_dim=6)
    policy.save(tmp_path / "policy", metadata={"task": "arm_pick_place"})
    with FakeFeetechBus(dict.fromkeys(range(1, 7), STS3215)) as fake:
        run = robo("deploy", f"robot={calibrated_arm(tmp_path)}", f"port={fake.port}",
                   f"checkpoint={tmp_path / 'policy'}", "policy_hz=10", "duration_s=1",
                   f"out={tmp_path / 'out'}", "progress=false")
        assert run.code == 2 and run.err.count("\n") == 1, run.err
        assert "observation key(s) ['cube_pos', 'cube_quat', 'eef_pos', 'target_pos'] missing" in run.err
        assert fake.instructions == []
        assert [fake.value(motor_id, "torque_enable") for motor_id in range(1, 7)] == [0] * 6


def test_deploy_starts_and_completes_on_a_bus_that_loses_every_seventh_status_packet(tmp_path, robo):
    # Issue 15: a 6-motor sync read failed as a whole under packet loss. At the default
    # rt_priority, from the first ping on; scripts/bench_faulty_bus.py runs it 10 times per robot.
    policy = make_policy(shapes={"joint_pos": (6,), "joint_vel": (6,)}, action_dim=6, action_range=0.3)
    policy.save(tmp_path / "policy", metadata={"task": None})
    with FakeFeetechBus(dict.fromkeys(range(1, 7), STS3215)) as fake:
        fake.drop_every(7)
        run = robo("deploy", f"robot={calibrated_arm(tmp_path)}", f"port={fake.port}",
                   f"checkpoint={tmp_path / 'policy'}", "hz=20", "policy_hz=10", "duration_s=0.5",
                   f"out={tmp_path / 'out'}", "progress=false")
        assert run.code == 0, run.err
        assert [fake.value(motor_id, "torque_enable") for motor_id in range(1, 7)] == [0] * 6
    report = json.loads((tmp_path / "out" / "deploy.json").read_text())
    assert report["ticks"] == 10 and report["bus_retries"] > 0 and fake.dropped > 0
    assert "bus retries" in run.out


def test_observation_shapes_must_match_too(tmp_path, robo):
    policy = make_policy(shapes={"base_pose": (3,)}, action_dim=2)
    policy.save(tmp_path / "policy", metadata={"task": None})
    run = robo("deploy", "robot=diffdrive_base", "sim=true", f"checkpoint={tmp_path / 'policy'}",
               "policy_hz=10", "episodes=1", "realtime=false", f"out={tmp_path / 'out'}", "progress=false")
    assert run.code == 2 and "{'base_pose': ((3,), (4,))}" in run.err


def test_actions_of_another_size_are_refused_before_anything_is_sent(tmp_path, robo):
    policy = make_policy(shapes={"base_pose": (4,)}, action_dim=3)
    policy.save(tmp_path / "policy", metadata={"task": None})
    with FakeDynamixelBus({1: XL430, 2: XL430}) as fake:
        run = robo("deploy", f"robot={robot_yaml(tmp_path, 'diffdrive_base')}", f"port={fake.port}",
                   f"checkpoint={tmp_path / 'policy'}", "policy_hz=10", "duration_s=1",
                   f"out={tmp_path / 'out'}", "progress=false")
        assert run.code == 2 and run.err.strip() == (
            "error: the policy's actions have 3 dimensions, but diffdrive_base takes 2")
        assert fake.instructions == []


def test_warm_started_policy_shifts_by_the_steps_between_its_observations():
    """The loop asks for the next chunk 2 steps before the present one runs out, so an RTI
    warm start shifts the previous chunk by Ta - 2 = 6 steps, not Ta."""

    class Recorder:
        class config:  # noqa: N801
            n_obs_steps = 2
            n_action_steps = 8

        obs_shapes = {"base_pose": (4,)}
        warm_start = object()  # present: the policy warm-starts

        def __init__(self):
            self.shifts = []

        def predict_chunk(self, batch, shift=None):
            self.shifts.append(shift)
            return torch.zeros(1, 10, 2)

    robot = make_robot(load_robot_config("diffdrive_base"), sim=True, period_s=0.1)
    policy = Recorder()
    worker = PolicyWorker(policy, step_s=0.1)
    with robot:
        worker.start()
        robot.start_episode(0)
        run_episode(robot, worker, 10.0, 2.0, LoopStats(0.1), realtime=False, lead_steps=2)
        worker.stop()
    assert policy.shifts == [None, 6, 6, 6]


def test_the_loop_keeps_its_period_on_the_robots_clock():
    clock = FakeClock()
    robot = twin_base(50.0, clock)
    worker = PolicyWorker(GatedPolicy(), step_s=0.1)
    stats = LoopStats(0.02)
    with robot:
        worker.start()
        robot.start_episode(0)
        outcome = run_episode(robot, worker, 50.0, 0.5, stats)
        worker.stop()
    assert outcome.ticks == 25 and clock.now() == pytest.approx(0.5)
    np.testing.assert_allclose(stats.periods_ms(), np.full(24, 20.0))
    assert stats.summary()["period_ms_p99"] == 20.0 and stats.missed_deadlines == 0


def test_a_late_tick_is_counted_and_the_next_starts_at_once_without_a_burst():
    clock = FakeClock()
    robot = twin_base(50.0, clock)
    worker = PolicyWorker(GatedPolicy(), step_s=0.1)
    stats = LoopStats(0.02)
    with robot:
        send = robot.send_action

        def slow_eleventh_write(action):
            sent = send(action)
            if len(stats.tick_starts) == 11:
                clock.advance(0.05)  # this write took 50 ms of a 20 ms period
            return sent

        robot.send_action = slow_eleventh_write
        worker.start()
        robot.start_episode(0)
        run_episode(robot, worker, 50.0, 0.5, stats)
        worker.stop()
    np.testing.assert_allclose(stats.periods_ms(), [20.0] * 10 + [50.0] + [20.0] * 13)
    summary = stats.summary()
    assert summary["missed_deadlines"] == 1 and summary["period_ms_p50"] == 20.0 and summary["period_ms_max"] == 50.0


def test_ticks_without_an_action_hold_the_robot_and_are_counted():
    """Ta = 4 steps of 20 ms: the loop asks for the next chunk at tick 2, which never comes
    (the policy is stuck), so ticks 4 to 9 hold still."""
    policy = GatedPolicy(value=0.5, n_action_steps=4)
    robot = twin_base(50.0, FakeClock())
    worker = PolicyWorker(policy, step_s=0.02)
    stats = LoopStats(0.02)
    with robot:
        send, sent = robot.send_action, []
        robot.send_action = lambda action: sent.append(send(action)) or sent[-1]
        worker.start()
        robot.start_episode(0)
        run_episode(robot, worker, 50.0, 0.2, stats, lead_steps=2)
        policy.gate.set()
        worker.stop()
    assert stats.starved_ticks == 6 and policy.calls == 2
    np.testing.assert_allclose(sent, [[0.5, 0.5]] * 4 + [[0.0, 0.0]] * 6)


def test_a_chunk_in_flight_when_an_episode_ends_is_not_used_in_the_next():
    policy = GatedPolicy()  # the second call, at t = 0.6 s, waits until episode 1 has ended
    robot = twin_base(50.0, FakeClock())
    worker = PolicyWorker(policy, step_s=0.1)
    stats = LoopStats(0.02)
    ticks = iter(range(10**6))

    def ends_at_tick_31() -> bool:  # t = 0.62 s, just after the loop asked for the chunk of t = 0.6 s
        if next(ticks) == 31:
            policy.gate.set()
            return True
        return False

    with robot:
        worker.start()
        robot.start_episode(0)
        first = run_episode(robot, worker, 50.0, 2.0, stats, done=ends_at_tick_31)
        second = run_episode(robot, worker, 50.0, 0.5, stats)
        worker.stop()
    assert first.ticks == 32 and second.ticks == 25
    assert policy.calls == 3 and stats.starved_ticks == 0  # episode 2 asked for its own first chunk


def test_real_time_priority_is_refused_with_a_warning_not_an_error(monkeypatch):
    from robo_policies.robots import control_loop

    def refuse(pid, policy, param):
        raise PermissionError("Operation not permitted")

    monkeypatch.setattr(control_loop.os, "sched_setscheduler", refuse)
    with pytest.warns(RuntimeWarning, match="cannot run the control loop at real-time priority 50"):
        with control_loop.loop_priority(50) as real_time:
            assert real_time is False
    with pytest.raises(ConfigError, match=r"rt_priority must be in \[1, 99\] \(or 0: off\), got 100"):
        with control_loop.loop_priority(100):
            pass


def test_real_time_priority_is_given_back_after_the_loop():
    from robo_policies.robots import control_loop

    before = os.sched_getscheduler(0)
    with control_loop.loop_priority(10) as real_time:
        inside = os.sched_getscheduler(0)
    assert os.sched_getscheduler(0) == before
    if real_time:  # permitted here (root or CAP_SYS_NICE)
        assert inside == os.SCHED_FIFO
    else:
        pytest.skip("real-time scheduling is not permitted on this machine")
