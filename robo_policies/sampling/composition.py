"""GPC policy composition: several trained policies sample one action chunk together.

General Policy Composition (arXiv 2510.01068) combines K trained policies at test time,
without training: one shared initial noise; at every solver step each parent is queried on
the same noisy chunk with its own observation encoding (parents may read different
observation keys and history lengths), the parents' fields are brought to one
representation and combined with convex weights, and one shared solver step follows.

How this implementation does it, and why:

- **The first parent leads.** Its time grid, solver and step count drive the shared solve
  (``DenoisingHead.sample`` with a replaced ``field``); every parent's field is expressed as
  the lead's prediction at the lead's state and time (``DenoisingHead.field_for``). A parent
  on another interpolant (a flow parent of a diffusion lead, or the reverse) is queried at
  the state and time of its own interpolant with the same noise-to-signal ratio.
- **Combined in the lead's prediction kind.** At one state and time the conversions between
  noise, clean-chunk and velocity predictions are affine and the weights sum to 1, so the
  convex combination is the same in every kind (GPC App. G); only the numerics differ. The
  lead's own kind needs no conversion for parents on the lead's interpolant (a policy
  composed with itself reproduces itself exactly) and hands the solver what it expects.
- **Lead order matters across interpolants.** At flow time 1 (alpha = 0) a noise-predicting
  diffusion parent says nothing about the clean chunk, so its clean-chunk estimate is
  unstable there: with such a parent and flow parents, let the diffusion parent lead.
- **Chunks are aligned in time.** A parent with To observation steps predicts actions from
  its first observation's step on, so the composed chunk follows the longest To and parent
  k covers chunk steps [To_max - To_k, To_max - To_k + Tp_k). At each step the weights are
  renormalised over the parents covering it: with equal To, the first min(Tp) steps mix all
  parents and a longer parent's tail is its own (even at weight 0: someone must move it).
  Each parent reads its own last To_k observations.
- **Each head says what it composes** (``ActionHead.composes``): a denoising ``field``
  (diffusion, flow), as above, or an ``energy``: energy heads compose by a weighted sum of
  energies, descended by the lead's sampler (``EnergyHead.sample`` with a replaced
  ``energy``), and must predict the same chunk. The kinds do not mix (an energy has no
  time-indexed field); a head that declares neither (``mlp_bc``) cannot be composed.
- **Parents must agree on the action**: its dimension and its normalisation, because the
  combined chunk is unnormalised once.

- **Each parent reads its own observation keys** (a camera policy and a state policy on one
  env): it is fed only those. It also keeps the task it was trained on, which says what its
  keys mean; ``robo eval`` refuses an env where a parent's key means something else
  (``envs.targets.check_readers``), so two parents that learned one key name with two
  meanings (odometry and world pose) are never fed the same values.

A composed policy runs like one ``Policy`` (``reset``, ``act``, ``predict_chunk``, ``nfe``,
``model_call_ms``), so ``robo eval`` scores it. Saved, it is a directory: ``composition.yaml``
(weights, parent subdirectories, where the parents came from, metadata such as the task) and
each parent saved in ``parent_<k>/`` with its training task, so the directory is
self-contained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from robo_policies.utils.atomic import atomic_output
from robo_policies.utils.errors import CheckpointError, ConfigError
from robo_policies.heads.base import Field, Generators
from robo_policies.heads.energy import Energy
from robo_policies.policy import ActsInEpisodes, Policy, policy_metadata, saved_policy_config
from robo_policies.sampling.warmstart import sample_chunk

COMPOSITION_FILE = "composition.yaml"
"""The file that marks a directory as a saved composition."""

WEIGHT_TOLERANCE = 1e-6
"""How far the weights' sum may be from 1 (grids of decimal steps do not sum exactly)."""

NORMALIZER_TOLERANCE = 1e-5
"""Relative difference of action scale/offset still counted as the same normalisation
(policies fitted on the same data agree exactly; GPC's parents differed by <= 1e-6)."""


