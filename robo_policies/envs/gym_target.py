"""Evaluate in any registered Gymnasium env: build it by id and adapt its observations.

``make_gym_env_factory("pkg/Env-v0", import_module="pkg", obs_map={...})`` returns a
``GymTarget``: ``target.make_env`` is the env factory and ``target.obs_adapter`` turns the
env's observation into the policy's dict of arrays, the two things ``evaluate`` takes
(``make_env, obs_adapter = target`` unpacks them too).

Observation mapping (``obs_map``: policy key -> env key):

- Dict observation: env keys are dotted paths into nested dicts (``"state.position"`` is
  ``obs["state"]["position"]``); a policy key that ``obs_map`` leaves out is looked up under
  its own name. With ``keys`` (the policy's observation keys) the adapter returns exactly
  those; without, it returns every top-level array of the observation plus the mapped keys.
- Flat Box observation: ``obs_map`` maps exactly one policy key to ``"."`` (the whole
  array); without ``obs_map``, a policy with a single observation key (``keys``) gets it.

Episode length is the env's own: ``gymnasium.make`` applies the registered TimeLimit
(``max_episode_steps``, overridable through ``kwargs={"max_episode_steps": N}``), and
``evaluate`` stops when the env truncates.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec, find_highest_version, get_env_id, parse_env_id

from robo_policies.utils.errors import ConfigError, ObservationKeyError

WHOLE = "."
"""The ``obs_map`` value meaning "the whole (flat) observation"."""


@dataclass(frozen=True)
class GymTarget:
    """A Gymnasium env id to evaluate in, with its observation adapter.

    Build with ``make_gym_env_factory``; use ``make_env`` and ``obs_adapter`` with ``evaluate``.
    """

    env_id: str
    spec: EnvSpec
    kwargs: dict[str, Any] = field(default_factory=dict)
    obs_map: dict[str, str] = field(default_factory=dict)
    keys: tuple[str, ...] | None = None
    render_mode: str | None = None

    @property
    def max_episode_steps(self) -> int | None:
        """The TimeLimit the env is made with (``kwargs`` override the registered one)."""
        return self.kwargs.get("max_episode_steps", self.spec.max_episode_steps)

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """``gymnasium.make`` the env; ``render_mode`` overrides the target's default."""
        render_mode = render_mode or self.render_mode
        extra = {"render_mode": render_mode} if render_mode is not None else {}
        return gym.make(self.env_id, **extra, **self.kwargs)

    def obs_adapter(self, obs: Any) -> dict[str, np.ndarray]:
        """The env's observation as the policy's dict of arrays (see the module docstring)."""
        if isinstance(obs, Mapping):
            return self._adapt_dict(obs)
        return self._adapt_flat(np.asarray(obs))

    def __iter__(self) -> Iterator[Any]:
        """Unpack as ``make_env, obs_adapter = target``."""
        return iter((self.make_env, self.obs_adapter))

    def _adapt_dict(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if self.keys is None:
            out = {k: np.asarray(v) for k, v in obs.items() if not isinstance(v, Mapping)}
            wanted = list(self.obs_map)
        else:
            out, wanted = {}, list(self.keys)
        for key in wanted:
            out[key] = _lookup(obs, key, self.obs_map.get(key, key))
        return out

    def _adapt_flat(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        whole = [key for key, path in self.obs_map.items() if path == WHOLE]
        if self.obs_map and (len(self.obs_map) != 1 or len(whole) != 1):
            raise ObservationKeyError(
                f"the env's observation is a flat array of shape {obs.shape}, so obs_map must map "
                f"exactly one policy key to '{WHOLE}' (the whole array); got {self.obs_map}"
            )
        if whole:
            key = whole[0]
        elif self.keys is not None and len(self.keys) == 1:
            key = self.keys[0]
        else:
            raise ObservationKeyError(
                f"the env's observation is a flat array of shape {obs.shape}; name the policy key "
                f"it feeds with obs_map={{'<policy key>': '{WHOLE}'}}"
                + (f" (policy keys: {', '.join(self.keys)})" if self.keys else "")
            )
        missing = [k for k in self.keys or () if k != key]
        if missing:
            raise ObservationKeyError(
                f"policy observation key '{missing[0]}' is not provided: the env's flat "
                f"observation feeds only '{key}'; available: '{WHOLE}' (the whole array)"
            )
        return {key: obs}


def make_gym_env_factory(
    env_id: str,
    kwargs: dict[str, Any] | None = None,
    import_module: str | None = None,
    obs_map: dict[str, str] | None = None,
    render_mode: str | None = None,
    keys: Sequence[str] | None = None,
) -> GymTarget:
    """A ``GymTarget`` for the registered Gymnasium env ``env_id``.

    Args:
        env_id: the registered id (``"module:Id-v0"`` also imports ``module`` first).
        kwargs: passed to ``gymnasium.make`` (env arguments, or ``max_episode_steps``).
        import_module: imported first, for packages that register their envs on import.
        obs_map: policy observation key -> env observation key (see the module docstring).
        render_mode: the default render mode of the envs made (evaluate asks for
            ``"rgb_array"`` itself when it records video).
        keys: the policy's observation keys (the dataset's); when given, the adapter returns
            exactly these and a flat observation defaults to the single key.

    Raises:
        ValueError: ``env_id`` is not registered (the message names it and the module imported).
    """
    module_in_id, _, bare_id = env_id.rpartition(":")  # gymnasium's "module:Id-v0" form
    imported = [m for m in (import_module, module_in_id) if m]
    for module in imported:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(f"could not import '{module}' to register '{env_id}': {err}") from err
    try:
        spec = _find_spec(bare_id)
    except gym.error.Error as err:
        after = f" after importing {', '.join(repr(m) for m in imported)}" if imported else ""
        raise ConfigError(
            f"unknown Gymnasium env id '{env_id}'{after}: {err}. Pass import_module=<package> "
            "if a package registers it on import."
        ) from err
    return GymTarget(
        env_id=env_id,
        spec=spec,
        kwargs=dict(kwargs or {}),
        obs_map=dict(obs_map or {}),
        keys=tuple(keys) if keys is not None else None,
        render_mode=render_mode,
    )


def _find_spec(env_id: str) -> EnvSpec:
    """``gymnasium.spec``, also resolving an unversioned id to its latest version as make does."""
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        namespace, name, version = parse_env_id(env_id)
        latest = find_highest_version(namespace, name) if version is None else None
        if latest is None:
            raise
        return gym.spec(get_env_id(namespace, name, latest))


def _lookup(obs: Mapping[str, Any], key: str, path: str) -> np.ndarray:
    """``obs[path]`` for policy key ``key``, following dots into nested dicts."""
    value: Any = obs
    if path in obs:  # an env key that itself contains dots
        value = obs[path]
    elif path != WHOLE:
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                value = None
                break
            value = value[part]
    if value is None or isinstance(value, Mapping):
        source = "" if path == key else f" (mapped to env key '{path}')"
        why = "is a nested dict, not an array" if value is not None else "is missing"
        raise ObservationKeyError(
            f"policy observation key '{key}'{source} {why} in the env observation; "
            f"available: {', '.join(_leaf_paths(obs))}"
        )
    return np.asarray(value)


def _leaf_paths(obs: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in obs.items():
        if isinstance(value, Mapping):
            paths += _leaf_paths(value, f"{prefix}{key}.")
        else:
            paths.append(f"{prefix}{key}")
    return paths
