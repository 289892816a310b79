"""``arm_pick_place``: an SO-101-like 5-DOF arm picks a cube and places it on a target zone.

The scene (``assets/arm_pick_place.xml``) includes the robot model from
``hardware/so101_arm``. Each reset puts the cube at a random position and yaw on the table
in front of the arm and the target zone somewhere else. The action is what the real
arm's position servos take, absolute joint targets, plus one gripper scalar:

    action = [shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll, gripper]
             (radians, bounded by the joint limits)            (0 = open .. 1 = closed)

Success: the cube's centre lies within ``TARGET_RADIUS`` of the target centre (in xy), the
cube rests on the table, and the gripper has let go of it (no finger touches the cube), so
an episode only succeeds once the cube has really been placed.

The scripted expert (``PickPlaceExpert``) plans Cartesian waypoints for the tool centre
point, interpolates them with a minimum-jerk profile and converts every intermediate pose to
joint targets with damped-least-squares IK on a scratch ``MjData``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from robo_policies.envs.kinematics import DLSInverseKinematics
from robo_policies.envs.mujoco_env import IMAGE_SIZE, MujocoTaskEnv
from robo_policies.envs.registry import register_task
from robo_policies.envs.task import Task, image_variant

SCENE_XML = Path(__file__).resolve().parent / "assets" / "arm_pick_place.xml"

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
FINGER_TRAVEL = 0.022
"""Slide of each finger from fully open (0) to fully closed (m); gripper command 1 = closed."""

HORIZON = 200
FRAME_SKIP = 25  # 25 x 4 ms = 0.1 s per step: 10 Hz control

CUBE_HALF = 0.0125
TARGET_RADIUS = 0.03
CUBE_RADIUS_RANGE = (0.12, 0.21)
"""Cube and target are sampled at these distances (m) from the pan axis ..."""
CUBE_ANGLE_RANGE = (-0.75, 0.75)
"""... and at these bearings (rad) from straight ahead (+x)."""
CUBE_YAW_RANGE = (-np.pi / 4, np.pi / 4)
MIN_CUBE_TARGET_DIST = 0.08
ARM_JOINT_NOISE = 0.05
"""Uniform noise (rad) on the arm's initial joint angles around the home pose (all zeros)."""

ENV_ID = "robo_policies/ArmPickPlace-v0"


