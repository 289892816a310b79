"""Wheeled-base kinematics: round trips, scaling, the sim model's numbers, odometry."""

import numpy as np
import pytest

from robo_policies.robots.base_kinematics import (
    DiffDriveKinematics,
    Odometry,
    OmniKinematics,
    scale_to_limit,
)


def test_diffdrive_round_trip_and_signs():
    k = DiffDriveKinematics(wheel_radius=0.05, wheel_separation=0.4, max_wheel_speed=100.0)
    np.testing.assert_allclose(k.wheel_speeds(0.5, 0.0), [10.0, 10.0])  # forward: both positive
    np.testing.assert_allclose(k.wheel_speeds(0.0, 1.0), [-4.0, 4.0])  # counter-clockwise: right faster
    for vx, wz in [(0.3, -0.7), (-0.2, 0.1), (0.0, 2.0)]:
        np.testing.assert_allclose(k.body_twist(*k.wheel_speeds(vx, wz)), (vx, wz), atol=1e-12)
    np.testing.assert_allclose(k.planar_twist([10.0, 10.0]), [0.5, 0.0, 0.0])


def test_diffdrive_scales_both_wheels_by_one_factor():
    k = DiffDriveKinematics(wheel_radius=0.05, wheel_separation=0.4, max_wheel_speed=6.0)
    raw = np.array([0.5 - 0.2, 0.5 + 0.2]) / 0.05  # vx=0.5, wz=1: (6, 14) rad/s
    out = k.wheel_speeds(0.5, 1.0)
    np.testing.assert_allclose(out, raw * 6.0 / 14.0)
    assert np.max(np.abs(out)) == pytest.approx(6.0)
    vx, wz = k.body_twist(*out)
    assert wz / vx == pytest.approx(1.0 / 0.5)  # same curve, slower


def test_scale_to_limit_leaves_slow_commands_alone():
    np.testing.assert_array_equal(scale_to_limit([1.0, -2.0], 2.0), [1.0, -2.0])
    np.testing.assert_allclose(scale_to_limit([4.0, -8.0], 2.0), [1.0, -2.0])


def test_diffdrive_defaults_match_the_mujoco_base():
    from robo_policies.envs import diffdrive_nav

    k = DiffDriveKinematics.from_mjcf()
    assert k == DiffDriveKinematics()
    assert (k.wheel_radius, k.wheel_separation, k.max_wheel_speed) == pytest.approx((0.033, 0.16, 6.5))
    for v, omega in [(0.1, 0.0), (0.05, 0.8), (0.0, -1.0)]:
        np.testing.assert_allclose(k.wheel_speeds(v, omega), diffdrive_nav.wheel_speeds(v, omega))


