"""Plugins: outside modules that add heads, RL algorithms, robot kinds, tasks or dataset formats.

A plugin is an importable module that registers what it adds when imported (e.g.
``@register_head("toy", ToyHeadConfig)``). ``robo`` imports the modules named in the
``ROBO_PLUGINS`` environment variable (comma-separated) and those a package declares under
the ``robo_policies.plugins`` entry-point group, before it composes any config. A folder
``configs/`` next to a plugin module joins Hydra's search path, so the plugin's config groups
(``configs/policy/toy.yaml``) are chosen like the built-in ones (``policy=toy``), and a
folder ``hardware/`` holds robot configs found by name like the built-in robots.
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from robo_policies.utils.errors import RoboError

ENV_VAR = "ROBO_PLUGINS"
ENTRY_POINT_GROUP = "robo_policies.plugins"

_loaded: dict[str, ModuleType] = {}


class PluginError(RoboError, ImportError):
    """A plugin named in ``ROBO_PLUGINS`` or an entry point that cannot be imported."""


def plugin_names() -> list[str]:
    """Module names from ``ROBO_PLUGINS`` and the entry-point group, in that order."""
    names = [name.strip() for name in os.environ.get(ENV_VAR, "").split(",") if name.strip()]
    return list(dict.fromkeys([*names, *_entry_point_names()]))


@functools.cache
def _entry_point_names() -> tuple[str, ...]:
    """The entry-point group's modules: read once, as scanning the installed packages takes ~20 ms."""
    return tuple(point.value for point in entry_points(group=ENTRY_POINT_GROUP))


def load_plugins() -> list[ModuleType]:
    """Import every plugin once; an import failure names the plugin and where it was named."""
    for name in plugin_names():
        if name not in _loaded:
            try:
                _loaded[name] = importlib.import_module(name)
            except ImportError as err:
                raise PluginError(f"plugin {name!r} (from {ENV_VAR} or the {ENTRY_POINT_GROUP} "
                                  f"entry points) cannot be imported: {err}") from err
    return [_loaded[name] for name in plugin_names()]


def plugin_dirs(folder: str) -> list[Path]:
    """The folders called ``folder`` next to the loaded plugins' modules: ``configs`` (Hydra's
    search path) or ``hardware`` (robot configs, searched by ``robots.config``)."""
    dirs = []
    for module in load_plugins():
        if module.__file__:
            candidate = Path(module.__file__).resolve().parent / folder
            if candidate.is_dir() and candidate not in dirs:
                dirs.append(candidate)
    return dirs


def plugin_config_dirs() -> list[Path]:
    """The ``configs/`` folders next to the loaded plugins' modules."""
    return plugin_dirs("configs")