class ArmPickPlaceEnv(MujocoTaskEnv):
    """Pick the cube and place it on the green target disc.

    State observations (all float32):
        joint_pos (6): five arm joint angles (rad) and gripper closure (0 open .. 1 closed).
        joint_vel (6): their velocities (rad/s, closure/s).
        eef_pos (3): tool centre point between the fingertips (m, world frame).
        cube_pos (3), cube_quat (4): cube centre and orientation (w, x, y, z; w >= 0).
        target_pos (3): centre of the target zone on the table.

    With ``obs_mode="image"`` (the ``arm_pick_place_image`` task) the arm sees what the real
    one does: ``joint_pos`` and ``joint_vel`` (its servos' encoders) and two cameras,
    ``front_image`` (fixed, in front of the arm, over the workspace) and ``wrist_image``
    (on the gripper, looking along the fingers).
    """

    PROPRIO_KEYS = ("joint_pos", "joint_vel")
    CAMERAS = ("front", "wrist")

    def __init__(self, render_mode: str | None = None, width: int = 320, height: int = 240,
                 obs_mode: str = "state", image_size: int = IMAGE_SIZE) -> None:
        super().__init__(SCENE_XML, FRAME_SKIP, HORIZON, render_mode=render_mode, width=width, height=height,
                         obs_mode=obs_mode, image_size=image_size)
        m = self.model
        joint_ids = [m.joint(name).id for name in ARM_JOINTS]
        self._arm_qadr = m.jnt_qposadr[joint_ids]
        self._arm_vadr = m.jnt_dofadr[joint_ids]
        self._finger_qadr = m.joint("finger_left").qposadr[0]
        self._finger_vadr = m.joint("finger_left").dofadr[0]
        self._cube_qadr = m.joint("cube").qposadr[0]
        self._cube_body = m.body("cube").id
        self._cube_geom = m.geom("cube").id
        finger_bodies = [m.body("finger_left").id, m.body("finger_right").id]
        self._finger_geoms = np.flatnonzero(np.isin(m.geom_bodyid, finger_bodies))  # boxes + pads
        self._tcp_site = m.site("tcp").id
        self._target_mocap = m.body("target").mocapid[0]
        self._arm_act = [m.actuator(name).id for name in ARM_JOINTS]
        self._grip_act = m.actuator("gripper").id

        self.joint_low = m.jnt_range[joint_ids, 0].astype(np.float32)
        self.joint_high = m.jnt_range[joint_ids, 1].astype(np.float32)
        self.action_space = spaces.Box(
            low=np.append(self.joint_low, 0.0).astype(np.float32),
            high=np.append(self.joint_high, 1.0).astype(np.float32),
            dtype=np.float32,
        )

        def box(n: int, bound: float = np.inf) -> spaces.Box:
            return spaces.Box(-bound, bound, shape=(n,), dtype=np.float32)

        # Joint angles stay inside (-pi, pi) and the gripper closure near [0, 1]; the
        # remaining entries have no hard physical bound.
        joint_pos_bound = np.array([np.pi] * 5 + [1.5], dtype=np.float32)
        self._set_observation_space(spaces.Dict(
            {
                "joint_pos": spaces.Box(-joint_pos_bound, joint_pos_bound, dtype=np.float32),
                "joint_vel": box(6),
                "eef_pos": box(3),
                "cube_pos": box(3),
                "cube_quat": box(4, 1.0),
                "target_pos": box(3),
            }
        ))

    # -- MujocoTaskEnv hooks -----------------------------------------------------------

    def _reset_scene(self, rng: np.random.Generator) -> None:
        q_arm = rng.uniform(-ARM_JOINT_NOISE, ARM_JOINT_NOISE, size=len(ARM_JOINTS))
        self.data.qpos[self._arm_qadr] = q_arm
        self.data.ctrl[self._arm_act] = q_arm  # hold the initial pose instead of jumping to 0

        cube_xy = _sample_workspace_xy(rng)
        target_xy = _sample_workspace_xy(rng)
        while np.linalg.norm(target_xy - cube_xy) < MIN_CUBE_TARGET_DIST:
            target_xy = _sample_workspace_xy(rng)
        yaw = rng.uniform(*CUBE_YAW_RANGE)
        adr = self._cube_qadr
        self.data.qpos[adr : adr + 3] = (*cube_xy, CUBE_HALF)
        self.data.qpos[adr + 3 : adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.data.mocap_pos[self._target_mocap] = (*target_xy, 0.0)

    def _apply_action(self, action: np.ndarray) -> None:
        self.data.ctrl[self._arm_act] = action[:5]
        self.data.ctrl[self._grip_act] = action[5] * FINGER_TRAVEL

    def _get_obs(self) -> dict[str, np.ndarray]:
        d = self.data
        adr = self._cube_qadr
        quat = d.qpos[adr + 3 : adr + 7].copy()
        quat /= np.linalg.norm(quat)
        if quat[0] < 0:  # q and -q are the same rotation; keep one of them
            quat = -quat
        grip_pos = d.qpos[self._finger_qadr] / FINGER_TRAVEL
        grip_vel = d.qvel[self._finger_vadr] / FINGER_TRAVEL
        obs = {
            "joint_pos": np.append(d.qpos[self._arm_qadr], grip_pos),
            "joint_vel": np.append(d.qvel[self._arm_vadr], grip_vel),
            "eef_pos": d.site_xpos[self._tcp_site],
            "cube_pos": d.qpos[adr : adr + 3],
            "cube_quat": quat,
            "target_pos": d.mocap_pos[self._target_mocap],
        }
        return {key: value.astype(np.float32) for key, value in obs.items()}

    def _is_success(self) -> bool:
        in_zone = self._cube_to_target() <= TARGET_RADIUS
        on_table = self.data.xpos[self._cube_body, 2] < CUBE_HALF + 0.005
        return bool(in_zone and on_table and not self._gripper_touches_cube())

    def _extra_info(self) -> dict[str, Any]:
        return {"cube_to_target": self._cube_to_target()}

    def _cube_to_target(self) -> float:
        """Horizontal distance (m) from the cube centre to the target centre."""
        offset = self.data.xpos[self._cube_body, :2] - self.data.mocap_pos[self._target_mocap, :2]
        return float(np.linalg.norm(offset))

    def _gripper_touches_cube(self) -> bool:
        pairs = self.data.contact.geom[: self.data.ncon]  # (ncon, 2) geom ids
        cube_first = (pairs[:, 0] == self._cube_geom) & np.isin(pairs[:, 1], self._finger_geoms)
        cube_second = (pairs[:, 1] == self._cube_geom) & np.isin(pairs[:, 0], self._finger_geoms)
        return bool(np.any(cube_first | cube_second))


def _sample_workspace_xy(rng: np.random.Generator) -> np.ndarray:
    """A point on the table in front of the arm, uniform in distance and bearing."""
    r = rng.uniform(*CUBE_RADIUS_RANGE)
    bearing = rng.uniform(*CUBE_ANGLE_RANGE)
    return np.array([r * np.cos(bearing), r * np.sin(bearing)])


# -- scripted expert -------------------------------------------------------------------


def tool_down_quat(yaw: float) -> np.ndarray:
    """Orientation (w, x, y, z) of the ``tcp`` site pointing straight down.

    ``yaw`` is the world-frame angle of the fingers' closing axis (the site's y axis).
    """
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.column_stack([[-s, c, 0.0], [c, s, 0.0], [0.0, 0.0, -1.0]])  # site x, y, z axes
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, rot.ravel())
    return quat


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _cube_yaw(quat: np.ndarray) -> float:
    w, x, y, z = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


