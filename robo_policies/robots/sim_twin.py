"""The MuJoCo twin of a robot: the ``Robot`` API over the model its task uses.

``robo deploy sim=true`` drives a twin with the same control loop, policy worker and safety
chain as the hardware. Simulated time advances by one control period per command, in step
with the loop (which keeps the twin's clock: the wall clock, or a test's fake clock), so a
sim run is reproducible and its success rate compares with ``robo eval`` on the same task.
An image task's cameras are the twin's cameras (``cameras.rendered``), rendered at each
observation and read through the same camera path as a device's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robo_policies.envs.mujoco_env import MujocoTaskEnv, image_key
from robo_policies.envs.registry import get_task
from robo_policies.robots.arm import arm_hold
from robo_policies.robots.cameras.rendered import RenderedCamera
from robo_policies.robots.clock import WALL_CLOCK
from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import ConfigError


class SimTwin(Robot):
    """A task's MuJoCo scene as a robot.

    Args:
        task: registered task whose model and scene the twin runs (``arm_pick_place``, ...).
        action_names: one name per command dimension, as on the hardware.
        period_s: simulated seconds per command (the control loop's period).
        env_kwargs: settings of the task's env (an image task's ``image_size``).
        **robot_kwargs: safety chain, watchdog and clock (see ``Robot``).
    """

    def __init__(self, name: str, task: str, action_names: list[str], period_s: float,
                 env_kwargs: dict[str, Any] | None = None, **robot_kwargs: Any) -> None:
        self.task = get_task(task)
        self.env_kwargs = dict(env_kwargs or {})
        self._action_names = list(action_names)
        self.env: MujocoTaskEnv | None = None
        probe = self.task.env(**self.env_kwargs).unwrapped
        self._features = {key: tuple(space.shape) for key, space in probe.observation_space.spaces.items()}
        if probe.action_space.shape != (len(self._action_names),):
            raise ConfigError(f"{name}: {len(self._action_names)} action names {self._action_names} for "
                             f"task {task}, whose action has shape {probe.action_space.shape}")
        rendered = [camera for camera in probe.CAMERAS if image_key(camera) in self._features]
        probe.close()
        clock = robot_kwargs.get("clock", WALL_CLOCK)
        cameras = {camera: RenderedCamera(camera, lambda camera=camera: self._sim.camera_image(camera), clock)
                   for camera in rendered}
        super().__init__(name, period_s=period_s, cameras=cameras, **robot_kwargs)

    @property
    def observation_features(self) -> dict[str, tuple[int, ...]]:
        return dict(self._features)

    @property
    def action_names(self) -> list[str]:
        return list(self._action_names)

    @property
    def horizon_s(self) -> float:
        """Simulated seconds the task allows per episode."""
        return self.task.horizon * self._sim.control_dt

    def start_episode(self, seed: int) -> None:
        """Reset the scene as ``robo eval`` does for ``seed``; the safety chain starts afresh."""
        self._sim.reset(seed=seed)
        self.forget_commands()

    def is_success(self) -> bool:
        """The task's success test in the present state."""
        return self._sim.solved()

    @property
    def _sim(self) -> MujocoTaskEnv:
        self._require_connected()
        assert self.env is not None
        return self.env

    def _connect(self) -> None:
        self.env = self.task.env(**self.env_kwargs).unwrapped  # an image task renders its cameras in the loop
        self.env.reset(seed=0)

    def _disconnect(self) -> None:
        if self.env is not None:
            self.env.close()
        self.env = None

    def _read(self) -> dict[str, np.ndarray]:
        for camera in self.cameras.values():
            assert isinstance(camera, RenderedCamera)
            camera.capture()  # the robot's camera path reads them next
        return self._sim.observe(cameras=False)

    def _write(self, command: np.ndarray) -> None:
        self._sim.drive(command, self.period_s or self._sim.control_dt)

    def _write_hold(self, command: np.ndarray) -> None:
        """Apply the hold command without advancing simulated time (only sends do)."""
        self._sim.drive(command, 0.0)

    def _make_safe(self) -> None:
        self.stop()


class SimArm(SimTwin):
    """An arm twin: commands are joint targets (rad) then the gripper closure in [0, 1]."""

    def present_position(self) -> np.ndarray:
        return self._sim.observe(cameras=False)["joint_pos"].astype(np.float64)

    def hold_command(self) -> np.ndarray:
        return arm_hold(self.present_position(), self._last_sent)


class SimBase(SimTwin):
    """A wheeled-base twin: commands are wheel speeds (rad/s)."""

    def hold_command(self) -> np.ndarray:
        return np.zeros(self.action_dim)
