"""Safety layer: each filter's numbers, the chain's bookkeeping, config errors, e-stop, watchdog."""

import signal
import threading

import numpy as np
import pytest
import yaml

from robo_policies.robots.clock import FakeClock
from robo_policies.robots.safety import (
    AccelerationLimit,
    AccelerationLimitConfig,
    EStop,
    JointLimits,
    JointLimitsConfig,
    MaxStep,
    MaxStepConfig,
    RejectNonFinite,
    RejectNonFiniteConfig,
    SafetyChain,
    SafetyContext,
    VelocityLimit,
    VelocityLimitConfig,
    Watchdog,
    WheelSpeedLimit,
    WheelSpeedLimitConfig,
    WorkspaceBox,
    WorkspaceBoxConfig,
    build_safety_chain,
)
from robo_policies.utils.errors import ConfigError


def context(present=None, last_sent=None, previous_sent=None, dt=0.1, hold=None, dim=3):
    as_array = lambda v: None if v is None else np.asarray(v, dtype=np.float64)  # noqa: E731
    if hold is None:
        hold = present if present is not None else np.zeros(dim)
    return SafetyContext(present=as_array(present), last_sent=as_array(last_sent),
                         previous_sent=as_array(previous_sent), dt=dt, hold=as_array(hold))


def test_non_finite_command_is_replaced_by_last_sent_or_hold():
    f = RejectNonFinite(RejectNonFiniteConfig())
    command = np.array([0.1, np.nan, 0.3])
    out = f(command, context(present=[1.0, 2.0, 3.0], last_sent=[0.5, 0.6, 0.7]))
    np.testing.assert_array_equal(out, [0.5, 0.6, 0.7])
    assert np.isnan(command[1])  # input untouched
    # Nothing sent yet: the hold command (here the present position).
    out = f(np.array([np.inf, 0.0, 0.0]), context(present=[1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    # A finite command passes as it is.
    np.testing.assert_array_equal(f(np.array([0.1, 0.2, 0.3]), context()), [0.1, 0.2, 0.3])


def test_joint_limits_clamp_exactly_and_do_not_mutate():
    f = JointLimits(JointLimitsConfig(low=[-1.0, -2.0, 0.0], high=[1.0, 2.0, 1.0]))
    command = np.array([1.5, -2.5, 0.25])
    out = f(command, context())
    np.testing.assert_array_equal(out, [1.0, -2.0, 0.25])
    np.testing.assert_array_equal(command, [1.5, -2.5, 0.25])


def test_max_step_clamps_around_present_scalar_and_per_dim():
    present = [0.0, 1.0, -1.0]
    out = MaxStep(MaxStepConfig(0.1))(np.array([0.5, 1.05, -2.0]), context(present=present))
    np.testing.assert_allclose(out, [0.1, 1.05, -1.1])
    out = MaxStep(MaxStepConfig([0.2, 0.01, 1.0]))(np.array([0.5, 1.05, -2.0]), context(present=present))
    np.testing.assert_allclose(out, [0.2, 1.01, -2.0])
    with pytest.raises(ConfigError, match="present"):
        MaxStep(MaxStepConfig(0.1))(np.zeros(3), context())


def test_velocity_limit_bounds_change_per_dt():
    f = VelocityLimit(VelocityLimitConfig([1.0, 2.0, 10.0]))
    out = f(np.array([1.0, -1.0, 0.5]), context(last_sent=[0.0, 0.0, 0.0], dt=0.05))
    np.testing.assert_allclose(out, [0.05, -0.1, 0.5])
    # First command: measured from the present position; a base with neither from rest (hold).
    out = f(np.array([1.0, 0.0, 0.0]), context(present=[0.5, 0.0, 0.0], dt=0.1))
    np.testing.assert_allclose(out, [0.6, 0.0, 0.0])
    out = f(np.array([9.0, 9.0, -9.0]), context(hold=[0.0, 0.0, 0.0], dt=0.1))
    np.testing.assert_allclose(out, [0.1, 0.2, -1.0])


def test_acceleration_limit_bounds_change_of_velocity():
    f = AccelerationLimit(AccelerationLimitConfig(10.0))  # 10 units/s^2 at dt 0.1 -> 0.1 per step^2
    # Moving at 0.5/step (5 units/s); asking for 1.0/step: velocity may grow by 1 unit/s only.
    ctx = context(last_sent=[1.0, 1.0, 1.0], previous_sent=[0.5, 1.0, 1.5], dt=0.1)
    out = f(np.array([2.0, 1.0, 1.0]), ctx)
    np.testing.assert_allclose(out, [1.6, 1.0, 0.6])
    # Velocities before and after, in units/s: change bounded by amax * dt = 1.0.
    v_prev = (np.array([1.0, 1.0, 1.0]) - [0.5, 1.0, 1.5]) / 0.1
    v_new = (out - [1.0, 1.0, 1.0]) / 0.1
    assert np.all(np.abs(v_new - v_prev) <= 1.0 + 1e-9)
    # One command sent: starts from rest.
    out = f(np.array([5.0, 0.0, 0.0]), context(last_sent=[0.0, 0.0, 0.0], dt=0.1))
    np.testing.assert_allclose(out, [0.1, 0.0, 0.0])
    # Nothing sent yet: unchanged.
    np.testing.assert_array_equal(f(np.array([5.0, 0.0, 0.0]), context()), [5.0, 0.0, 0.0])


def test_workspace_box_rejects_targets_outside():
    fk = lambda q: q  # noqa: E731 - a "robot" whose joints are its Cartesian position
    f = WorkspaceBox(WorkspaceBoxConfig(low=[-1, -1, 0], high=[1, 1, 1]), fk)
    inside = np.array([0.5, -0.5, 0.5])
    np.testing.assert_array_equal(f(inside, context(last_sent=[0, 0, 0.2])), inside)
    out = f(np.array([0.5, 0.5, -0.01]), context(last_sent=[0, 0, 0.2]))
    np.testing.assert_array_equal(out, [0, 0, 0.2])
    out = f(np.array([2.0, 0.0, 0.5]), context(hold=[0.1, 0.1, 0.1]))
    np.testing.assert_array_equal(out, [0.1, 0.1, 0.1])


def test_wheel_speed_limit_scales_all_wheels_keeping_the_ratio():
    f = WheelSpeedLimit(WheelSpeedLimitConfig(6.5))
    command = np.array([13.0, -6.5, 3.25])
    out = f(command, context())
    np.testing.assert_allclose(out, [6.5, -3.25, 1.625])
    np.testing.assert_allclose(out / out[0], command / command[0])
    assert np.max(np.abs(out)) <= 6.5
    np.testing.assert_array_equal(f(np.array([1.0, -2.0, 6.5]), context()), [1.0, -2.0, 6.5])
    # Per-wheel limits: the tightest ratio wins.
    out = WheelSpeedLimit(WheelSpeedLimitConfig([10.0, 1.0, 10.0]))(np.array([4.0, 2.0, 0.0]), context())
    np.testing.assert_allclose(out, [2.0, 1.0, 0.0])


def test_chain_applies_in_order_and_counts_interventions():
    chain = SafetyChain([
        RejectNonFinite(RejectNonFiniteConfig()),
        JointLimits(JointLimitsConfig(low=-1.0, high=1.0)),
        VelocityLimit(VelocityLimitConfig(1.0)),
    ])
    ctx = context(last_sent=[0.0, 0.0, 0.0], dt=0.1)
    np.testing.assert_allclose(chain.apply([0.05, 0.0, 0.0], ctx), [0.05, 0.0, 0.0])
    out = chain.apply([5.0, 0.0, 0.0], ctx)  # clamped to 1, then rate limited to 0.1
    np.testing.assert_allclose(out, [0.1, 0.0, 0.0])
    out = chain.apply([np.nan, 0.0, 0.0], ctx)  # replaced by last_sent; nothing later changes it
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0])
    assert not np.any(np.isnan(out))
    assert chain.interventions == {"reject_non_finite": 1, "joint_limits": 1, "velocity_limit": 1}
    assert chain.last_events["joint_limits"] == "[0] 5->1"
    assert chain.last_event.startswith("reject_non_finite: [0] nan->0")
    with pytest.raises(ValueError, match="shape"):
        chain.apply([0.0, 0.0], ctx)
    chain.reset()
    assert chain.interventions == {"reject_non_finite": 0, "joint_limits": 0, "velocity_limit": 0}
    assert chain.last_event is None
    with pytest.raises(ConfigError, match="unique"):
        SafetyChain([JointLimits(JointLimitsConfig(-1, 1)), JointLimits(JointLimitsConfig(-2, 2))])


def test_build_from_yaml_matches_hand_built_chain():
    specs = yaml.safe_load("""
    - {type: reject_non_finite}
    - {type: joint_limits, low: [-1, -1, 0], high: [1, 1, 1]}
    - {type: max_step, max_step: 0.2}
    - {type: velocity_limit, max_velocity: [1, 1, 100]}
    - {type: acceleration_limit, max_acceleration: 1000}
    - {type: workspace_box, low: [-1, -1, -1], high: [1, 1, 1]}
    - {type: wheel_speed_limit, max_speed: 50, name: sanity}
    """)
    chain = build_safety_chain(specs, fk=lambda q: q, dim=3)
    assert [f.name for f in chain.filters] == [
        "reject_non_finite", "joint_limits", "max_step", "velocity_limit", "acceleration_limit",
        "workspace_box", "sanity"]
    out = chain.apply([0.9, -0.9, 2.0], context(present=[0.0, 0.0, 0.5], last_sent=[0.0, 0.0, 0.5], dt=0.1))
    np.testing.assert_allclose(out, [0.1, -0.1, 0.7])


@pytest.mark.parametrize("spec, message", [
    ({"type": "joint_limit", "low": 0, "high": 1}, "unknown or missing 'type' 'joint_limit'"),
    ({"low": 0, "high": 1}, "missing 'type'"),
    ({"type": "joint_limits", "low": 0, "hi": 1}, "unknown key 'hi'"),
    ({"type": "joint_limits", "low": 0}, "missing key 'high'"),
    ({"type": "joint_limits", "low": 1, "high": 0}, r"joint_limits.low must be <= high"),
    ({"type": "joint_limits", "low": [0, 0], "high": [1, 1, 1]}, "different lengths"),
    ({"type": "max_step", "max_step": -0.1}, r"max_step.max_step: every value must be > 0"),
    ({"type": "velocity_limit", "max_velocity": "fast"}, r"velocity_limit.max_velocity: expected a number"),
    ({"type": "wheel_speed_limit", "max_speed": [1, 2]}, "'max_speed' has 2 values, the command 3"),
    ({"type": "workspace_box", "low": [0, 0], "high": [1, 1, 1]}, r"workspace_box.low: expected \[x, y, z\]"),
    ({"type": "workspace_box", "low": [0, 0, 0], "high": [1, 1, 1]}, "needs forward kinematics"),
])
def test_build_errors_name_the_bad_key(spec, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_safety_chain([{"type": "reject_non_finite"}, spec], dim=3)
    assert "safety spec #1" in str(error.value)


def test_estop_file_latches_until_reset(tmp_path):
    stop_file = tmp_path / "robo.estop"
    estop = EStop(file=stop_file)
    chain = SafetyChain([JointLimits(JointLimitsConfig(-1.0, 1.0))], estop=estop)
    ctx = context(last_sent=[0.2, 0.2, 0.2], hold=[0.0, 0.0, 0.0])
    np.testing.assert_allclose(chain.apply([0.5, 0.5, 0.5], ctx), [0.5, 0.5, 0.5])
    stop_file.touch()
    np.testing.assert_array_equal(chain.apply([0.5, 0.5, 0.5], ctx), [0.0, 0.0, 0.0])
    assert estop.is_latched and "robo.estop" in estop.reason
    stop_file.unlink()
    for _ in range(3):  # the cause is gone, more commands arrive: still stopped
        np.testing.assert_array_equal(chain.apply([0.5, 0.5, 0.5], ctx), [0.0, 0.0, 0.0])
    assert estop.is_latched
    chain.reset()  # resetting the chain does not release the stop
    assert estop.is_latched and chain.interventions["estop"] == 0
    estop.reset()
    assert not estop.is_latched and estop.reason is None
    np.testing.assert_allclose(chain.apply([0.5, 0.5, 0.5], ctx), [0.5, 0.5, 0.5])
    # Reset while the file is still there: latched again at once.
    stop_file.touch()
    assert estop.poll()
    estop.reset()
    assert estop.is_latched


def test_estop_trigger_and_keys():
    clock = FakeClock(start=3.0)
    estop = EStop(keys=("space", "e"), clock=clock)
    assert not estop.on_key("a")
    clock.advance(0.25)
    assert estop.on_key(" ")
    assert "' '" in estop.reason and estop.latched_at == 3.25  # when it latched, on the robot's clock
    clock.advance(1.0)
    estop.trigger("later reason")  # the first reason and time are kept
    assert "' '" in estop.reason and estop.latched_at == 3.25
    estop.reset()
    assert estop.latched_at is None
    assert estop.on_key("E")
    estop.reset()
    estop.trigger("operator")
    assert estop.is_latched and estop.reason == "operator"
    single = EStop(keys="space")  # one key, not the letters s, p, a, c, e
    assert not single.on_key("e") and single.on_key("space")


def test_estop_latches_on_signal():
    estop = EStop()
    estop.install_signal(signal.SIGUSR1)
    try:
        signal.raise_signal(signal.SIGUSR1)  # the handler runs before the next statement
        assert estop.is_latched and estop.reason == "signal SIGUSR1"
    finally:
        estop.uninstall_signals()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_watchdog_fires_once_at_the_timeout_and_rearms():
    clock = FakeClock()
    fired: list[float] = []
    watchdog = Watchdog(0.1, lambda: fired.append(clock.now()), clock=clock)
    for _ in range(5):  # fed every 30 ms: never fires
        clock.advance(0.03)
        assert not watchdog.check()
        watchdog.feed()
    assert not fired and not watchdog.expired and watchdog.last_feed == pytest.approx(0.15)
    clock.advance(0.0999)
    assert not watchdog.check() and not fired
    clock.advance(0.0001)
    assert watchdog.check() and watchdog.expired
    assert fired == [watchdog.expired_at] and fired[0] - watchdog.last_feed == pytest.approx(0.1)
    clock.advance(1.0)
    assert not watchdog.check() and len(fired) == 1  # once per expiry, not every check
    watchdog.feed()  # re-armed
    assert not watchdog.expired
    clock.advance(0.1)
    assert watchdog.check() and len(fired) == 2


def test_a_stopped_watchdog_never_fires():
    clock = FakeClock()
    fired = []
    watchdog = Watchdog(0.1, lambda: fired.append(clock.now()), clock=clock)
    watchdog.start()
    watchdog.stop()
    clock.advance(10.0)
    assert not watchdog.check() and fired == []


def test_a_failing_on_expire_is_logged_not_raised(caplog):
    clock = FakeClock()

    def broken():
        raise RuntimeError("stop failed")

    watchdog = Watchdog(0.1, broken, clock=clock)
    clock.advance(0.1)
    assert watchdog.check() and watchdog.expired
    assert "watchdog on_expire failed" in caplog.text


@pytest.mark.parametrize("timeout_s, period_s, message", [
    (0.0, None, "timeout_s must be positive, got 0.0"),
    (float("nan"), None, "timeout_s must be positive"),
    (0.1, -1.0, "period_s must be positive, got -1.0"),
])
def test_watchdog_settings_are_checked(timeout_s, period_s, message):
    with pytest.raises(ConfigError, match=message):
        Watchdog(timeout_s, lambda: None, period_s=period_s)


def test_smoke_wallclock_watchdog_thread_fires_on_its_own():
    fired = threading.Event()
    with Watchdog(0.05, fired.set) as watchdog:  # the wall clock, checked by its thread
        assert fired.wait(5.0), "the watchdog thread never fired"
        assert watchdog.expired_at - watchdog.last_feed >= 0.05
