"""Fine-tuning algorithms by name, each with its own typed config (``robo finetune algo=<name>``).

An algorithm is a ``FinetuneAgent`` subclass registered with the config dataclass of its
settings::

    @register_algorithm("expo", ExpoConfig)
    class Expo(FinetuneAgent): ...

Registering also makes ``algo=<name>`` an option of Hydra's ``algo`` config group, which puts
``algo: <name>`` and the config's schema under ``rl``: ``rl.<setting>=...`` and the presets
in ``configs/rl/`` then set exactly that method's fields, and a setting it does not have is
an error. The built-in methods register when their modules are imported (``_ALGORITHMS.builtin_modules``); a
plugin module registers its own the same way (``ROBO_PLUGINS``, see ``utils/plugins.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from hydra.core.config_store import ConfigStore

from robo_policies.rl.config import RLConfig
from robo_policies.utils.errors import ConfigError
from robo_policies.utils.registry import Registry

if TYPE_CHECKING:
    from robo_policies.policy import Policy
    from robo_policies.rl.agent import FinetuneAgent

AgentClass = TypeVar("AgentClass", bound=type)


CONFIG_GROUP = "algo"
"""Hydra config group of the algorithms (``robo finetune algo=<name>``)."""


@dataclass(frozen=True)
class Algorithm:
    """A registered fine-tuning method: its agent class and the dataclass of its settings."""

    name: str
    agent: type[FinetuneAgent]
    config: type[RLConfig]

    def make_config(self, values: Mapping[str, Any]) -> RLConfig:
        """The method's config from ``rl.*`` values; a setting it does not have is an error
        naming the ones it has."""
        fields = [item.name for item in dataclasses.fields(self.config)]
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"{', '.join(f'rl.{key}' for key in unknown)}: not a setting of "
                              f"algo={self.name} (its settings: {', '.join(fields)})")
        return self.config(**values)


_ALGORITHMS: Registry[Algorithm] = Registry("algo", "algorithms", builtin_modules=(
    "robo_policies.rl.expo", "robo_policies.rl.parl", "robo_policies.rl.rlpd", "robo_policies.rl.imitation"))


def register_algorithm(name: str, config: type[RLConfig]) -> Callable[[AgentClass], AgentClass]:
    """Class decorator: register a ``FinetuneAgent`` subclass as ``algo=<name>`` with the
    settings dataclass ``config`` (a subclass of ``RLConfig``)."""
    if not (isinstance(config, type) and issubclass(config, RLConfig) and dataclasses.is_dataclass(config)):
        raise TypeError(f"algorithm {name!r}: its config must be a dataclass derived from RLConfig, got {config!r}")

    def register(agent: AgentClass) -> AgentClass:
        _ALGORITHMS.add(name, Algorithm(name, agent, config))
        ConfigStore.instance().store(group=CONFIG_GROUP, name=name, package="_global_",
                                     node={"algo": name, "rl": config})
        return agent

    return register


def load_builtin_algorithms() -> None:
    """Import the built-in algorithms' modules (they register on import). ``robo finetune``
    calls it before composing its config, whose ``algo`` group needs every option."""
    _ALGORITHMS.load_builtins()


def algorithm_names() -> list[str]:
    """Every registered algorithm, sorted."""
    return _ALGORITHMS.names()


def get_algorithm(name: str) -> Algorithm:
    """The algorithm registered as ``name``; an unknown name lists the known ones."""
    return _ALGORITHMS.get(name)


def build_agent(name: str, policy: Policy, config: RLConfig) -> FinetuneAgent:
    """The fine-tuning method ``name`` around ``policy``, with its settings ``config``."""
    algorithm = get_algorithm(name)
    if not isinstance(config, algorithm.config):
        raise ConfigError(f"algo={name} takes a {algorithm.config.__name__}, got a {type(config).__name__}")
    return algorithm.agent(policy, config)
