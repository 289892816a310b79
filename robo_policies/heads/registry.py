"""The head registry: every action head joins by name with its own typed config.

A head is one module: an ``ActionHead`` subclass and a ``HeadConfig`` dataclass holding only
that head's settings, joined with ``@register_head("flow", FlowConfig)``. Nothing else names
heads: ``build_head`` looks the name up here, and sampling (composition, warm starts) and
``robo bench`` ask the head class what it supports (``ActionHead.composes``,
``warm_start_time``, ``bench_samplers``) instead of testing which class it is. A plugin
(``ROBO_PLUGINS``) adds a head the same way.

How the configs meet Hydra. The policy config holds what every head shares (history,
horizon, backbone, encoder, normalisation) and ``head``, the head's config. Registering a
head also stores its config class in Hydra's ConfigStore as group ``policy/head``, option
``<name>``, so:

- ``configs/policy/<preset>.yaml`` chooses its head in its defaults list
  (``defaults: [{head: flow}, _self_]``) and may set head fields under ``head:``;
- users pick a preset with ``policy=flow`` and change a head setting with
  ``policy.head.solver=heun`` (``policy/head=diffusion`` swaps the head of a preset that
  sets no head keys);
- the run schema (``robo train``'s) declares ``policy.head`` as the base ``HeadConfig``, and
  OmegaConf merges the chosen head's config, a subclass, into it, so the composed node has
  that head's type: a misspelt head key (``policy.head.solvr``) or a key of another head is
  an error, as for every other setting. (A schema holding one head's config instead could
  not take another's: OmegaConf refuses to merge unrelated dataclasses.)

Each config carries its head's ``name`` (``policy.head.name``), so a saved ``config.yaml``
names its head next to the head's settings, and loading needs nothing but the registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from hydra.core.config_store import ConfigStore

from robo_policies.utils.errors import ConfigError

if TYPE_CHECKING:
    from robo_policies.heads.base import ActionHead

HEAD_GROUP = "policy/head"
"""The Hydra config group each head's config is stored in."""


@dataclass
class HeadConfig:
    """Base of every head's config: the head's registered name; subclasses add their fields
    (each with a docstring under it, shown by ``robo train --help``)."""

    name: str = ""
    """The registered head this config is for (``heads.registry.head_names()``)."""

    @classmethod
    def help_variants(cls) -> dict[str, type[HeadConfig]]:
        """Every registered head's config, by head name (``robo train --help`` lists them)."""
        return {name: _HEADS[name].config for name in head_names()}


@dataclass(frozen=True)
class _Entry:
    head: type[ActionHead]
    config: type[HeadConfig]


_HEADS: dict[str, _Entry] = {}

HeadClass = TypeVar("HeadClass", bound="type[ActionHead]")


def register_head(name: str, config_cls: type[HeadConfig]) -> Callable[[HeadClass], HeadClass]:
    """Class decorator: register the head class under ``name`` with its config dataclass.

    The config's ``name`` field must default to ``name``; the config is stored in Hydra's
    ConfigStore (``policy/head/<name>``). Registering the same pair again (a re-imported
    module) is a no-op; another class under a taken name is an error.
    """
    if not (isinstance(config_cls, type) and issubclass(config_cls, HeadConfig)):
        raise TypeError(f"head {name!r}: config must be a HeadConfig subclass, got {config_cls!r}")
    if config_cls().name != name:
        raise ValueError(f"head {name!r}: {config_cls.__name__}.name must default to {name!r}")

    def register(head_cls: HeadClass) -> HeadClass:
        known = _HEADS.get(name)
        if known is not None and (known.head.__qualname__, known.config.__qualname__) != (
                head_cls.__qualname__, config_cls.__qualname__):
            raise ValueError(f"head {name!r} is already registered ({known.head.__name__})")
        _HEADS[name] = _Entry(head_cls, config_cls)
        ConfigStore.instance().store(group=HEAD_GROUP, name=name, node=config_cls)
        return head_cls

    return register


def head_names() -> list[str]:
    """Registered heads, in registration order (the built-in ones first)."""
    return list(_HEADS)


def head_class(name: str) -> type[ActionHead]:
    """The head class registered as ``name``."""
    return _entry(name).head


def head_config(name: str, **fields: Any) -> HeadConfig:
    """Head ``name``'s config with ``fields`` set (the rest at their defaults); an unknown
    field is a ConfigError naming it and the head's fields."""
    config_cls = _entry(name).config
    unknown = sorted(set(fields) - set(config_fields(config_cls)))
    if unknown:
        raise ConfigError(f"{unknown} not settings of the {name!r} head; its settings: "
                          f"{config_fields(config_cls)}")
    return config_cls(**fields)


def config_fields(config: HeadConfig | type[HeadConfig]) -> list[str]:
    """The settings of a head config (its fields but ``name``)."""
    return [item.name for item in dataclasses.fields(config) if item.name != "name"]


def _entry(name: str) -> _Entry:
    if name not in _HEADS:
        raise ConfigError(f"unknown policy head {name!r}; choose from {head_names()} (a plugin's "
                          "head is known once its module is named in ROBO_PLUGINS)")
    return _HEADS[name]
