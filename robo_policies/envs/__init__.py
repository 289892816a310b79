"""Simulated tasks: MuJoCo environments with scripted experts (see ``task.py``)."""

import os

# Headless rendering through EGL needs no display. MuJoCo reads this when it is first
# imported, so it is set here, before any task module imports mujoco.
if not os.environ.get("MUJOCO_GL"):
    os.environ["MUJOCO_GL"] = "egl"

from robo_policies.envs.registry import get_task, register_task, task_names  # noqa: E402
from robo_policies.envs.task import Expert, Task  # noqa: E402

__all__ = ["Expert", "Task", "get_task", "register_task", "task_names"]
