"""Shared machinery for the MuJoCo task environments.

Subclasses describe a scene (an MJCF file), how to randomise it on reset, how an action
drives the actuators, what the full state observation is and when the task is solved. This
base class owns everything else once: seeding, frame skipping, horizon truncation, the
``info["is_success"]`` contract, fast headless rendering and the observation modes:

- ``state``: the full simulator state the subclass gives (object and goal poses included);
- ``image``: what the real robot has, its proprioception (``PROPRIO_KEYS``: encoders,
  odometry) and its cameras (``CAMERAS``, each as ``<camera>_image``, (H, W, 3) uint8);
- ``both``: the full state and the cameras.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

OBS_MODES = ("state", "image", "both")
IMAGE_SIZE = 84
"""Default camera image side (pixels): small enough to train from on a CPU."""


def fast_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """A headless renderer without multisampling, shadows or reflections (fast frames)."""
    model.vis.quality.offsamples = 0
    renderer = mujoco.Renderer(model, height, width)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    return renderer


def image_key(camera: str) -> str:
    """The observation key of a camera's image."""
    return f"{camera}_image"


class MujocoTaskEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A MuJoCo scene with a fixed horizon, a success test and a dict of observations.

    Args:
        xml_path: MJCF scene file.
        frame_skip: physics steps per ``env.step`` (control period = frame_skip * timestep).
        horizon: number of steps after which the episode is truncated.
        render_mode: ``None`` or ``"rgb_array"``.
        width, height: rendered image size in pixels (``render()``, videos).
        camera: name of the MJCF camera used for rendering.
        obs_mode: ``state``, ``image`` or ``both`` (see the module docstring).
        image_size: side in pixels of the square camera images in the observation.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    PROPRIO_KEYS: ClassVar[tuple[str, ...]] = ()
    """State keys the real robot measures too (joint encoders, odometry), kept in ``image`` mode."""
    CAMERAS: ClassVar[tuple[str, ...]] = ()
    """MJCF cameras the real robot has, rendered into the ``image`` and ``both`` observations."""

    def __init__(
        self,
        xml_path: str | Path,
        frame_skip: int,
        horizon: int,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
        camera: str = "scene",
        obs_mode: str = "state",
        image_size: int = IMAGE_SIZE,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if not 16 <= image_size <= 480:
            raise ValueError(f"image_size must be in [16, 480] pixels, got {image_size}")
        self.obs_mode = obs_mode
        self.image_size = image_size
        self._camera_renderer: mujoco.Renderer | None = None
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
        """The full state observation, matching the space given to ``_set_observation_space``."""

    def _proprioception(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the real robot measures of ``state`` (``PROPRIO_KEYS``); a subclass may
        re-express a key as the robot would (a base's pose from its odometry's origin)."""
        return {key: state[key] for key in self.PROPRIO_KEYS}

    # -- observations in every mode -------------------------------------------------------

    def _set_observation_space(self, state: spaces.Dict) -> None:
        """Set ``observation_space`` for ``obs_mode`` from the full state space."""
        if self.obs_mode == "state":
            self.observation_space = state
            return
        keys = dict(state.spaces) if self.obs_mode == "both" else {k: state[k] for k in self.PROPRIO_KEYS}
        side = self.image_size
        for camera in self.CAMERAS:
            keys[image_key(camera)] = spaces.Box(0, 255, shape=(side, side, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(keys)

    def state_observation(self) -> dict[str, np.ndarray]:
        """The full simulator state, whatever the observation mode (experts read it)."""
        return self._get_obs()

    def camera_image(self, camera: str) -> np.ndarray:
        """What MJCF camera ``camera`` sees now, ``(image_size, image_size, 3) uint8``."""
        if self._camera_renderer is None:
            self._camera_renderer = fast_renderer(self.model, self.image_size, self.image_size)
        self._camera_renderer.update_scene(self.data, camera=camera)
        return self._camera_renderer.render()

    def _observation(self, cameras: bool = True) -> dict[str, np.ndarray]:
        """The observation of ``obs_mode``; ``cameras=False`` leaves the images out."""
        state = self._get_obs()
        if self.obs_mode == "state":
            return state
        observation = state if self.obs_mode == "both" else self._proprioception(state)
        if cameras:
            observation.update({image_key(camera): self.camera_image(camera) for camera in self.CAMERAS})
        return observation

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
        return self._observation(), self._info(self._is_success())

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
        return self._observation(), self._reward(success), success, truncated, self._info(success)

    # -- what a sim twin drives (``robots.sim_twin``) ---------------------------------------

    def drive(self, action: np.ndarray, seconds: float) -> None:
        """Apply ``action`` and advance the physics by ``seconds`` (0: apply only): a robot's
        control period, which need not be the task's step (a 50 Hz loop drives a 10 Hz task)."""
        self._apply_action(np.clip(np.asarray(action, dtype=np.float32), self.action_space.low,
                                   self.action_space.high))
        steps = round(seconds / self.model.opt.timestep)
        if steps > 0:
            mujoco.mj_step(self.model, self.data, nstep=steps)

    def observe(self, cameras: bool = True) -> dict[str, np.ndarray]:
        """The current observation, without stepping; ``cameras=False``: without the images
        (a twin renders them through its cameras)."""
        return self._observation(cameras)

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
            self._renderer = fast_renderer(self.model, self._height, self._width)
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render()

    def close(self) -> None:
        for renderer in (self._renderer, self._camera_renderer):
            if renderer is not None:
                renderer.close()
        self._renderer = self._camera_renderer = None
