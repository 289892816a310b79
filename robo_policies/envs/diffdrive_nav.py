"""The 'diffdrive_nav' task: drive a differential-drive base around a wall to a goal.

A two-wheeled base (``hardware/diffdrive_base``) starts near the origin facing +x; a wall
segment stands across the straight route and the goal disc lies behind it. Passing left or
right of the wall is equally good, so the scripted expert picks a side at random per
episode, and it picks late: it stops in front of the wall and turns to one side. The
demonstrations are deliberately bimodal at one state, which is what multimodal policies
(diffusion, flow, energy) are tested on and where regression averages.

Actions are the two wheel angular velocities in rad/s, the unit the real base's motors take.
The state observation (``obs_mode=state``, the default) is:

- ``base_pose``: (x, y, cos yaw, sin yaw) of the axle centre, world frame [m].
- ``base_vel``: (forward speed [m/s], yaw rate [rad/s]) in the base frame.
- ``goal``: (x, y) of the goal centre [m].
- ``obstacle``: (x, y) of the wall centre [m] (its size and orientation are fixed).

With ``obs_mode=image`` (the ``diffdrive_nav_image`` task) the base sees what the real one
does: ``base_pose`` from its odometry (counted from where the episode started, so the start
is (0, 0, 1, 0)), ``base_vel`` and the onboard camera's ``front_image``; the goal carries a
beacon that shows over the wall.

``pass_side`` tells from a recorded trajectory alone which side of the wall it took, so a
dataset can be checked for both modes without the expert that produced it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robo_policies.envs.mujoco_env import IMAGE_SIZE, MujocoTaskEnv
from robo_policies.envs.registry import register_task
from robo_policies.envs.task import Task, image_variant

SCENE_XML = Path(__file__).resolve().parent / "assets" / "diffdrive_nav.xml"

HORIZON = 200  # steps at 10 Hz = 20 s; the expert needs 13-16 s.
FRAME_SKIP = 20  # 20 x 5 ms physics steps = 0.1 s control period (10 Hz).

WHEEL_RADIUS = 0.033  # [m], matches diffdrive_base.xml
WHEEL_TRACK = 0.16  # [m], distance between the wheel contact points
MAX_WHEEL_SPEED = 6.5  # [rad/s], the actuators' ctrlrange (0.21 m/s top speed)

GOAL_RADIUS = 0.15  # [m], success when the axle centre is this close to the goal centre
WALL_HALF_WIDTH = 0.3  # [m], half the wall's extent across the route (scene geom size y)
BASE_Z = WHEEL_RADIUS  # the base body origin is on the axle


def _yaw_quat(yaw: float) -> np.ndarray:
    """MuJoCo (w, x, y, z) quaternion of a rotation by ``yaw`` about world z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def wheel_speeds(v: float, omega: float) -> np.ndarray:
    """Diff-drive inverse kinematics: body (forward m/s, yaw rad/s) -> (left, right) rad/s."""
    half_track = WHEEL_TRACK / 2
    return np.array([v - omega * half_track, v + omega * half_track]) / WHEEL_RADIUS


def pass_side(base_xy: np.ndarray, obstacle_xy: np.ndarray, goal_xy: np.ndarray) -> str:
    """Which side of the obstacle a trajectory passed: ``"left"`` or ``"right"``.

    Uses observations only, so recorded datasets can be checked without the expert.
    "left" means left of the route as seen travelling from the start (``base_xy[0]``) to the
    goal, i.e. the obstacle was on the robot's right. At the step where the base is level
    with the obstacle along the route, the sign of the lateral offset from the obstacle
    (a 2-D cross product) decides; a trajectory that never got level with the obstacle is
    classified at its step nearest to that.

    Args:
        base_xy: (T, 2) base positions of one episode.
        obstacle_xy: (2,) obstacle centre.
        goal_xy: (2,) goal centre.
    """
    base_xy = np.asarray(base_xy, dtype=np.float64)
    route = np.asarray(goal_xy, dtype=np.float64) - base_xy[0]
    route /= np.linalg.norm(route)
    rel = base_xy - np.asarray(obstacle_xy, dtype=np.float64)
    along = rel @ route  # signed distance past the obstacle, along the route
    lateral = route[0] * rel[:, 1] - route[1] * rel[:, 0]  # cross(route, rel)
    t = int(np.argmin(np.abs(along)))
    return "left" if lateral[t] > 0 else "right"


