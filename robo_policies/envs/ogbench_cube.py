"""``ogbench_cube_single``: OGBench's cube-single task (UR5e + Robotiq gripper), behind the extra.

Needs ``pip install 'robo-policies[ogbench]'``. This module registers the task without
importing ``ogbench``; the import happens in :func:`make_env` / :func:`make_expert`, so the
task registry (and ``robo tasks``) works without the extra.

The env is OGBench's ``CubeEnv`` built directly (no dataset is downloaded) as its reward-based
single-task variant (what ``cube-single-singletask-task{N}-v0`` builds): one cube, a fixed goal
per ``task_id`` (1-5; OGBench's default is 2, ``task2_vertical1``), the arm's start pose
randomised and the cube's start jittered by +-1 cm with a random yaw. It is wrapped to follow
our env contract:

* observation ``{"state": float32 (28,)}``: OGBench's state vector unchanged (arm joint
  positions (6) and velocities (6), effector position (3, centred and scaled by 10), effector
  yaw cos/sin (2), gripper opening (1) and contact (1), cube position (3, centred and scaled),
  quaternion (4) and yaw cos/sin (2));
* action: float32 (5,) in [-1, 1], OGBench's relative end-effector control (dx, dy, dz, dyaw,
  dgripper), clipped;
* ``info["is_success"]`` every step: the cube is within 4 cm of its goal after the step
  (OGBench's criterion, evaluated "post" action); the episode terminates on success and
  truncates after ``horizon`` steps (OGBench uses 200);
* reward: 1.0 on success, else 0.0, like our other tasks; OGBench's own single-task reward
  (0 on success, else -1) is in ``info["ogbench_reward"]``, and OGBench's other info entries
  (proprio/privileged state, qpos, ...) are passed through, except the reset info's goal
  observation (``goal``, ``goal_rendered``), which OGBench does not compute reproducibly;
* ``reset(seed=s)`` is deterministic per seed; ``render()`` gives (height, width, 3) uint8
  frames from OGBench's ``front`` camera with ``render_mode="rgb_array"``.

The expert is OGBench's own scripted oracle for cubes, shipped in the pip package
(``ogbench.manipspace.oracles``): the closed-loop ``CubeMarkovOracle`` by default (OGBench's
"noisy" datasets) or the plan-following ``CubePlanOracle`` (``oracle="plan"``; OGBench's "play"
datasets). :class:`OGBenchOracleExpert` only adapts their interface: it builds the
privileged info dict they read (OGBench only provides the target entries in data-collection
mode, so they are filled in from the goal mocap body) and draws their randomness from the
``rng`` it is given instead of numpy's global generator.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

# Headless rendering: EGL needs no display. Must be set before mujoco is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from robo_policies.envs.registry import register_task  # noqa: E402
from robo_policies.envs.task import Task  # noqa: E402

HORIZON = 200
"""OGBench's ``max_episode_steps`` for cube-single."""
DEFAULT_TASK_ID = 2
"""OGBench's default single task (``task2_vertical1``: cube from x=0.35 to x=0.50)."""
N_TASKS = 5
STATE_DIM = 28
"""Length of OGBench's state observation with one cube."""
ORACLES = ("markov", "plan")
ENV_ID = "robo_policies/OGBenchCubeSingle-v0"


class OGBenchCubeSingleEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """OGBench's single-cube pick-and-place, with our observation/success/horizon contract.

    Args:
        render_mode: ``None`` or ``"rgb_array"``.
        task_id: which of OGBench's five cube-single goals (1-5).
        horizon: steps after which the episode is truncated.
        width, height: rendered frame size in pixels.
        camera: OGBench camera for rendering (``"front"`` or ``"front_pixels"``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        render_mode: str | None = None,
        task_id: int = DEFAULT_TASK_ID,
        horizon: int = HORIZON,
        width: int = 200,
        height: int = 200,
        camera: str = "front",
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if task_id not in range(1, N_TASKS + 1):
            raise ValueError(f"task_id must be one of 1..{N_TASKS}, got {task_id!r}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        from ogbench.manipspace.envs.cube_env import CubeEnv  # the optional extra

        # OGBench's single-task setup (cube_singletask_dict), with success judged after the
        # action ("post") so that is_success describes the state the step produced.
        self.ogbench_env = CubeEnv(
            env_type="single",
            permute_blocks=False,
            reward_task_id=task_id,
            success_timing="post",
            terminate_at_goal=True,
            ob_type="states",
            width=width,
            height=height,
        )
        self.task_id = task_id
        self.horizon = horizon
        self.render_mode = render_mode
        self._camera = camera
        self.observation_space = spaces.Dict(
            {"state": spaces.Box(-np.inf, np.inf, shape=(STATE_DIM,), dtype=np.float32)}
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(5,), dtype=np.float32)
        control_dt = self.ogbench_env.control_timestep()  # a method in OGBench (0.05 s)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / control_dt)}
        self._steps = 0
        self._needs_reset = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        with _quiet_ogbench():
            ob, info = self.ogbench_env.reset(seed=seed)
        self._steps = 0
        self._needs_reset = False
        # OGBench computes its goal observation after two unseeded random actions, so it is
        # not reproducible per seed; the goal is fixed per task_id anyway.
        info = {key: value for key, value in info.items() if key not in ("goal", "goal_rendered")}
        return self._obs(ob), {**info, "is_success": bool(self.ogbench_env._success)}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected {self.action_space.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN or inf: {action}")
        action = np.clip(action, self.action_space.low, self.action_space.high)
        ob, ogbench_reward, _, _, info = self.ogbench_env.step(action)
        self._steps += 1
        success = bool(info.pop("success"))
        truncated = self._steps >= self.horizon
        info = {**info, "is_success": success, "ogbench_reward": float(ogbench_reward)}
        return self._obs(ob), float(success), success, truncated, info

    def _obs(self, ob: np.ndarray) -> dict[str, np.ndarray]:
        state = np.asarray(ob, dtype=np.float32)
        if state.shape != (STATE_DIM,):
            raise RuntimeError(
                f"OGBench returned a state of shape {state.shape}, expected ({STATE_DIM},); "
                "this ogbench version is not supported"
            )
        return {"state": state}

    def render(self) -> np.ndarray | None:
        """An RGB frame (height, width, 3) uint8, or None without a render mode."""
        if self.render_mode != "rgb_array":
            return None
        if self._needs_reset:
            raise RuntimeError("call reset() before render()")
        return self.ogbench_env.render(camera=self._camera)

    def close(self) -> None:
        renderer = getattr(self.ogbench_env, "_renderer", None)
        if renderer is not None:
            renderer.close()
            self.ogbench_env._renderer = None


@contextmanager
def _quiet_ogbench() -> Iterator[None]:
    """Hide the float32 precision warning OGBench's action_space triggers on every reset."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*precision lowered by casting to float32")
        yield


class OGBenchOracleExpert:
    """OGBench's shipped cube oracle behind our ``expert(obs) -> action`` protocol.

    Build it after ``env.reset``. The oracle's random choices (its final arm pose; the plan
    oracle's keyframe timing and noise) are drawn from ``rng``: numpy's global generator,
    which the oracles use, is seeded from ``rng`` while the oracle is reset and restored
    afterwards.
    """

    def __init__(self, env: gym.Env, rng: np.random.Generator, oracle: str = "markov") -> None:
        if oracle not in ORACLES:
            raise ValueError(f"oracle must be one of {ORACLES}, got {oracle!r}")
        inner = env.unwrapped
        if not isinstance(inner, OGBenchCubeSingleEnv):
            raise TypeError(f"expected an OGBenchCubeSingleEnv, got {type(inner).__name__}")
        self._ogbench = inner.ogbench_env
        if oracle == "markov":
            from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle

            # min_norm=0.4 is OGBench's data-generation default.
            self._oracle: Any = CubeMarkovOracle(env=self._ogbench, min_norm=0.4)
        else:
            from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle

            # noise / noise_smoothing are OGBench's data-generation defaults.
            self._oracle = CubePlanOracle(env=self._ogbench, noise=0.1, noise_smoothing=0.5)
        with _global_numpy_seed(rng):
            self._oracle.reset(None, self._info())

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action = self._oracle.select_action(obs.get("state"), self._info())
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)

    def _info(self) -> dict[str, Any]:
        """OGBench's info dict plus the target entries its data-collection mode adds."""
        from ogbench.manipspace import lie

        env = self._ogbench
        info = env.compute_ob_info()
        mocap = env._cube_target_mocap_ids[0]
        info["privileged/target_task"] = "cube"
        info["privileged/target_block"] = 0
        info["privileged/target_block_pos"] = env._data.mocap_pos[mocap].copy()
        info["privileged/target_block_yaw"] = np.array(
            [lie.SO3(wxyz=env._data.mocap_quat[mocap]).compute_yaw_radians()]
        )
        return info


@contextmanager
def _global_numpy_seed(rng: np.random.Generator) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(int(rng.integers(0, 2**32)))
    try:
        yield
    finally:
        np.random.set_state(state)


def make_env(render_mode: str | None = None, **kwargs: Any) -> OGBenchCubeSingleEnv:
    """Build the env (``kwargs`` go to ``OGBenchCubeSingleEnv``: task_id, horizon, width, ...).

    Raises ``ImportError`` without the ``ogbench`` extra.
    """
    return OGBenchCubeSingleEnv(render_mode=render_mode, **kwargs)


def make_expert(
    env: gym.Env, rng: np.random.Generator, oracle: str = "markov"
) -> OGBenchOracleExpert:
    """OGBench's scripted oracle for one episode; build it after ``env.reset``."""
    return OGBenchOracleExpert(env, rng, oracle=oracle)


register_task(
    Task(
        name="ogbench_cube_single",
        horizon=HORIZON,
        make_env=make_env,
        make_expert=make_expert,
        description="OGBench cube-single: UR5e moves one cube to a fixed goal (OGBench's oracle)",
        requires="ogbench",
    )
)

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=f"{__name__}:OGBenchCubeSingleEnv")
