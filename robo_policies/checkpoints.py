"""Saved agents: every kind of directory ``robo eval``, ``compose``, ``finetune`` and ``deploy`` load.

A saved agent is a directory a command wrote: one ``Policy`` (``robo train``), a GPC
composition of several (``robo compose``) or a fine-tuned agent (``robo finetune``). Each
kind registers how it is recognised, loaded and described, so the commands load through
``load_saved`` and never test which kind they got. The built-in kinds are registered here,
one layer above the packages that define them; another kind joins with
``register_saved_kind``.

Kinds are tried most specific first (a composition and a fine-tuned agent hold saved
policies inside them), the plain policy last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robo_policies.policy import Policy, is_saved_policy, policy_metadata
from robo_policies.rl.saved import FinetunedPolicy, finetuned_metadata, is_finetuned
from robo_policies.sampling.composition import ComposedPolicy, composition_metadata, is_composition


@dataclass(frozen=True)
class SavedKind:
    """How one kind of saved agent is recognised, loaded and described."""

    name: str
    """Shown in messages and reports (``policy``, ``composition``, ``finetuned``)."""
    recognise: Callable[[Path], bool]
    """Whether a directory holds this kind."""
    load: Callable[[Path, Mapping[str, Any] | None], Any]
    """(directory, sampling overrides) -> an object that acts like a policy (``PolicyLike``)."""
    metadata: Callable[[Path], dict[str, Any]]
    """What it was saved with: training task, dataset, validation episodes, ..."""


_KINDS: list[SavedKind] = []
"""Most specific first: every kind registered later is tried before the ones before it."""


def register_saved_kind(kind: SavedKind) -> SavedKind:
    """Add ``kind``, tried before the kinds already known (a new kind is more specific than a
    plain policy, which it may hold inside it)."""
    if any(known.name == kind.name for known in _KINDS):
        raise ValueError(f"saved-agent kind {kind.name!r} is already registered")
    _KINDS.insert(0, kind)
    return kind


register_saved_kind(SavedKind("policy", is_saved_policy, lambda d, o: Policy.load(d, overrides=o),
                              policy_metadata))
register_saved_kind(SavedKind("composition", is_composition, lambda d, o: ComposedPolicy.load(d, overrides=o),
                              composition_metadata))
register_saved_kind(SavedKind("finetuned", is_finetuned, lambda d, o: FinetunedPolicy.load(d, overrides=o),
                              finetuned_metadata))


def saved_kinds() -> list[str]:
    """Registered kinds, in the order they are tried."""
    return [kind.name for kind in _KINDS]


def kind_of(directory: str | Path) -> SavedKind:
    """The kind of saved agent in ``directory``; an error naming the directory if none."""
    path = Path(directory)
    for kind in _KINDS:
        if kind.recognise(path):
            return kind
    raise FileNotFoundError(f"{path}: not a saved agent (none of {saved_kinds()} recognises it)")


def resolve_saved(checkpoint: str | Path) -> Path:
    """A saved agent's directory, given it or a run directory (whose ``checkpoint/`` is used)."""
    path = Path(checkpoint)
    for candidate in (path, path / "checkpoint"):
        if any(kind.recognise(candidate) for kind in _KINDS):
            return candidate
    raise FileNotFoundError(
        f"{path}: neither a saved agent ({', '.join(saved_kinds())}) nor a run directory with checkpoint/"
    )


def load_saved(directory: str | Path, overrides: Mapping[str, Any] | None = None) -> Any:
    """The agent saved in ``directory`` (a ``PolicyLike``); ``overrides`` change sampling settings."""
    return kind_of(directory).load(Path(directory), overrides)


def saved_metadata(directory: str | Path) -> dict[str, Any]:
    """The metadata (training task, dataset, ...) saved with any kind of agent."""
    return kind_of(directory).metadata(Path(directory))