@dataclass(frozen=True)
class ComposedConfig:
    """The run-time settings of the composed chunk (what ``Policy.act`` reads)."""

    n_obs_steps: int
    """To: the longest of the parents'; each parent reads its own last To frames."""
    horizon: int
    """Steps of the composed chunk: it covers every parent's time-aligned chunk."""
    n_action_steps: int
    """Ta: the smallest of the parents', so every executed action mixes all parents."""


class ComposedPolicy(ActsInEpisodes):
    """K trained policies sampling one action chunk together (GPC); see the module docstring.

    Args:
        parents: the policies; the first leads the shared solver.
        weights: one per parent, each >= 0, summing to 1.
        names: labels for the parents in errors and in the saved composition (e.g. their
            checkpoint directories); default ``parent_<k>``.
        tasks: the task each parent was trained on (its saved metadata's ``task``), which
            says what its observation keys mean; None where unknown.
    """

    def __init__(
        self, parents: Sequence[Policy], weights: Sequence[float], names: Sequence[str] | None = None,
        tasks: Sequence[str | None] | None = None,
    ) -> None:
        self.parents = list(parents)
        default_names = [f"parent_{k}" for k in range(len(self.parents))]
        self.names = default_names if names is None else [str(name) for name in names]
        self.tasks = [None] * len(self.parents) if tasks is None else list(tasks)
        for what, given in (("names", self.names), ("tasks", self.tasks)):
            if len(given) != len(self.parents):
                raise ValueError(f"got {len(given)} {what} for {len(self.parents)} parents")
        _check_parents(self.parents, self.names)
        self.weights = _check_weights(weights, len(self.parents))
        n_obs_steps = max(parent.config.n_obs_steps for parent in self.parents)
        # Aligned in time: a parent's chunk starts at its first observation's step.
        starts = [n_obs_steps - parent.config.n_obs_steps for parent in self.parents]
        self.windows = [slice(start, start + p.config.horizon) for start, p in zip(starts, self.parents)]
        self.config = ComposedConfig(
            n_obs_steps=n_obs_steps,
            horizon=max(window.stop for window in self.windows),
            n_action_steps=min(parent.config.n_action_steps for parent in self.parents),
        )
        self.step_weights = _step_weights(self.weights, self.windows, self.config.horizon)
        self.obs_shapes = {
            key: shape for parent in self.parents for key, shape in parent.obs_shapes.items()
        }
        self.action_dim = self.lead.action_dim
        self.start_acting()

    @property
    def lead(self) -> Policy:
        """The parent whose sampler (time grid, solver, steps) the composition follows."""
        return self.parents[0]

    @property
    def nfe(self) -> int:
        """Network evaluations per model call: each solver step queries every parent."""
        return len(self.parents) * self.lead.nfe

    @property
    def last_nfe(self) -> int:
        """Network evaluations the last model call used: every parent per solver step."""
        return len(self.parents) * self.lead.last_nfe

    def encode(self, obs: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """Each parent's conditioning (B, C_k) from observation windows (B, To, ...): its own
        keys and its own last To_k frames."""
        return [
            parent.encode({
                key: window[:, -parent.config.n_obs_steps:]
                for key, window in obs.items() if key in parent.obs_shapes
            })
            for parent in self.parents
        ]

    @torch.no_grad()
    def predict_chunk(self, obs: Mapping[str, torch.Tensor], shift: int | None = None,
                      generator: Generators = None) -> torch.Tensor:
        """Unnormalised composed chunks (B, horizon, A) for observation windows (B, To, ...); a
        warm start shifts the previous chunk by ``shift`` steps (default: the Ta executed).
        Noise comes from ``generator`` (one, or one per row), default the policy's own."""
        conds = self.encode(obs)
        if self.lead.head.composes == "energy":
            kwargs: dict[str, Any] = {"energy": self.energy(conds)}
        else:
            kwargs = {"field": self.field(conds), "horizon": self.config.horizon}
        shift = self.config.n_action_steps if shift is None else shift
        generator = self.generator if generator is None else generator
        chunk = sample_chunk(self.lead.head, conds[0], generator, self.warm_start, shift, **kwargs)
        return self.lead.normalizer.unnormalize("action", chunk)

    def field(self, conds: Sequence[torch.Tensor]) -> Field:
        """The composed denoising field for the parents' conditionings: each parent's
        prediction on its window of the chunk, in the lead's kind, weighted per step."""
        lead = self.lead.head

        def composed(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            total = torch.zeros_like(x)
            parts = zip(self.parents, conds, self.windows, self.step_weights)
            for parent, cond, window, weights in parts:
                prediction = parent.head.field_for(lead, x[:, window], t, cond)
                total[:, window] += weights[window, None].to(x) * prediction
            return total

        return composed

    def energy(self, conds: Sequence[torch.Tensor]) -> Energy:
        """The composed energy: the weighted sum of the parents' energies, evaluated on the
        lead's candidate rows (each observation repeated ``best_of`` times)."""
        rows = self.lead.head.best_of
        terms = [
            (weight, parent.head, cond.repeat_interleave(rows, dim=0))
            for weight, parent, cond in zip(self.weights, self.parents, conds)
        ]
        return lambda x: sum(weight * head.energy(x, cond) for weight, head, cond in terms)

    # -- saving and loading -------------------------------------------------------------

    def save(
        self, directory: str | Path, metadata: Mapping[str, Any] | None = None, overwrite: bool = True
    ) -> Path:
        """Write ``composition.yaml`` and each parent in ``parent_<k>/``, atomically.

        The parents are saved as they are composed (their loaded weights and sampling
        settings), so the directory reproduces what was evaluated. ``metadata`` (e.g. the
        task) is for tools such as ``robo eval``.
        """
        directory = Path(directory)
        with atomic_output(directory, overwrite=overwrite) as tmp:
            tmp.mkdir(parents=True)
            subdirs = [f"parent_{k}" for k in range(len(self.parents))]
            for parent, subdir, name, task in zip(self.parents, subdirs, self.names, self.tasks):
                parent.save(tmp / subdir, metadata={"source": name, "task": task})
            description = {
                "weights": list(self.weights),
                "parents": subdirs,
                "sources": self.names,
                "metadata": dict(metadata or {}),
            }
            (tmp / COMPOSITION_FILE).write_text(yaml.safe_dump(description, sort_keys=False))
        return directory

    @classmethod
    def load(cls, directory: str | Path, overrides: Mapping[str, Any] | None = None) -> ComposedPolicy:
        """Rebuild a saved composition; each of the flat ``overrides`` (see ``Policy.load``) goes
        to every parent that has that setting (``scheduler`` to the diffusion parents, say)."""
        path = Path(directory) / COMPOSITION_FILE
        description = _read_composition(path)
        try:
            subdirs, weights = list(description["parents"]), list(description["weights"])
            names = list(description.get("sources") or subdirs)
        except (KeyError, TypeError) as err:
            raise CheckpointError(f"{path}: invalid composition (missing or malformed {err})") from err
        directories = [Path(directory) / subdir for subdir in subdirs]
        overrides = dict(overrides or {})
        settings = [set(saved_policy_config(d).setting_names()) for d in directories]
        unknown = sorted(key for key in overrides if not any(key in own for own in settings))
        if unknown:
            raise ConfigError(f"{unknown} not settings of any parent of {path.parent}; theirs: "
                              f"{sorted(set().union(*settings))}")
        parents = [Policy.load(d, overrides={k: v for k, v in overrides.items() if k in own})
                   for d, own in zip(directories, settings)]
        tasks = [policy_metadata(d).get("task") for d in directories]
        try:
            return cls(parents, weights, names, tasks)
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err


def is_composition(directory: str | Path) -> bool:
    """Whether ``directory`` holds a saved composition (rather than one policy)."""
    return (Path(directory) / COMPOSITION_FILE).is_file()


def composition_metadata(directory: str | Path) -> dict[str, Any]:
    """The ``metadata`` a composition was saved with (empty if none)."""
    return dict(_read_composition(Path(directory) / COMPOSITION_FILE).get("metadata") or {})


def _read_composition(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no composition (is {path.parent} a composed policy?)")
    try:
        description = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CheckpointError(f"{path}: invalid composition ({err})") from err
    if not isinstance(description, dict):
        kind = type(description).__name__
        raise CheckpointError(f"{path}: invalid composition (expected a mapping, got {kind})")
    return description


def _check_weights(weights: Sequence[float], count: int) -> tuple[float, ...]:
    values = tuple(float(weight) for weight in weights)
    if len(values) != count:
        raise ConfigError(f"got {len(values)} weights {list(values)} for {count} parents")
    if not all(math.isfinite(weight) and weight >= 0 for weight in values):
        raise ConfigError(f"weights must be finite and >= 0, got {list(values)}")
    if abs(sum(values) - 1.0) > WEIGHT_TOLERANCE:
        raise ConfigError(f"weights must sum to 1, got {list(values)} (sum {sum(values):g})")
    return values


def _check_parents(parents: Sequence[Policy], names: Sequence[str]) -> None:
    """Raise ValueError naming the parents when they cannot share one chunk."""
    if not parents:
        raise ConfigError("a composition needs at least one parent policy")
    lead, lead_name = parents[0], names[0]
    for parent, name in zip(parents[1:], names[1:]):
        if parent.action_dim != lead.action_dim:
            raise ConfigError(
                f"parents {lead_name} and {name} differ in action_dim: "
                f"{lead.action_dim} vs {parent.action_dim}"
            )
        for what, ours, theirs in zip(("scale", "offset"), lead.normalizer._affine("action"),
                                      parent.normalizer._affine("action")):
            if not torch.allclose(ours, theirs, rtol=NORMALIZER_TOLERANCE, atol=NORMALIZER_TOLERANCE):
                raise ConfigError(
                    f"parents {lead_name} and {name} differ in action normalisation: {what} "
                    f"{ours.tolist()} vs {theirs.tolist()} (compose policies trained on the same "
                    "action statistics)"
                )
    first_seen: dict[str, tuple[tuple[int, ...], str]] = {}
    for parent, name in zip(parents, names):
        for key, shape in parent.obs_shapes.items():
            seen, owner = first_seen.setdefault(key, (shape, name))
            if seen != shape:
                raise ConfigError(
                    f"observation {key!r} has shape {seen} for {owner} but {shape} for {name}"
                )
    _check_heads(parents, names)


def _check_heads(parents: Sequence[Policy], names: Sequence[str]) -> None:
    """Heads compose with heads that compose the same kind (``ActionHead.composes``)."""
    kinds: dict[str, list[str]] = {}
    for parent, name in zip(parents, names):
        if parent.head.composes is None:
            raise ConfigError(
                f"{name}: a {type(parent.head).__name__} cannot be composed: it has neither a "
                "denoising field nor an energy to combine"
            )
        kinds.setdefault(parent.head.composes, []).append(name)
    if len(kinds) > 1:
        listed = " with ".join(f"{kind} parents {members}" for kind, members in kinds.items())
        raise ConfigError(
            f"cannot compose {listed}: a denoising solver combines time-indexed fields at every "
            "step, and an energy has no time (nor a denoiser an energy); compose heads of one kind"
        )
    if "energy" in kinds:
        lead, lead_name = parents[0], names[0]
        for parent, name in zip(parents[1:], names[1:]):
            ours = (lead.config.n_obs_steps, lead.config.horizon)
            theirs = (parent.config.n_obs_steps, parent.config.horizon)
            if ours != theirs:
                raise ConfigError(
                    f"energy parents must predict the same chunk (n_obs_steps, horizon): "
                    f"{lead_name} has {ours}, {name} has {theirs}"
                )


def _step_weights(weights: Sequence[float], windows: Sequence[slice], horizon: int) -> torch.Tensor:
    """(K, horizon): parent k's weight at each composed chunk step.

    Renormalised over the parents whose window covers the step; where all of those weigh 0,
    they share the step equally. Every step is covered: the longest-To parent's window
    starts at 0 and reaches past every other window's start (Tp >= To for every policy).
    """
    cover = torch.zeros(len(windows), horizon)
    for k, window in enumerate(windows):
        cover[k, window] = 1.0
    weighted = cover * torch.tensor(weights, dtype=torch.float32)[:, None]
    total = weighted.sum(dim=0)
    return torch.where(total > 0, weighted / total.clamp(min=WEIGHT_TOLERANCE), cover / cover.sum(dim=0))
