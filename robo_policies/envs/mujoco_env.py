"""Shared machinery for the MuJoCo task environments.

Subclasses describe a scene (an MJCF file), how to randomise it on reset, how an action
drives the actuators, what the observation is and when the task is solved. This base
class owns everything else once: seeding, frame skipping, horizon truncation, the
``info["is_success"]`` contract and fast headless rendering.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np


class MujocoTaskEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A MuJoCo scene with a fixed horizon, a success test and a dict of state observations.

    Args:
        xml_path: MJCF scene file.
        frame_skip: physics steps per ``env.step`` (control period = frame_skip * timestep).
        horizon: number of steps after which the episode is truncated.
        render_mode: ``None`` or ``"rgb_array"``.
        width, height: rendered image size in pixels.
        camera: name of the MJCF camera used for rendering.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        xml_path: str | Path,
        frame_skip: int,
        horizon: int,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
        camera: str = "scene",
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.model = mujoco.MjModel.from_xml_path(str(xml_path))
        self.data = mujoco.MjData(self.model)
        self.frame_skip = frame_skip
        self.horizon = horizon
        self.render_mode = render_mode
        self._width, self._height, self._camera = width, height, camera
        self._renderer: mujoco.Renderer | None = None
        self._steps = 0
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.control_dt)}

    @property
    def control_dt(self) -> float:
        """Seconds of simulated time per ``env.step``."""
        return self.model.opt.timestep * self.frame_skip

    # -- what subclasses provide -------------------------------------------------------

    @abstractmethod
    def _reset_scene(self, rng: np.random.Generator) -> None:
        """Randomise the scene in ``self.data`` (called after ``mj_resetData``)."""

    @abstractmethod
    def _apply_action(self, action: np.ndarray) -> None:
        """Write a validated action into ``self.data.ctrl``."""

    @abstractmethod
    def _get_obs(self) -> dict[str, np.ndarray]:
        """The current observation, matching ``self.observation_space``."""

    @abstractmethod
    def _is_success(self) -> bool:
        """Whether the task is solved in the current state."""

    def _reward(self, success: bool) -> float:
        """Sparse reward by default: 1 on success."""
        return float(success)

    def _extra_info(self) -> dict[str, Any]:
        """Task-specific entries added to ``info``."""
        return {}

    # -- the Gymnasium API ---------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self._reset_scene(self.np_random)
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        return self._get_obs(), self._info(self._is_success())

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"action has shape {action.shape}, expected {self.action_space.shape}"
            )
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN or inf: {action}")
        self._apply_action(np.clip(action, self.action_space.low, self.action_space.high))
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self._steps += 1
        success = self._is_success()
        truncated = self._steps >= self.horizon
        return self._get_obs(), self._reward(success), success, truncated, self._info(success)

    # -- what a sim twin drives (``robots.sim_twin``) ---------------------------------------

    def drive(self, action: np.ndarray, seconds: float) -> None:
        """Apply ``action`` and advance the physics by ``seconds`` (0: apply only): a robot's
        control period, which need not be the task's step (a 50 Hz loop drives a 10 Hz task)."""
        self._apply_action(np.clip(np.asarray(action, dtype=np.float32), self.action_space.low,
                                   self.action_space.high))
        steps = round(seconds / self.model.opt.timestep)
        if steps > 0:
            mujoco.mj_step(self.model, self.data, nstep=steps)

    def observe(self) -> dict[str, np.ndarray]:
        """The current observation, without stepping."""
        return self._get_obs()

    def solved(self) -> bool:
        """Whether the task is solved in the current state."""
        return self._is_success()

    def _info(self, success: bool) -> dict[str, Any]:
        return {"is_success": bool(success), **self._extra_info()}

    def render(self) -> np.ndarray | None:
        """An RGB frame (H, W, 3) uint8 from the scene camera, or None without a render mode."""
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            # Fast frames: no multisampling, shadows or reflections.
            self.model.vis.quality.offsamples = 0
            self._renderer = mujoco.Renderer(self.model, self._height, self._width)
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
