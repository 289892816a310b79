"""Simulated tasks: MuJoCo environments with scripted experts (see ``task.py``)."""

from robo_policies.envs.registry import get_task, register_task, task_names
from robo_policies.envs.task import Expert, Task

__all__ = ["Expert", "Task", "get_task", "register_task", "task_names"]
