"""Typed run configs composed by Hydra, with the help text kept beside each field.

Every command's settings are one dataclass. Each field carries a ``help`` string, from which
``robo <command> --help`` is generated, so documentation and defaults live in one place.
Hydra composes the dataclass (registered in its ConfigStore) with the YAML groups under
``configs/`` (``task/...``) and the command line's ``key=value`` overrides; a misspelt key is
an error, not a silently ignored setting.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def setting(default: Any, help: str) -> Any:
    """A dataclass field with a help string (shown by ``--help``)."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TaskConfig:
    """Which task to build; chosen with ``task=<name>`` from ``configs/task/``."""

    name: str = setting("diffdrive_nav", "registered task name (see `robo tasks`)")
    env_kwargs: dict = setting({}, "keyword arguments for the task's env constructor")


@dataclass
class CollectConfig:
    """Settings of ``robo collect``."""

    defaults: list = field(default_factory=lambda: ["_self_", {"task": "diffdrive_nav"}])
    task: TaskConfig = setting(TaskConfig(), "task group: task=<name> (configs/task/<name>.yaml)")
    episodes: int = setting(50, "number of successful demonstrations to save")
    out: str = setting("data/${task.name}.zarr", "output dataset (.zarr directory)")
    seed: int = setting(0, "attempt k resets the env with seed+k")
    action_noise: float = setting(
        0.0,
        "std of Gaussian noise added to expert actions, as a fraction of each action's "
        "half-range; the executed action is stored as `action`, the clean one as `expert_action`",
    )
    keep_failed: bool = setting(False, "also save failed attempts (marked in meta/success)")
    max_attempts: int = setting(0, "give up after this many attempts (0: 2*episodes + 10)")
    overwrite: bool = setting(False, "replace an existing dataset at `out`")
    resume: bool = setting(False, "append to an existing dataset at `out` until it holds `episodes`")
    progress: bool = setting(True, "show a progress bar")


def _register() -> None:
    store = ConfigStore.instance()
    store.store(name="collect", node=CollectConfig)


_register()


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose config ``name`` with Hydra-style ``key=value`` overrides, resolved."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg


def config_help(schema: Any, prefix: str = "") -> str:
    """One line per setting, ``key=default  help``; nested dataclasses give dotted keys."""
    lines = []
    for item in dataclasses.fields(schema):
        if item.name == "defaults":
            continue
        default = getattr(schema, item.name, None)
        if default is None and item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        if dataclasses.is_dataclass(default):
            lines.append(config_help(default, prefix=f"{prefix}{item.name}."))
        else:
            lines.append(f"  {prefix}{item.name}={default}  {item.metadata.get('help', '')}")
    return "\n".join(lines)
