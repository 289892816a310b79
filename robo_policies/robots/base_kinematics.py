"""Wheeled-base kinematics and wheel odometry, in plain numpy.

Frames and units (the same as ``hardware/diffdrive_base``):

- Body frame: origin at the base's centre of rotation (the middle of the wheel axle for a
  differential drive), x forward, y left, z up. A body twist is ``(vx, vy, wz)`` in m/s,
  m/s and rad/s; a differential drive cannot move sideways, so its ``vy`` is always 0.
- Odometry frame: fixed, where the base started (or the pose given to ``reset``). A pose is
  ``(x, y, theta)`` in m, m and rad, theta counter-clockwise from the odometry x axis,
  wrapped to [-pi, pi).
- Wheel speeds are in rad/s, wheel angles (encoders) in rad, and each wheel's sign follows
  the class that owns it (documented there). A motor that is mounted mirrored must have its
  sign flipped by the driver before it reaches this module, so these signs hold on every
  robot.

Commands are scaled, never clipped per wheel: when a wheel would exceed its limit, every
wheel is slowed by the same factor, so the base keeps the direction of motion (the ratio of
translation to rotation) and only goes slower.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from numpy.typing import ArrayLike

DIFFDRIVE_BASE_XML = Path(__file__).resolve().parents[1] / "hardware/diffdrive_base/diffdrive_base.xml"
"""The MuJoCo model of our differential-drive base; the defaults below are its numbers."""

DIFFDRIVE_WHEEL_RADIUS = 0.033  # [m], diffdrive_base.xml
DIFFDRIVE_WHEEL_SEPARATION = 0.16  # [m], distance between the wheel centres
DIFFDRIVE_MAX_WHEEL_SPEED = 6.5  # [rad/s], the actuators' ctrlrange


def scale_to_limit(wheel_speeds: ArrayLike, max_speed: ArrayLike) -> np.ndarray:
    """Scale all wheels by one factor so that none exceeds its limit.

    ``max_speed`` is one limit for every wheel or one per wheel. Scaling keeps the ratios
    between wheels, so the base keeps its direction of motion; clipping each wheel on its
    own would turn a fast curve into a different curve.
    """
    wheels = np.asarray(wheel_speeds, dtype=np.float64)
    limit = np.broadcast_to(np.asarray(max_speed, dtype=np.float64), wheels.shape)
    speed = np.abs(wheels)
    over = speed > limit
    if not over.any():
        return wheels.copy()
    return wheels * float(np.min(limit[over] / speed[over]))


class PlanarKinematics(Protocol):
    """What ``Odometry`` needs from a base: wheel count and the wheels-to-body map."""

    n_wheels: int

    def planar_twist(self, wheel_speeds: ArrayLike) -> np.ndarray:
        """Body twist ``(vx, vy, wz)`` for the given wheel speeds (rad/s)."""
        ...


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{key} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class DiffDriveKinematics:
    """Two driven wheels on one axle (plus passive casters).

    Wheel order is ``(left, right)``; left is on the body's +y side. A positive speed on a
    wheel drives its side of the base forward (+x), so equal positive speeds drive straight
    ahead and ``right > left`` turns counter-clockwise (positive ``wz``). This is the
    convention of ``hardware/diffdrive_base`` (both hinge axes +y) and of
    ``envs.diffdrive_nav.wheel_speeds``. The defaults are that base's numbers.

    Args:
        wheel_radius: [m].
        wheel_separation: distance between the two wheels' contact points [m].
        max_wheel_speed: the motors' speed limit [rad/s].
    """

    wheel_radius: float = DIFFDRIVE_WHEEL_RADIUS
    wheel_separation: float = DIFFDRIVE_WHEEL_SEPARATION
    max_wheel_speed: float = DIFFDRIVE_MAX_WHEEL_SPEED
    n_wheels: ClassVar[int] = 2

    def __post_init__(self) -> None:
        _check_positive(wheel_radius=self.wheel_radius, wheel_separation=self.wheel_separation,
                        max_wheel_speed=self.max_wheel_speed)

    @classmethod
    def from_mjcf(cls, path: str | Path = DIFFDRIVE_BASE_XML, left: str = "left_wheel",
                  right: str = "right_wheel") -> DiffDriveKinematics:
        """Read radius, separation and speed limit from a MuJoCo model of the base.

        ``left`` and ``right`` name the wheel hinge joints, their (cylinder) geoms' bodies and
        their velocity actuators, as in ``diffdrive_base.xml``. Both hinge axes must be +y in
        the wheel bodies' frames, which is what makes positive speeds drive forward.
        """
        import mujoco  # only this constructor needs it; the rest is plain numpy

        model = mujoco.MjModel.from_xml_path(str(path))
        radii, centres, limits = [], [], []
        for name in (left, right):
            joint = model.joint(name)
            if not np.allclose(joint.axis, [0.0, 1.0, 0.0]):
                raise ValueError(f"{path}: joint {name!r} has axis {joint.axis.tolist()}, expected "
                                 "[0, 1, 0] (positive speed = forward)")
            body = int(joint.bodyid[0])
            geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body
                     and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_CYLINDER]
            if len(geoms) != 1:
                raise ValueError(f"{path}: body of joint {name!r} has {len(geoms)} cylinder geoms, "
                                 "expected 1")
            radii.append(float(model.geom_size[geoms[0], 0]))
            centres.append(model.body_pos[body].copy())
            actuator = model.actuator(name)
            limits.append(float(np.min(np.abs(actuator.ctrlrange))) if actuator.ctrllimited[0] else np.inf)
        if not np.isclose(radii[0], radii[1]):
            raise ValueError(f"{path}: wheel radii differ ({radii[0]} and {radii[1]})")
        return cls(wheel_radius=radii[0], wheel_separation=float(np.linalg.norm(centres[0] - centres[1])),
                   max_wheel_speed=min(limits))

    def wheel_speeds(self, vx: float, wz: float) -> np.ndarray:
        """``(left, right)`` in rad/s for forward speed ``vx`` (m/s) and yaw rate ``wz`` (rad/s),
        scaled together to ``max_wheel_speed``."""
        half = self.wheel_separation / 2
        wheels = np.array([vx - wz * half, vx + wz * half]) / self.wheel_radius
        return scale_to_limit(wheels, self.max_wheel_speed)

    def body_twist(self, left: float, right: float) -> tuple[float, float]:
        """``(vx, wz)`` in m/s and rad/s for wheel speeds in rad/s."""
        vx = self.wheel_radius * (left + right) / 2
        wz = self.wheel_radius * (right - left) / self.wheel_separation
        return vx, wz

    def planar_twist(self, wheel_speeds: ArrayLike) -> np.ndarray:
        left, right = np.asarray(wheel_speeds, dtype=np.float64)
        vx, wz = self.body_twist(left, right)
        return np.array([vx, 0.0, wz])


@dataclass(frozen=True)
class OmniKinematics:
    """Omni wheels (three by default) around the base's centre.

    Wheel ``i`` sits at ``base_radius`` from the centre at angle ``wheel_angles[i]`` (rad,
    counter-clockwise from +x, body frame), and rolls along the tangent of that circle. A
    positive speed on a wheel pushes the base counter-clockwise about its centre, so equal
    positive speeds on all wheels spin the base in place with positive ``wz``. Wheel order
    is the order of ``wheel_angles``; with the default (90, 210, 330 degrees) wheel 0 is on
    the left side, wheel 1 at the back right, wheel 2 at the front right.

    Args:
        wheel_radius: [m].
        base_radius: distance from the centre to each wheel's contact point [m].
        wheel_angles: each wheel's position angle [rad]; at least three, not all collinear.
        max_wheel_speed: the motors' speed limit [rad/s] (keyword only).
    """

    wheel_radius: float
    base_radius: float
    wheel_angles: tuple[float, ...] = tuple(np.radians([90.0, 210.0, 330.0]).tolist())
    max_wheel_speed: float = field(kw_only=True)
    _matrix: np.ndarray = field(init=False, repr=False, compare=False)
    _inverse: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_positive(wheel_radius=self.wheel_radius, base_radius=self.base_radius,
                        max_wheel_speed=self.max_wheel_speed)
        angles = np.asarray(self.wheel_angles, dtype=np.float64)
        if angles.ndim != 1 or len(angles) < 3:
            raise ValueError(f"wheel_angles needs at least 3 angles, got {self.wheel_angles!r}")
        # Rim speed of wheel i = its rolling direction (-sin a, cos a) . (vx, vy) + R * wz.
        matrix = np.stack([-np.sin(angles), np.cos(angles), np.full_like(angles, self.base_radius)], axis=1)
        matrix /= self.wheel_radius
        if np.linalg.matrix_rank(matrix) < 3:
            raise ValueError(f"wheel_angles {self.wheel_angles!r} cannot produce every body twist")
        object.__setattr__(self, "_matrix", matrix)
        object.__setattr__(self, "_inverse", np.linalg.pinv(matrix))

    @property
    def n_wheels(self) -> int:
        return len(self.wheel_angles)

    def wheel_speeds(self, vx: float, vy: float, wz: float) -> np.ndarray:
        """Wheel speeds (rad/s) for a body twist, scaled together to ``max_wheel_speed``."""
        return scale_to_limit(self._matrix @ np.array([vx, vy, wz], dtype=np.float64), self.max_wheel_speed)

    def body_twist(self, wheel_speeds: ArrayLike) -> np.ndarray:
        """``(vx, vy, wz)`` for wheel speeds; the least-squares fit for more than 3 wheels."""
        wheels = np.asarray(wheel_speeds, dtype=np.float64)
        if wheels.shape != (self.n_wheels,):
            raise ValueError(f"expected {self.n_wheels} wheel speeds, got shape {wheels.shape}")
        return self._inverse @ wheels

    planar_twist = body_twist


def _wrap_angle(theta: float) -> float:
    return float((theta + np.pi) % (2 * np.pi) - np.pi)


class Odometry:
    """Dead reckoning from wheel encoders.

    Each ``update`` takes the wheel angles the encoders report and the time they were read.
    The change in angle since the last update, passed through the kinematics, is the body's
    displacement; it is integrated exactly for a constant twist over the interval (an arc,
    not a straight chord), so the result does not depend on how often the encoders are read
    when the wheels turn at constant speed.

    Args:
        kinematics: ``DiffDriveKinematics``, ``OmniKinematics`` or anything with
            ``n_wheels`` and ``planar_twist``.
        wrap: the period (rad) after which the encoders wrap, e.g. ``2 * pi`` for an absolute
            encoder that reports the angle within one turn; None for a multi-turn count. With
            a period, a wheel must turn less than half of it between updates.
        pose: the starting pose ``(x, y, theta)``.
    """

    def __init__(self, kinematics: PlanarKinematics, wrap: float | None = None,
                 pose: ArrayLike = (0.0, 0.0, 0.0)) -> None:
        if wrap is not None:
            _check_positive(wrap=wrap)
        self.kinematics = kinematics
        self.wrap = wrap
        self.reset(pose)

    def reset(self, pose: ArrayLike = (0.0, 0.0, 0.0)) -> None:
        """Set the pose; the next ``update`` only records the encoder baseline."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (3,):
            raise ValueError(f"pose must be (x, y, theta), got shape {pose.shape}")
        self._pose = np.array([pose[0], pose[1], _wrap_angle(pose[2])])
        self._twist = np.zeros(3)
        self._last_angles: np.ndarray | None = None
        self._last_t: float | None = None

    @property
    def pose(self) -> np.ndarray:
        """``(x, y, theta)`` in the odometry frame [m, m, rad]."""
        return self._pose.copy()

    @property
    def twist(self) -> np.ndarray:
        """``(vx, vy, wz)`` in the body frame over the last update interval [m/s, m/s, rad/s]."""
        return self._twist.copy()

    def update(self, wheel_angles: ArrayLike, t: float) -> np.ndarray:
        """Integrate the encoder readings taken at time ``t`` (s); returns the new pose. The
        same readings again at the same ``t`` change nothing."""
        angles = np.asarray(wheel_angles, dtype=np.float64)
        if angles.shape != (self.kinematics.n_wheels,):
            raise ValueError(f"expected {self.kinematics.n_wheels} wheel angles, got shape {angles.shape}")
        if self._last_angles is None:
            self._last_angles, self._last_t = angles.copy(), float(t)
            return self.pose
        dt = float(t) - self._last_t
        if dt == 0 and np.array_equal(angles, self._last_angles):
            return self.pose  # read again at the same instant (a fake clock that did not move)
        if not dt > 0:
            raise ValueError(f"odometry time must increase: got t={t} after t={self._last_t}")
        delta = angles - self._last_angles
        if self.wrap is not None:
            delta = (delta + self.wrap / 2) % self.wrap - self.wrap / 2
        self._last_angles, self._last_t = angles.copy(), float(t)

        # The twist is linear in the wheel speeds, so wheel angle changes give the body's
        # displacement over the interval in its starting frame.
        dx, dy, dtheta = self.kinematics.planar_twist(delta)
        if abs(dtheta) < 1e-6:  # series of sin(a)/a and (1 - cos(a))/a
            s, c = 1.0 - dtheta**2 / 6, dtheta / 2
        else:
            s, c = np.sin(dtheta) / dtheta, (1.0 - np.cos(dtheta)) / dtheta
        local = np.array([s * dx - c * dy, c * dx + s * dy])
        x, y, theta = self._pose
        cos_t, sin_t = np.cos(theta), np.sin(theta)
        self._pose = np.array([x + cos_t * local[0] - sin_t * local[1],
                               y + sin_t * local[0] + cos_t * local[1],
                               _wrap_angle(theta + dtheta)])
        self._twist = np.array([dx, dy, dtheta]) / dt
        return self.pose
