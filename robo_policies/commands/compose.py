"""``robo compose``: choose GPC composition weights by success on validation episodes.

Candidates are weight vectors on the simplex: one weight per parent, each a multiple of
``step``, summing to 1.

- ``grid`` scores every one (2 parents at step 0.1: the 11 vectors of GPC's sweep; 3
  parents: 66).
- ``coarse_to_fine`` scores the grid at ``coarse_step``, then only the ``step`` grid vectors
  closer than ``coarse_step`` in every weight to the best of those: one refinement round
  around one winner (2 parents, 0.2 then 0.1: 8 vectors instead of 11; 3 parents: at most
  21 + 6 instead of 66). Cheaper, and blind to a second peak away from the coarse winner.

Each vector is scored as ``robo eval`` scores a policy (``commands.evaluate.evaluate_policy``), on
validation seeds from ``val_seed`` (default 200000), disjoint from ``robo eval``'s test seeds
(from 100000) and from ``robo collect``'s (from 0): weights chosen on the test episodes
would overstate the composition (the GPC code's sweep did that). Every vector meets the same
episodes and the same sampling noise (each episode's generator is seeded with its env seed),
so differences come from the weights.

The best vector has the highest success rate; ties go to the shorter mean episode (faster
successes), then to the weights closest to uniform (favour no parent without evidence),
then to the first scored. ``out`` gets ``search.json``, ``search.md`` and ``checkpoint/``
(the best composition), so ``robo eval checkpoint=<out>`` tests it.

Parents may read different observations (a camera policy and a state policy): they run on
the task named by ``task=`` (with ``+task.env_kwargs.obs_mode=both`` for cameras and state),
else on their common training task, which must serve each parent its keys with the meaning
it learned (``envs.targets.check_readers``, before any episode). The env settings are saved
with the composition, so ``robo eval`` tests it on the same env.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from robo_policies.utils.atomic import atomic_write_text
from robo_policies.envs.runner import EvalResult, format_results_table
from robo_policies.checkpoints import kind_of, resolve_saved
from robo_policies.commands.evaluate import evaluate_policy, observation_readers, sampling_overrides
from robo_policies.envs.targets import check_readers
from robo_policies.policy import Policy, policy_metadata
from robo_policies.sampling.composition import ComposedPolicy
from robo_policies.utils.errors import ConfigError
from robo_policies.utils.threads import use_threads

SEARCHES = ("grid", "coarse_to_fine")
TIE_BREAK = (
    "highest success rate, then shortest mean episode, then closest to uniform weights, then first scored"
)

Weights = tuple[float, ...]


@dataclass
class Candidate:
    """One scored weight vector."""

    weights: Weights
    result: EvalResult


def simplex_grid(parents: int, step: float) -> list[Weights]:
    """Every vector of ``parents`` non-negative multiples of ``step`` that sums to 1."""
    divisions = _divisions(step, "step")
    return [tuple(count / divisions for count in counts) for counts in _compositions(divisions, parents)]


def search_weights(
    score: Callable[[Weights], EvalResult],
    parents: int,
    search: str = "grid",
    step: float = 0.1,
    coarse_step: float = 0.2,
) -> list[Candidate]:
    """The candidates ``search`` scores with ``score``, in the order scored (see the module
    docstring)."""
    if search == "grid":
        return [Candidate(weights, score(weights)) for weights in simplex_grid(parents, step)]
    if search != "coarse_to_fine":
        raise ConfigError(f"unknown search {search!r}; choose from {list(SEARCHES)}")
    if _divisions(step, "step") % _divisions(coarse_step, "coarse_step"):
        raise ConfigError(f"coarse_step={coarse_step} must be a whole multiple of step={step}")
    scored = [Candidate(weights, score(weights)) for weights in simplex_grid(parents, coarse_step)]
    best = best_candidate(scored).weights
    seen = {candidate.weights for candidate in scored}
    near = [
        weights for weights in simplex_grid(parents, step)
        if weights not in seen and max(abs(a - b) for a, b in zip(weights, best)) < coarse_step - 1e-9
    ]
    return scored + [Candidate(weights, score(weights)) for weights in near]


def best_candidate(candidates: Sequence[Candidate]) -> Candidate:
    """The winner by ``TIE_BREAK``."""
    def rank(candidate: Candidate) -> tuple[float, float, float]:
        uniform = 1.0 / len(candidate.weights)
        spread = sum((weight - uniform) ** 2 for weight in candidate.weights)
        return -candidate.result.success_rate, candidate.result.mean_episode_len, spread

    return min(candidates, key=rank)  # min keeps the first of equal ranks


def results_table(candidates: Sequence[Candidate]) -> str:
    """The candidates as the usual results table, one row per weight vector."""
    return format_results_table([(weights_label(c.weights), c.result) for c in candidates])


def weights_label(weights: Weights) -> str:
    """``w=0.3,0.7``: a weight vector as a table row name."""
    return "w=" + ",".join(f"{weight:g}" for weight in weights)


def run_compose(cfg: DictConfig) -> tuple[list[Candidate], Candidate, Path]:
    """Run ``robo compose``: search, report, save the best composition; returns (candidates,
    best, out)."""
    if len(cfg.checkpoints) < 2:
        raise ConfigError(
            f"checkpoints=[A,B,...] needs at least two parent policies, got {list(cfg.checkpoints)}"
        )
    use_threads(cfg.threads)
    directories = [resolve_saved(checkpoint) for checkpoint in cfg.checkpoints]
    for directory in directories:
        kind = kind_of(directory)
        if kind.name != "policy":
            raise ConfigError(f"{directory} is a saved {kind.name}, not a single policy; "
                             "compose the policies it was made from instead")
    names = [str(directory) for directory in directories]
    parents = [Policy.load(directory, overrides=sampling_overrides(cfg)) for directory in directories]
    tasks = [policy_metadata(directory).get("task") for directory in directories]
    # Incompatible parents, or an env that does not serve them, fail here, before any episode.
    uniform = ComposedPolicy(parents, [1.0 / len(parents)] * len(parents), names, tasks)
    task = cfg.task.name if cfg.task else (tasks[0] if len(set(tasks)) == 1 else None)
    source = f"parents {names} (recorded tasks {sorted(set(map(str, tasks)))})"
    if task is None and not OmegaConf.select(cfg, "env.id"):
        raise ConfigError(f"{source}: no common task to run them on; pass task=<name> (with "
                          "+task.env_kwargs.obs_mode=both for state and cameras) or env.id=<gym id>")
    check_readers(cfg, observation_readers(uniform, task, source), task, source)

    def score(weights: Weights) -> EvalResult:
        policy = ComposedPolicy(parents, weights, names, tasks)
        result = evaluate_policy(policy, cfg, task, source, seed=cfg.val_seed)
        print(f"{weights_label(weights)}: success {result.success_rate:.1%} ({result.successes}/"
              f"{result.episodes}), mean episode length {result.mean_episode_len:.1f}", flush=True)
        return result

    candidates = search_weights(score, len(parents), cfg.search, cfg.step, cfg.coarse_step)
    best = best_candidate(candidates)
    out = Path(cfg.out)
    env_kwargs = OmegaConf.to_container(cfg.task.env_kwargs) if cfg.task else {}
    metadata = {key: value for key, value in (("task", task), ("env_kwargs", env_kwargs)) if value}
    ComposedPolicy(parents, best.weights, names, tasks).save(out / "checkpoint", metadata=metadata)
    settings = {
        "checkpoints": names, "task": task, "env_kwargs": env_kwargs,
        "parents": [{"checkpoint": name, "task": parent_task, "obs_keys": sorted(parent.obs_shapes)}
                    for name, parent_task, parent in zip(names, tasks, parents)],
        "search": cfg.search, "step": cfg.step,
        "coarse_step": cfg.coarse_step if cfg.search == "coarse_to_fine" else None,
        "episodes": cfg.episodes, "val_seed": cfg.val_seed, "tie_break": TIE_BREAK,
    }
    _write_report(out, candidates, best, settings)
    return candidates, best, out


def _write_report(
    out: Path, candidates: Sequence[Candidate], best: Candidate, settings: dict[str, Any]
) -> None:
    """``search.json`` (settings, every candidate, the best) and ``search.md`` (the table)."""
    report = {
        **settings,
        "candidates": [_summary(candidate) for candidate in candidates],
        "best": _summary(best),
        "policy": "checkpoint",
    }
    atomic_write_text(out / "search.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(
        out / "search.md",
        f"GPC weight search over {settings['checkpoints']}: {settings['episodes']} validation episodes "
        f"per weight vector from seed {settings['val_seed']}.\n\n```\n{results_table(candidates)}\n```\n\n"
        f"Best ({TIE_BREAK}): {weights_label(best.weights)}, saved in checkpoint/.\n",
    )


def _summary(candidate: Candidate) -> dict[str, Any]:
    result = {key: value for key, value in candidate.result.to_dict().items() if key != "records"}
    return {"weights": list(candidate.weights), **result}


def _divisions(step: float, name: str) -> int:
    """``1 / step``, which must be a whole number."""
    divisions = round(1.0 / step) if step > 0 else 0
    if divisions < 1 or abs(divisions * step - 1.0) > 1e-9:
        raise ConfigError(f"{name}={step}: 1/{name} must be a whole number (e.g. 0.1, 0.25, 0.5)")
    return divisions


def _compositions(total: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every tuple of ``parts`` non-negative integers summing to ``total``."""
    if parts == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in _compositions(total - first, parts - 1):
            yield (first, *rest)
