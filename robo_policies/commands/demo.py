"""``robo demo``: the main job on the embedded defaults, end to end on a CPU.

For each task: collect demonstrations with the scripted expert, train a policy (diffusion
by default, ``head=``; and the ``mlp_bc`` baseline where asked), evaluate each on unseen seeds, and print one
results table. Each step uses the same configs and code as ``robo collect``, ``robo train``
and ``robo eval``; the per-task settings are the recipes in ``configs/recipe/<task>.yaml``.

Outputs: ``<out>/<task>/{checkpoint/, eval.json, rollout.mp4, curve.png, ...}`` per run
(``<out>/<task>_<head>/`` for baselines), plus ``<out>/results.json`` and ``results.md``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from robo_policies.utils.atomic import atomic_write_text
from robo_policies.commands.config import CONFIG_DIR, compose_config
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.envs.runner import EvalResult, format_results_table
from robo_policies.commands.evaluate import evaluate_checkpoint
from robo_policies.commands.model_config import train_run_config
from robo_policies.policy import PolicyConfig
from robo_policies.train.config import TrainConfig
from robo_policies.train.trainer import train


def load_recipe(task: str) -> DictConfig:
    """The demo recipe of ``task`` (``configs/recipe/<task>.yaml``)."""
    path = CONFIG_DIR / "recipe" / f"{task}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no demo recipe for task '{task}' (recipes: {known})")
    return OmegaConf.load(path)


def run_demo(cfg: DictConfig) -> list[tuple[str, EvalResult]]:
    """Collect, train and evaluate every task in ``cfg.tasks``; returns the table rows."""
    out, data_dir = Path(cfg.out), Path(cfg.data)
    rows: list[tuple[str, EvalResult]] = []
    timings: dict[str, float] = {}
    for task in cfg.tasks:
        recipe = load_recipe(task)
        dataset = data_dir / f"{task}.zarr"
        start = time.perf_counter()
        collected = collect(get_task(task), dataset, episodes=cfg.demos or recipe.collect.episodes,
                            seed=cfg.seed, action_noise=recipe.collect.action_noise,
                            overwrite=True, progress=cfg.progress)
        print(collected.format())
        timings[f"{task}/collect"] = time.perf_counter() - start
        heads = [cfg.head, *([cfg.baseline] if cfg.baseline and task in cfg.baseline_tasks else [])]
        for head in heads:
            name = task if head == cfg.head else f"{task}_{head}"
            start = time.perf_counter()
            result = _train_and_evaluate(cfg, recipe, head, dataset, out / name)
            timings[name] = time.perf_counter() - start
            rows.append((name if head == cfg.head else f"{task} ({head})", result))
    _report(out, rows, timings)
    return rows


def _train_and_evaluate(
    cfg: DictConfig, recipe: DictConfig, head: str, dataset: Path, run_dir: Path
) -> EvalResult:
    train_from_recipe(recipe, head, dataset, run_dir, seed=cfg.seed, progress=cfg.progress,
                      steps=cfg.train_steps)
    return evaluate_run(run_dir, episodes=cfg.eval_episodes, seed=cfg.eval_seed, progress=cfg.progress)


def train_from_recipe(
    recipe: DictConfig, head: str, dataset: Path, run_dir: Path, seed: int = 0,
    progress: bool = True, steps: int = 0,
) -> None:
    """Train ``head`` on ``dataset`` into a fresh ``run_dir`` with a task recipe's settings.

    Every head gets the recipe's ``policy`` settings (tuned for the diffusion head; a fair
    comparison changes only the head; settings a head has no use for, such as ``mlp_bc``'s
    backbone, are ignored by it) and its own under ``head.<head>`` (as ``policy.head.*``).
    ``steps`` > 0 replaces the recipe's training steps.
    """
    shutil.rmtree(run_dir, ignore_errors=True)  # recipe runs always start fresh
    overrides = [f"task={recipe.task}", f"policy={head}", f"dataset={dataset}", f"out={run_dir}",
                 f"seed={seed}", f"progress={progress}"]
    overrides += [f"policy.{k}={v}" for k, v in recipe.policy.items()]
    overrides += [f"policy.head.{k}={v}" for k, v in recipe.get("head", {}).get(head, {}).items()]
    overrides += [f"train.{k}={v}" for k, v in recipe.train.items()]
    if steps:
        overrides.append(f"train.steps={steps}")
    train_cfg = train_run_config(overrides)
    train(train_cfg.dataset, train_cfg.out,
          PolicyConfig(**OmegaConf.to_container(train_cfg.policy)),
          TrainConfig(**OmegaConf.to_container(train_cfg.train)),
          seed=train_cfg.seed, progress=progress,
          run_config=OmegaConf.to_container(train_cfg))


def evaluate_run(
    run_dir: Path, episodes: int, seed: int, progress: bool = True,
    settings: dict[str, Any] | None = None, out: Path | None = None,
) -> EvalResult:
    """``robo eval`` of a run directory, optionally with other ``robo eval`` settings (dotted
    keys, e.g. ``{"sampling.inference_steps": 100, "sampler": "rti"}``) and output."""
    overrides = [f"checkpoint={run_dir}", f"episodes={episodes}", f"seed={seed}", f"progress={progress}"]
    overrides += [f"{k}={v}" for k, v in (settings or {}).items()]
    if out is not None:
        overrides.append(f"out={out}")
    result, _ = evaluate_checkpoint(compose_config("eval", overrides))
    return result


def _report(out: Path, rows: list[tuple[str, EvalResult]], timings: dict[str, float]) -> None:
    """Print the results table and write it as JSON and Markdown next to the runs."""
    table = format_results_table(rows)
    sides = {name: side_counts(result) for name, result in rows}
    lines = [f"  {name}: passes left {c['left']} / right {c['right']}, touched the wall in "
             f"{c['wall_contact_episodes']} episodes" for name, c in sides.items() if c]
    print("\n" + table + ("\n" + "\n".join(lines) if lines else ""))
    summary: dict[str, Any] = {
        name: {**{k: v for k, v in result.to_dict().items() if k != "records"}, **sides[name]}
        for name, result in rows
    }
    summary["seconds"] = {name: round(seconds, 1) for name, seconds in timings.items()}
    write_report(out / "results.json", summary, "\n".join([table, *lines]))


def write_report(path: Path, data: Any, table: str) -> None:
    """Write ``data`` as JSON to ``path`` and ``table`` as a Markdown code block beside it
    (``.md``), atomically: what ``robo demo`` and the comparison scripts leave behind."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    atomic_write_text(path.with_suffix(".md"), "```\n" + table + "\n```\n")


def side_counts(result: EvalResult) -> dict[str, int]:
    """Left/right passes and wall-touching episodes, for tasks whose episode stats report a
    ``side`` (``diffdrive_nav``); empty for other tasks."""
    sides = [record.get("side") for record in result.records]
    if not any(sides):
        return {}
    contacts = sum(record.get("wall_contact_steps", 0) > 0 for record in result.records)
    return {"left": sides.count("left"), "right": sides.count("right"), "wall_contact_episodes": contacts}
