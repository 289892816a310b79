"""Saved fine-tuned policies: what ``robo eval`` loads to act exactly as fine-tuning did.

A fine-tuned checkpoint directory holds the base policy (``policy/``, a saved ``Policy``),
everything else the method acts with (``agent.safetensors``: critics, the critic's frozen
camera encoder, edit policy or actor, temperature) and ``finetuned.yaml`` (the method's name, its config, metadata, SHA-256 of the
weights). ``FinetunedPolicy`` acts through the method's own selection rule: EXPO's argmax
over base samples and edits, PA-RL's optimised argmax, RLPD's Gaussian mean.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from robo_policies.policy import ActsInEpisodes, Policy, saved_policy_config
from robo_policies.rl.agent import FinetuneAgent
from robo_policies.utils.checksums import sha256_of
from robo_policies.rl.config import RLConfig
from robo_policies.rl.registry import Algorithm, build_agent, get_algorithm
from robo_policies.utils.errors import CheckpointError, ConfigError

DESCRIPTION = "finetuned.yaml"
AGENT_WEIGHTS = "agent.safetensors"
POLICY_PREFIXES = ("policy.", "acting_policy.")
"""State-dict keys of the base policy, saved as ``policy/`` (its acting average) instead."""
FLAT_CONFIG_KEY = "rl"
"""Where checkpoints written before each algorithm had its own config kept the one flat
config of every method's settings (read by ``saved_config``)."""


def is_finetuned(directory: str | Path) -> bool:
    return (Path(directory) / DESCRIPTION).is_file()


def save_finetuned(directory: Path, algo: str, agent: FinetuneAgent, metadata: Mapping[str, Any]) -> None:
    """Write the policy, the agent's other weights and ``finetuned.yaml`` into ``directory``
    (the caller makes the directory appear atomically)."""
    agent.acting_policy.save(directory / "policy", metadata=metadata)
    state = {key: value.detach().contiguous().cpu() for key, value in agent.state_dict().items()
             if not key.startswith(POLICY_PREFIXES)}
    save_file(state, str(directory / AGENT_WEIGHTS))
    description = {"algo": algo, "config": dataclasses.asdict(agent.config), "metadata": dict(metadata),
                   "sha256": {AGENT_WEIGHTS: sha256_of(directory / AGENT_WEIGHTS)}}
    (directory / DESCRIPTION).write_text(yaml.safe_dump(description, sort_keys=False))


def finetuned_metadata(directory: str | Path) -> dict[str, Any]:
    return dict(yaml.safe_load((Path(directory) / DESCRIPTION).read_text()).get("metadata") or {})


def load_base_policy(directory: str | Path, config: RLConfig,
                     overrides: Mapping[str, Any] | None = None) -> Policy:
    """The policy saved in ``directory`` with fine-tuning's solver steps (``rl.inference_steps``)
    where its head has solver steps (``mlp_bc`` has none), then ``overrides``."""
    has_steps = "inference_steps" in saved_policy_config(directory).setting_names()
    steps = {"inference_steps": config.inference_steps} if has_steps else {}
    return Policy.load(directory, overrides={**steps, **dict(overrides or {})})


def saved_config(algorithm: Algorithm, description: Mapping[str, Any]) -> RLConfig:
    """The algorithm's config from a ``finetuned.yaml``. An older one holds the flat config of
    every method (``rl:``): the settings this method has are kept, the other methods' dropped,
    and an unset ``offline_critic_steps`` (then: the method's own) takes the method's default."""
    if FLAT_CONFIG_KEY in description and "config" not in description:
        names = {item.name for item in dataclasses.fields(algorithm.config)}
        values = {key: value for key, value in description[FLAT_CONFIG_KEY].items()
                  if key in names and value is not None}
    else:
        values = description["config"]
    return algorithm.make_config(values)


def load_agent(directory: str | Path, overrides: Mapping[str, Any] | None = None) -> tuple[str, FinetuneAgent]:
    """(algo, agent) saved in ``directory``; ``overrides`` change the policy's sampling settings."""
    directory = Path(directory)
    try:
        description = yaml.safe_load((directory / DESCRIPTION).read_text())
        algo = description["algo"]
        config = saved_config(get_algorithm(algo), description)
        checksum = description["sha256"][AGENT_WEIGHTS]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ConfigError) as err:
        raise CheckpointError(f"{directory / DESCRIPTION}: invalid fine-tuning description ({err})") from err
    policy = load_base_policy(directory / "policy", config, overrides)
    agent = build_agent(algo, policy, config)
    path = directory / AGENT_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file is missing")
    if sha256_of(path) != checksum:
        raise CheckpointError(f"{path}: checksum mismatch with {DESCRIPTION} (file modified or damaged)")
    missing, unexpected = agent.load_state_dict(load_file(str(path)), strict=False)
    missing = [key for key in missing if not key.startswith(POLICY_PREFIXES)]
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match algo={algo} (missing {missing}, unexpected {unexpected})")
    return algo, agent.eval()


class FinetunedPolicy(ActsInEpisodes, nn.Module):
    """A fine-tuned agent acting step by step like any policy (``robo eval`` runs it)."""

    warm_starts = False  # it picks among fresh samples (and edits) at every call
    noise_per_row = False  # its samples, edits and critic subsets draw for the whole batch

    def __init__(self, agent: FinetuneAgent) -> None:
        super().__init__()
        self.agent = agent
        self.config = agent.acting_policy.config
        self.obs_shapes = agent.acting_policy.obs_shapes
        self.action_dim = agent.acting_policy.action_dim
        self.start_acting()

    @classmethod
    def load(cls, directory: str | Path, overrides: Mapping[str, Any] | None = None) -> FinetunedPolicy:
        return cls(load_agent(directory, overrides)[1])

    @property
    def last_nfe(self) -> int:
        return self.agent.acting_policy.last_nfe

    def predict_chunk(self, obs: Mapping[str, torch.Tensor],
                      generator: torch.Generator | None = None) -> torch.Tensor:
        windows = self.agent.act(obs, self.generator if generator is None else generator, explore=False)
        return self.agent.acting_policy.normalizer.unnormalize("action", windows)
