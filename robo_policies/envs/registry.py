"""The task registry: task modules register themselves; ``get_task(name)`` looks them up."""

from __future__ import annotations

from robo_policies.envs.task import Task
from robo_policies.utils.registry import Registry

# Optional-extra tasks register without importing their heavy dependency; the import happens
# when the env is built.
_TASKS: Registry[Task] = Registry("task", "tasks", builtin_modules=(
    "robo_policies.envs.diffdrive_nav",
    "robo_policies.envs.arm_pick_place",
    "robo_policies.envs.ogbench_cube",
))


def register_task(task: Task) -> Task:
    """Add a task under ``task.name``; registering a name twice is a bug and raises."""
    return _TASKS.add(task.name, task)


def task_names() -> list[str]:
    """Names of every registered task, sorted."""
    return _TASKS.names()


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name raises with the list of known ones."""
    return _TASKS.get(name)


def task_observation_keys(name: str | None, env_kwargs: dict | None = None) -> list[str] | None:
    """The observation keys task ``name``'s env gives when built with ``env_kwargs``; None
    when no such task is registered or its optional extra is missing (datasets written by
    other tools name tasks of their own)."""
    if name not in task_names():
        return None
    try:
        env = get_task(name).env(**(env_kwargs or {}))
    except ImportError:
        return None
    try:
        return list(env.observation_space.spaces)
    finally:
        env.close()
