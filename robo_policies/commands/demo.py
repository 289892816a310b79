"""``robo demo``: the main job on the embedded defaults, end to end on a CPU.

For each task: collect demonstrations with the scripted expert, train a policy (diffusion
by default, ``head=``; and the ``mlp_bc`` baseline where asked), evaluate each on unseen seeds, and print one
results table. Each step uses the same configs and code as ``robo collect``, ``robo train``
and ``robo eval``; the per-task settings are the recipes in ``configs/recipe/<task>.yaml``.

Outputs: ``<out>/<task>/{checkpoint/, eval.json, rollout.mp4, curve.png, ...}`` per run
(``<out>/<task>_<head>/`` for baselines), plus ``<out>/results.json`` and ``results.md``.

The runs are independent, so with ``jobs`` > 1 they go to that many worker processes, each
computing with one torch thread: a run per core scales where one run's thread pool does not
(small networks gain little from a second thread, and a thread pool stalls when another
program takes a core; utils/threads.py). Every run is seeded, so the results are the same
as with ``jobs=1``; each worker's output goes to ``<out>/logs/<run>.txt``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
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
from robo_policies.utils.threads import available_cores


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
    jobs = cfg.jobs or available_cores()
    recipes = {task: load_recipe(task) for task in cfg.tasks}
    runs = [(task, head) for task in cfg.tasks
            for head in [cfg.head, *([cfg.baseline] if cfg.baseline and task in cfg.baseline_tasks else [])]]
    timings: dict[str, float] = {}
    with _runner(jobs) as submit:
        collections = {task: submit(_collect_task, f"{task}_collect", out / "logs", task=task,
                                    dataset=str(data_dir / f"{task}.zarr"), episodes=cfg.demos,
                                    seed=cfg.seed, progress=cfg.progress and jobs == 1)
                       for task in cfg.tasks}
        for task, done in collections.items():
            print(done.result()[0])
            timings[f"{task}/collect"] = done.result()[1]
        # the main head's runs first, most training steps first, then the baselines: the long
        # runs start together instead of one of them starting last
        order = sorted(runs, key=lambda run: -int(recipes[run[0]].train.steps) * (run[1] == cfg.head))
        results = {run: submit(_train_and_evaluate, _run_name(cfg, *run), out / "logs",
                               cfg=OmegaConf.to_container(cfg), recipe=OmegaConf.to_container(recipes[run[0]]),
                               head=run[1], dataset=str(data_dir / f"{run[0]}.zarr"),
                               run_dir=str(out / _run_name(cfg, *run)), progress=cfg.progress and jobs == 1,
                               threads=0 if jobs == 1 else 1)
                   for run in order}
        rows = []
        for task, head in runs:
            result, seconds = results[(task, head)].result()
            name = _run_name(cfg, task, head)
            timings[name] = seconds
            rows.append((name if head == cfg.head else f"{task} ({head})", result))
    _report(out, rows, timings)
    return rows


def _run_name(cfg: DictConfig, task: str, head: str) -> str:
    return task if head == cfg.head else f"{task}_{head}"


@contextlib.contextmanager
def _runner(jobs: int) -> Iterator[Callable[..., Future]]:
    """``submit(function, name, log_dir, **kwargs)``: run ``function(**kwargs)`` in this process
    (``jobs`` = 1) or in one of ``jobs`` worker processes, its output in ``<log_dir>/<name>.txt``;
    the future's result is ``(value, seconds)``."""
    if jobs == 1:
        def submit_here(function: Callable[..., Any], name: str, log_dir: Path, **kwargs: Any) -> Future:
            future: Future = Future()
            future.set_result(_timed(function, **kwargs))
            return future
        yield submit_here
        return
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        def submit(function: Callable[..., Any], name: str, log_dir: Path, **kwargs: Any) -> Future:
            print(f"{name}: queued for a worker (output in {log_dir / name}.txt)", flush=True)
            future = pool.submit(_logged, function, str(log_dir / f"{name}.txt"), **kwargs)
            future.add_done_callback(lambda done: print(f"{name}: done in {done.result()[1]:.0f} s", flush=True)
                                     if done.exception() is None else None)
            return future
        yield submit


def _timed(function: Callable[..., Any], **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = function(**kwargs)
    return value, time.perf_counter() - start


def _logged(function: Callable[..., Any], log_path: str, **kwargs: Any) -> tuple[Any, float]:
    """``_timed`` in a worker, its output into ``log_path``."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return _timed(function, **kwargs)


def _collect_task(task: str, dataset: str, episodes: int, seed: int, progress: bool) -> str:
    """Collect ``task``'s demonstrations as its recipe says; returns the collection summary."""
    recipe = load_recipe(task)
    collected = collect(get_task(task), dataset, episodes=episodes or recipe.collect.episodes, seed=seed,
                        action_noise=recipe.collect.action_noise, overwrite=True, progress=progress)
    return collected.format()


def _train_and_evaluate(cfg: dict[str, Any], recipe: dict[str, Any], head: str, dataset: str, run_dir: str,
                        progress: bool, threads: int) -> EvalResult:
    """Train ``head`` with the task's recipe, then evaluate it (``threads``: torch's, 0 the default)."""
    train_from_recipe(OmegaConf.create(recipe), head, Path(dataset), Path(run_dir), seed=cfg["seed"],
                      progress=progress, steps=cfg["train_steps"], threads=threads)
    return evaluate_run(Path(run_dir), episodes=cfg["eval_episodes"], seed=cfg["eval_seed"], progress=progress,
                        settings={"threads": threads})


def train_from_recipe(
    recipe: DictConfig, head: str, dataset: Path, run_dir: Path, seed: int = 0,
    progress: bool = True, steps: int = 0, threads: int = 0,
) -> None:
    """Train ``head`` on ``dataset`` into a fresh ``run_dir`` with a task recipe's settings.

    Every head gets the recipe's ``policy`` settings (tuned for the diffusion head; a fair
    comparison changes only the head; settings a head has no use for, such as ``mlp_bc``'s
    backbone, are ignored by it) and its own under ``head.<head>`` (as ``policy.head.*``).
    ``steps`` > 0 replaces the recipe's training steps; ``threads`` > 0 sets torch's threads.
    """
    shutil.rmtree(run_dir, ignore_errors=True)  # recipe runs always start fresh
    overrides = [f"task={recipe.task}", f"policy={head}", f"dataset={dataset}", f"out={run_dir}",
                 f"seed={seed}", f"progress={progress}"]
    overrides += [f"policy.{k}={v}" for k, v in recipe.policy.items()]
    overrides += [f"policy.head.{k}={v}" for k, v in recipe.get("head", {}).get(head, {}).items()]
    overrides += [f"train.{k}={v}" for k, v in recipe.train.items()]
    if steps:
        overrides.append(f"train.steps={steps}")
    if threads:
        overrides.append(f"train.threads={threads}")
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