class PickPlaceExpert:
    """Phase machine over Cartesian tool waypoints, turned into joint targets by IK.

    Phases: approach (above the cube, fingers aligned with a cube face) -> descend -> close
    -> lift -> transfer (above the target) -> lower -> open -> retreat -> done. Each
    motion is a minimum-jerk interpolation whose length follows from distance and speed,
    so consecutive joint targets change by at most ~0.25 rad. A motion ends once the tool
    is within ``reach_tol`` of its goal (or after ``max_wait`` extra steps). If the cube
    is not in the gripper after the lift or the transfer, the expert opens, rises and
    approaches it again.
    """

    reach_tol = 0.004
    max_wait = 8
    grip_steps = 3  # steps to ramp the gripper command between open and closed
    settle_steps = 3  # steps to hold still after the gripper command has finished ramping
    max_motion_steps = 100

    def __init__(self, env: gym.Env, rng: np.random.Generator) -> None:
        base = env.unwrapped
        if not isinstance(base, ArmPickPlaceEnv):
            raise TypeError(f"PickPlaceExpert drives ArmPickPlaceEnv, got {type(base).__name__}")
        self.ik = DLSInverseKinematics(base.model, "tcp", ARM_JOINTS)
        self.dt = base.control_dt
        # Fixed (not per-episode random) heights and speeds: the same state always gets the
        # same action, which is what a policy imitating these demonstrations can learn.
        del rng  # kept in the signature for make_expert's contract
        self.hover_z = 0.07
        self.speed = 0.11  # mean m/s for free-space moves (peak ~1.9x)
        self.slow_speed = 0.065  # mean m/s near the table
        self.turn_speed = 1.0  # mean rad/s of tool yaw
        self.q_cmd: np.ndarray | None = None
        self.grip = 0.0
        self.phase = "start"
        self._plan: list[tuple[np.ndarray, float]] = []
        self._goal: np.ndarray | None = None
        self._wait = 0
        self._settle = 0

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.q_cmd is None:
            self.q_cmd = obs["joint_pos"][:5].astype(float)
        if self._plan:  # continue the current motion
            self._move_to(*self._plan.pop(0))
        elif (
            self._goal is not None
            and self._wait < self.max_wait
            and np.linalg.norm(obs["eef_pos"] - self._goal) > self.reach_tol
        ):
            self._wait += 1  # let the servos catch up with the last target
        else:
            self._goal, self._wait = None, 0
            self._advance(obs)
        return np.append(self.q_cmd, self.grip).astype(np.float32)

    # -- phases -------------------------------------------------------------------------

    def _advance(self, obs: dict[str, np.ndarray]) -> None:
        """The current phase has finished its motion: start the next one."""
        cube, target = obs["cube_pos"].astype(float), obs["target_pos"].astype(float)
        tool = obs["eef_pos"].astype(float)
        pos, yaw = self._tool_pose(self.q_cmd)
        above = lambda xy: np.array([*xy[:2], self.hover_z])  # noqa: E731
        phase = self.phase
        if phase == "start":
            grasp_yaw = self._choose_grasp_yaw(cube, obs["cube_quat"])
            self._start_motion("approach", above(cube), grasp_yaw, self.speed)
        elif phase == "approach":
            grasp_pos = np.array([*cube[:2], CUBE_HALF + 0.0015])
            self._start_motion("descend", grasp_pos, yaw, self.slow_speed)
        elif phase in ("descend", "close"):
            self.phase = "close"
            if self._ramp_gripper(1.0):
                self._start_motion("lift", above(pos), yaw, self.slow_speed)
        elif phase == "lift":
            if cube[2] < CUBE_HALF + 0.02:  # the cube stayed on the table
                self.phase = "reopen"
                return
            # Place so that the cube (not the tool) lands on the target, and keep the wrist
            # roll as it is: the closing axis turns with the arm's bearing.
            place_xy = target[:2] + (tool[:2] - cube[:2])
            turn = np.arctan2(place_xy[1], place_xy[0]) - np.arctan2(pos[1], pos[0])
            place_yaw = yaw + _wrap(turn)
            self._start_motion("transfer", above(place_xy), place_yaw, self.speed)
        elif phase == "transfer":
            if np.linalg.norm(cube - tool) > 0.02:  # dropped on the way
                self.phase = "reopen"
                return
            place_z = CUBE_HALF + 0.004 + (tool[2] - cube[2])
            self._start_motion("lower", np.array([*pos[:2], place_z]), yaw, self.slow_speed)
        elif phase in ("lower", "open"):
            self.phase = "open"
            if self._ramp_gripper(0.0):
                self._start_motion("retreat", above(pos), yaw, self.slow_speed)
        elif phase == "retreat":
            self.phase = "done"
        elif phase == "reopen":
            if self._ramp_gripper(0.0):
                self._start_motion("rise", above(pos), yaw, self.slow_speed)
        elif phase == "rise":
            self.phase = "start"
        # "done": hold the last targets.

    def _choose_grasp_yaw(self, cube: np.ndarray, cube_quat: np.ndarray) -> float:
        """Closing-axis yaw along the cube's local x axis (perpendicular to its x faces).

        The gripper is symmetric under a half turn, so the closing axis is the cube yaw plus
        pi/2 modulo pi; of those two the one nearer ``natural`` (roll = 0: closing axis
        perpendicular to the arm's bearing) is taken. The cube's quarter-turn symmetry is
        deliberately not used: picking the face nearest to roll = 0 would make the wrist
        roll a sawtooth of the cube yaw, whose jumps a learned policy blurs into grasps
        across a cube edge. With the cube yaw and the bearing both within about +-pi/4 the
        roll stays a smooth function (cube yaw - bearing, within the wrist's range).
        """
        natural = np.arctan2(cube[1], cube[0]) + np.pi / 2
        offset = _cube_yaw(cube_quat) + np.pi / 2 - natural
        return natural + float((offset + np.pi / 2) % np.pi - np.pi / 2)

    # -- motion helpers -------------------------------------------------------------------

    def _start_motion(
        self, phase: str, goal_pos: np.ndarray, goal_yaw: float, speed: float
    ) -> None:
        """Enter ``phase``: queue a minimum-jerk path from the commanded pose to the goal."""
        self.phase = phase
        pos, yaw = self._tool_pose(self.q_cmd)
        if not (np.all(np.isfinite(goal_pos)) and np.isfinite(goal_yaw)):
            return  # a broken simulation state: hold still rather than plan towards NaN
        d_yaw = _wrap(goal_yaw - yaw)
        duration = max(np.linalg.norm(goal_pos - pos) / speed, abs(d_yaw) / self.turn_speed)
        n = int(np.clip(np.ceil(duration / self.dt), 2, self.max_motion_steps))
        for k in range(1, n + 1):
            s = k / n
            s = s**3 * (10 - 15 * s + 6 * s**2)
            self._plan.append((pos + s * (goal_pos - pos), yaw + s * d_yaw))
        self._goal = goal_pos
        self._move_to(*self._plan.pop(0))

    def _move_to(self, pos: np.ndarray, yaw: float) -> None:
        result = self.ik.solve(pos, tool_down_quat(yaw), q_init=self.q_cmd, max_iters=50)
        self.q_cmd = result.qpos

    def _tool_pose(self, q: np.ndarray) -> tuple[np.ndarray, float]:
        """Commanded tool position and closing-axis yaw for joint targets ``q``."""
        pos, rot = self.ik.forward(q)
        return pos, float(np.arctan2(rot[1, 1], rot[0, 1]))

    def _ramp_gripper(self, goal: float) -> bool:
        """Move the gripper command one step towards ``goal``; True once it has settled there."""
        if self.grip != goal:
            step = 1.0 / self.grip_steps
            self.grip = float(np.clip(goal, self.grip - step, self.grip + step))
            self._settle = 0
            return False
        self._settle += 1
        return self._settle >= self.settle_steps


def make_env(render_mode: str | None = None, **kwargs: Any) -> ArmPickPlaceEnv:
    """Build the env (``kwargs`` go to ``ArmPickPlaceEnv``: width, height, obs_mode, image_size)."""
    return ArmPickPlaceEnv(render_mode=render_mode, **kwargs)


def make_expert(env: gym.Env, rng: np.random.Generator) -> PickPlaceExpert:
    """The IK expert for one episode; build it after ``env.reset``."""
    return PickPlaceExpert(env, rng)


ARM_PICK_PLACE = register_task(
    Task(
        name="arm_pick_place",
        horizon=HORIZON,
        make_env=make_env,
        make_expert=make_expert,
        description="SO-101-like arm with a two-finger gripper: pick a cube, place it on a target",
        discrete_action_dims=(5,),  # the gripper: 0 open, 1 closed
    )
)
register_task(image_variant(ARM_PICK_PLACE))

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=f"{__name__}:ArmPickPlaceEnv")
