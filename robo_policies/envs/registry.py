"""The task registry: task modules register themselves; ``get_task(name)`` looks them up."""

from __future__ import annotations

import importlib

from robo_policies.envs.task import Task
from robo_policies.utils.errors import UnknownNameError

_TASKS: dict[str, Task] = {}

# Modules whose import registers tasks. Optional-extra tasks register without importing
# their heavy dependency; the import happens when the env is built.
_TASK_MODULES = (
    "robo_policies.envs.diffdrive_nav",
    "robo_policies.envs.arm_pick_place",
    "robo_policies.envs.ogbench_cube",
)


def register_task(task: Task) -> Task:
    """Add a task under ``task.name``; registering a name twice is a bug and raises."""
    if task.name in _TASKS:
        raise ValueError(f"task '{task.name}' is already registered")
    _TASKS[task.name] = task
    return task


def _load_builtin_tasks() -> None:
    for module in _TASK_MODULES:
        importlib.import_module(module)


def task_names() -> list[str]:
    """Names of every registered task, sorted."""
    _load_builtin_tasks()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name raises with the list of known ones."""
    _load_builtin_tasks()
    if name not in _TASKS:
        raise UnknownNameError(f"unknown task '{name}'; known tasks: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]