class DiffDriveNavEnv(MujocoTaskEnv):
    """Drive the diffdrive base around a wall into the goal disc (see the module docstring)."""

    PROPRIO_KEYS = ("base_pose", "base_vel")
    CAMERAS = ("front",)

    def __init__(
        self, render_mode: str | None = None, width: int = 320, height: int = 240,
        start_distance: float = 1.0, obs_mode: str = "state", image_size: int = IMAGE_SIZE,
    ) -> None:
        """``start_distance``: nominal distance [m] from the start to the wall's centre along
        the route (the goal stays 1 m behind the wall); shorter leaves less room to decide."""
        if not 0.35 <= start_distance <= 2.0:
            raise ValueError(f"start_distance must be in [0.35, 2.0] m, got {start_distance}")
        self.start_distance = start_distance
        super().__init__(
            SCENE_XML,
            frame_skip=FRAME_SKIP,
            horizon=HORIZON,
            render_mode=render_mode,
            width=width,
            height=height,
            obs_mode=obs_mode,
            image_size=image_size,
        )
        model = self.model
        self._obstacle_mocap = model.body("obstacle").mocapid[0]
        self._goal_mocap = model.body("goal").mocapid[0]
        self._base_qpos = model.joint("base_free").qposadr[0]
        self._base_qvel = model.joint("base_free").dofadr[0]
        self._wall_geom = model.geom("obstacle").id
        base_body = model.body("base").id
        self._robot_geoms = {g for g in range(model.ngeom) if model.body_rootid[model.geom_bodyid[g]] == base_body}
        self._wall_contact_steps = 0

        limit = np.float32(MAX_WHEEL_SPEED)
        self.action_space = spaces.Box(-limit, limit, shape=(2,), dtype=np.float32)
        inf = np.inf
        self._set_observation_space(spaces.Dict(
            {
                "base_pose": spaces.Box(
                    np.array([-inf, -inf, -1, -1], dtype=np.float32),
                    np.array([inf, inf, 1, 1], dtype=np.float32),
                    dtype=np.float32,
                ),
                "base_vel": spaces.Box(-inf, inf, shape=(2,), dtype=np.float32),
                "goal": spaces.Box(-inf, inf, shape=(2,), dtype=np.float32),
                "obstacle": spaces.Box(-inf, inf, shape=(2,), dtype=np.float32),
            }
        ))
        # The episode's layout, set on reset; experts may read it (privileged, but it is
        # also in the state observation).
        self.start_xy = np.zeros(2)
        self.start_yaw = 0.0
        self.goal_xy = np.zeros(2)
        self.obstacle_xy = np.zeros(2)

    # -- MujocoTaskEnv hooks -------------------------------------------------------------

    def _reset_scene(self, rng: np.random.Generator) -> None:
        """Jitter the nominal layout: start (1 - start_distance, 0) facing +x, wall at x=1,
        goal at x=2."""
        nominal_start = np.array([1.0 - self.start_distance, 0.0])
        self.start_xy = nominal_start + rng.uniform([-0.1, -0.1], [0.1, 0.1])
        yaw = self.start_yaw = rng.uniform(-0.3, 0.3)
        self.obstacle_xy = np.array([1.0, 0.0]) + rng.uniform([-0.1, -0.1], [0.1, 0.1])
        self.goal_xy = np.array([2.0, 0.0]) + rng.uniform([-0.1, -0.15], [0.1, 0.15])

        q = self._base_qpos
        self.data.qpos[q : q + 3] = [*self.start_xy, BASE_Z]
        self.data.qpos[q + 3 : q + 7] = _yaw_quat(yaw)
        self.data.mocap_pos[self._obstacle_mocap, :2] = self.obstacle_xy
        self.data.mocap_pos[self._goal_mocap, :2] = self.goal_xy
        self._wall_contact_steps = 0

    def _apply_action(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = action  # (left, right) wheel speed targets in rad/s

    def _touches_wall(self) -> bool:
        """Whether any robot geom is in contact with the wall right now."""
        contacts = self.data.contact[: self.data.ncon]
        for g1, g2 in zip(contacts.geom1, contacts.geom2):
            if self._wall_geom in (g1, g2) and ({g1, g2} - {self._wall_geom}) <= self._robot_geoms:
                return True
        return False

    def _base_xy_yaw(self) -> tuple[np.ndarray, float, float]:
        """Axle-centre position and the heading's (cos, sin), projected onto the floor."""
        q = self._base_qpos
        xy = self.data.qpos[q : q + 2].copy()
        w, x, y, z = self.data.qpos[q + 3 : q + 7]
        heading = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z)])  # body x in world
        heading /= np.linalg.norm(heading)
        return xy, float(heading[0]), float(heading[1])

    def _get_obs(self) -> dict[str, np.ndarray]:
        xy, cos_yaw, sin_yaw = self._base_xy_yaw()
        d = self._base_qvel
        v_world = self.data.qvel[d : d + 2]  # free joint: linear velocity in the world frame
        forward = cos_yaw * v_world[0] + sin_yaw * v_world[1]
        yaw_rate = self.data.qvel[d + 5]  # angular velocity about the body z axis
        return {
            "base_pose": np.array([*xy, cos_yaw, sin_yaw], dtype=np.float32),
            "base_vel": np.array([forward, yaw_rate], dtype=np.float32),
            "goal": self.goal_xy.astype(np.float32),
            "obstacle": self.obstacle_xy.astype(np.float32),
        }

    def _proprioception(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``base_pose`` as odometry reports it: in the frame of the episode's start pose."""
        x, y, cos_yaw, sin_yaw = state["base_pose"].astype(np.float64)
        c, s = np.cos(self.start_yaw), np.sin(self.start_yaw)
        dx, dy = x - self.start_xy[0], y - self.start_xy[1]
        odometry = [c * dx + s * dy, -s * dx + c * dy, c * cos_yaw + s * sin_yaw, c * sin_yaw - s * cos_yaw]
        return {"base_pose": np.array(odometry, dtype=np.float32), "base_vel": state["base_vel"]}

    def _goal_distance(self) -> float:
        xy, _, _ = self._base_xy_yaw()
        return float(np.linalg.norm(xy - self.goal_xy))

    def _is_success(self) -> bool:
        return self._goal_distance() < GOAL_RADIUS

    def _extra_info(self) -> dict[str, Any]:
        return {"goal_distance": self._goal_distance(), "wall_contact_steps": self._wall_contact_steps}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """``MujocoTaskEnv.step``, counting the steps that end with the robot touching the wall."""
        obs, reward, terminated, truncated, info = super().step(action)
        self._wall_contact_steps += self._touches_wall()
        info["wall_contact_steps"] = self._wall_contact_steps
        return obs, reward, terminated, truncated, info


class WaypointExpert:
    """Scripted demonstrator that decides its side of the wall late, standing still.

    1. *approach*: turn in place to face a decision point on the route, ``DECISION_DISTANCE``
       before the wall's centre, then drive straight at it (no steering, so the action
       noise of DART-style collection leaves heading and offset uncorrected);
    2. *turn*: stop there and turn in place towards a via-point beside the wall, on a side
       chosen at random;
    3. *via*, *goal*: drive to the via-point, then to the goal, slowing down to arrive.

    Up to the decision point both sides' demonstrations are the same, so at one state the
    data hold two opposite turns. That is the point of the task: a policy that samples one
    of them turns and goes; one that averages them (regression) turns by their mean, about
    zero, and stalls or creeps into the wall (measured in the README).

    Steering is proportional on the heading error to the current waypoint; forward speed
    drops with the heading error. The (v, omega) command goes through diff-drive inverse
    kinematics and is scaled down, keeping the turn ratio, until both wheels are within the
    motor limit.

    Attributes:
        side: ``"left"`` or ``"right"`` of the route from start to goal, chosen with
            probability 1/2 each from the ``rng`` given at construction.
    """

    CLEARANCE = 0.45  # [m] from the wall's end to the via-point (robot radius ~0.12 m + margin)
    DECISION_DISTANCE = 0.45  # [m] before the wall's centre: 0.23 m between bumper and wall
    FACING_TOLERANCE = 0.05  # [rad] heading error that ends the approach's first turn
    TURN_TOLERANCE = 0.15  # [rad] heading error that ends the turn at the decision point
    HEADING_GAIN = 3.0  # [rad/s per rad]
    SLOWDOWN_RADIUS = 0.5  # [m] from the goal, speed falls linearly with the distance

    def __init__(self, env: gym.Env, rng: np.random.Generator) -> None:
        nav: DiffDriveNavEnv = env.unwrapped  # type: ignore[assignment]
        self.side = "left" if rng.random() < 0.5 else "right"
        route = nav.goal_xy - nav.start_xy
        self._route = route / np.linalg.norm(route)
        normal = np.array([-self._route[1], self._route[0]])  # points to the route's left
        sign = 1.0 if self.side == "left" else -1.0
        self.decision_xy = nav.obstacle_xy - self.DECISION_DISTANCE * self._route
        self.via_xy = nav.obstacle_xy + sign * (WALL_HALF_WIDTH + self.CLEARANCE) * normal
        self.goal_xy = nav.goal_xy.copy()
        self.phase = "face"  # face -> straight -> turn -> via -> goal

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        pose = obs["base_pose"].astype(np.float64)
        xy, yaw = pose[:2], np.arctan2(pose[3], pose[2])
        self._advance_phase(xy)
        target = {"face": self.decision_xy, "straight": self.decision_xy, "turn": self.via_xy,
                  "via": self.via_xy, "goal": self.goal_xy}[self.phase]
        to_target = target - xy
        error = np.arctan2(to_target[1], to_target[0]) - yaw
        error = (error + np.pi) % (2 * np.pi) - np.pi  # wrap to [-pi, pi)
        if self.phase == "face" and abs(error) < self.FACING_TOLERANCE:
            self.phase = "straight"
        if self.phase == "turn" and abs(error) < self.TURN_TOLERANCE:
            self.phase = "via"

        top_speed = MAX_WHEEL_SPEED * WHEEL_RADIUS
        if self.phase == "straight":
            return self._wheels(top_speed, 0.0)
        omega = self.HEADING_GAIN * error
        if self.phase in ("face", "turn"):
            return self._wheels(0.0, omega)  # turn in place
        v = top_speed * max(np.cos(error), 0.0)
        if self.phase == "goal":  # arrive, don't fly through: slow down near the goal
            v *= min(1.0, np.linalg.norm(to_target) / self.SLOWDOWN_RADIUS)
        return self._wheels(v, omega)

    def _advance_phase(self, xy: np.ndarray) -> None:
        """Position-triggered transitions: at the decision point, and level with the via-point."""
        if self.phase in ("face", "straight") and (xy - self.decision_xy) @ self._route > -0.01:
            self.phase = "turn"
        if self.phase == "via" and (xy - self.via_xy) @ self._route > -0.05:
            self.phase = "goal"

    @staticmethod
    def _wheels(v: float, omega: float) -> np.ndarray:
        """(left, right) wheel speeds for (v, omega), slowed alike to the motor limit."""
        wheels = wheel_speeds(v, omega)
        peak = np.max(np.abs(wheels))
        if peak > MAX_WHEEL_SPEED:
            wheels *= MAX_WHEEL_SPEED / peak  # slow both wheels alike: keeps the turn radius
        return np.clip(wheels, -MAX_WHEEL_SPEED, MAX_WHEEL_SPEED).astype(np.float32)


def episode_stats(observations: dict[str, np.ndarray], info: dict[str, Any]) -> dict[str, Any]:
    """Which side of the wall an evaluated episode took and whether it hit the wall."""
    side = pass_side(observations["base_pose"][:, :2], observations["obstacle"][0], observations["goal"][0])
    return {"side": side, "wall_contact_steps": int(info.get("wall_contact_steps", 0))}


DIFFDRIVE_NAV = register_task(
    Task(
        name="diffdrive_nav",
        horizon=HORIZON,
        make_env=DiffDriveNavEnv,
        make_expert=WaypointExpert,
        description="Diff-drive base drives around a wall to a goal; expert passes left or right.",
        episode_stats=episode_stats,
    )
)
register_task(image_variant(DIFFDRIVE_NAV))

_GYM_ID = "robo_policies/DiffDriveNav-v0"
if _GYM_ID not in gym.registry:
    gym.register(id=_GYM_ID, entry_point="robo_policies.envs.diffdrive_nav:DiffDriveNavEnv")