def test_omni_round_trip_and_scaling():
    k = OmniKinematics(wheel_radius=0.05, base_radius=0.125, max_wheel_speed=1000.0)
    # Wheel 0 sits on the left (+y) and rolls along -x; pure rotation spins all wheels equally.
    np.testing.assert_allclose(k.wheel_speeds(0.1, 0.0, 0.0), [-2.0, 1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(k.wheel_speeds(0.0, 0.0, 1.0), [2.5, 2.5, 2.5])
    rng = np.random.default_rng(0)
    for twist in rng.uniform(-1, 1, size=(5, 3)):
        np.testing.assert_allclose(k.body_twist(k.wheel_speeds(*twist)), twist, atol=1e-12)
    limited = OmniKinematics(wheel_radius=0.05, base_radius=0.125, max_wheel_speed=1.0)
    out = limited.wheel_speeds(0.1, 0.0, 0.0)
    np.testing.assert_allclose(out, [-1.0, 0.5, 0.5], atol=1e-12)
    twist = limited.body_twist(out)
    np.testing.assert_allclose(twist, [0.05, 0.0, 0.0], atol=1e-12)  # same direction, half speed


def test_kinematics_reject_bad_geometry():
    with pytest.raises(ValueError, match="wheel_radius"):
        DiffDriveKinematics(wheel_radius=0.0)
    with pytest.raises(ValueError, match="wheel_angles"):
        OmniKinematics(0.05, 0.1, wheel_angles=(0.0, np.pi), max_wheel_speed=1.0)


def test_odometry_straight_line_and_rotation_in_place():
    k = DiffDriveKinematics()  # r = 0.033, L = 0.16
    odom = Odometry(k)
    odom.update([0.0, 0.0], t=0.0)
    for i in range(1, 11):
        odom.update([i * 1.0, i * 1.0], t=i * 0.1)  # 10 rad/s on both wheels for 1 s
    np.testing.assert_allclose(odom.pose, [0.33, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(odom.twist, [0.33, 0.0, 0.0], atol=1e-12)

    odom.reset()
    odom.update([5.0, 5.0], t=2.0)  # new baseline: no motion
    quarter = (np.pi / 2) * (0.16 / 2) / 0.033  # wheel angle for a 90-degree turn in place
    odom.update([5.0 - quarter, 5.0 + quarter], t=3.0)
    np.testing.assert_allclose(odom.pose, [0.0, 0.0, np.pi / 2], atol=1e-12)
    np.testing.assert_allclose(odom.twist, [0.0, 0.0, np.pi / 2], atol=1e-12)


def test_odometry_arc_is_exact_whatever_the_update_rate():
    k = DiffDriveKinematics()
    left, right = k.wheel_speeds(0.1, 0.5)  # radius 0.2 m, 2 s -> 1 rad of arc
    expected = [0.2 * np.sin(1.0), 0.2 * (1 - np.cos(1.0)), 1.0]
    for steps in (1, 7, 100):
        odom = Odometry(k, pose=(0.0, 0.0, 0.0))
        odom.update([0.0, 0.0], t=0.0)
        for i in range(1, steps + 1):
            t = 2.0 * i / steps
            odom.update([left * t, right * t], t=t)
        np.testing.assert_allclose(odom.pose, expected, atol=1e-12)
        np.testing.assert_allclose(odom.twist, [0.1, 0.0, 0.5], atol=1e-12)


def test_odometry_handles_encoder_wrap_and_start_pose():
    k = DiffDriveKinematics()
    odom = Odometry(k, wrap=2 * np.pi, pose=(1.0, 2.0, np.pi / 2))  # facing +y
    odom.update([6.0, 6.0], t=0.0)
    odom.update([(6.0 + 1.0) % (2 * np.pi)] * 2, t=0.1)  # reads 0.717: crossed the wrap, +1 rad
    np.testing.assert_allclose(odom.pose, [1.0, 2.033, np.pi / 2], atol=1e-12)
    odom.update([5.5, 5.5], t=0.2)  # back by 1.5 rad, across the wrap again
    np.testing.assert_allclose(odom.pose, [1.0, 2.033 - 1.5 * 0.033, np.pi / 2], atol=1e-12)
    np.testing.assert_allclose(odom.update([5.5, 5.5], t=0.2), [1.0, 2.033 - 1.5 * 0.033, np.pi / 2], atol=1e-12)  # again
    with pytest.raises(ValueError, match="time must increase"):
        odom.update([0.0, 0.0], t=0.2)
    with pytest.raises(ValueError, match="time must increase"):
        odom.update([5.5, 5.5], t=0.1)


def test_omni_odometry_strafes_and_rotates():
    k = OmniKinematics(wheel_radius=0.05, base_radius=0.125, max_wheel_speed=1000.0)
    odom = Odometry(k)
    odom.update([0.0, 0.0, 0.0], t=0.0)
    odom.update(k.wheel_speeds(0.0, 0.3, 0.0) * 1.0, t=1.0)  # 0.3 m to the left in 1 s
    np.testing.assert_allclose(odom.pose, [0.0, 0.3, 0.0], atol=1e-12)
    # Constant (vx, wz) for 1 rad of turn: the same arc as a diff drive would drive.
    start = k.wheel_speeds(0.0, 0.3, 0.0)
    odom.reset()
    odom.update(start, t=0.0)
    odom.update(start + k.wheel_speeds(0.2, 0.0, 1.0), t=1.0)
    np.testing.assert_allclose(odom.pose, [0.2 * np.sin(1.0), 0.2 * (1 - np.cos(1.0)), 1.0], atol=1e-12)
    np.testing.assert_allclose(odom.twist, [0.2, 0.0, 1.0], atol=1e-12)
