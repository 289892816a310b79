"""Fine-tuning study: success versus env steps for EXPO, PA-RL, the RLPD baseline and
imitation only, all starting from one weak imitation policy on ``arm_pick_place``.

1. Collect ``--demos`` noisy demonstrations: the scripted expert's actions with Gaussian noise
   of ``--noise`` times each joint's half-range, recorded as the labels (a shaky teleoperator:
   ``robo collect noisy_labels=true``). Train a diffusion policy (epsilon prediction, otherwise
   the task's demo recipe) on them for ``--train-steps`` steps. Imitation learns the noise too:
   the policy knows roughly what to do but is imprecise, and more imitation does not fix that.
2. ``robo finetune`` that policy with each method and seed for ``--env-steps`` env steps,
   evaluating every ``--eval-every`` steps on the same ``--episodes`` test seeds (100000 on).
3. Report per method: start and final success, best success, env steps to 80% success (None:
   never reached), the ratio to RLPD's, env steps/s and gradient updates/s.

Writes ``scripts/results/finetune_study.{json,md,png}``. Runs one job at a time (2 cores);
``--reuse`` keeps finished runs and resumes interrupted ones.

    python scripts/finetune_study.py [--algos expo parl rlpd imitation] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from robo_policies.commands.config import compose_config
from robo_policies.commands.demo import load_recipe, train_from_recipe, write_report
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.rl.finetune import SUCCESS_LEVEL, finetune, plot_curves, steps_to_success

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="arm_pick_place")
    parser.add_argument("--algos", nargs="+", default=["expo", "parl", "rlpd", "imitation"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--demos", type=int, default=100)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--train-steps", type=int, default=8000)
    parser.add_argument("--env-steps", type=int, default=50000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--work", type=Path, default=Path("outputs/finetune_study"))
    parser.add_argument("--out", type=Path, default=RESULTS / "finetune_study.json")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs, resume the others")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: report every finished <algo>_seed<k> run under --work")
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value",
                        help="extra robo finetune settings for every run, e.g. rl.utd=2 (a method's own "
                             "setting, e.g. rl.top_k, only with --algos of that method)")
    args = parser.parse_args()

    if args.report_only:
        runs = {algo: [_finished(out) for out in sorted(args.work.glob(f"{algo}_seed*"))
                       if (out / "summary.json").is_file()] for algo in args.algos}
        report({algo: summaries for algo, summaries in runs.items() if summaries}, args)
        return
    base = args.work / "base"
    if not (args.reuse and (base / "checkpoint").is_dir()):
        dataset = args.work / f"{args.task}_{args.demos}_noisy_demos.zarr"
        collect(get_task(args.task), dataset, episodes=args.demos, seed=0, progress=False,
                action_noise=args.noise, noisy_labels=True, max_attempts=10 * args.demos, overwrite=True)
        recipe = load_recipe(args.task)
        recipe.head.diffusion.prediction = "epsilon"  # x0-prediction collapses to one sample per state here
        train_from_recipe(recipe, "diffusion", dataset, base, seed=0, steps=args.train_steps)

    runs: dict[str, list[dict[str, Any]]] = {}
    for algo in args.algos:
        for seed in args.seeds:
            out = args.work / f"{algo}_seed{seed}"
            if not (args.reuse and (out / "summary.json").is_file()):
                resume = args.reuse and (out / "checkpoint").is_dir()
                if not resume:
                    shutil.rmtree(out, ignore_errors=True)
                overrides = [f"checkpoint={base}", f"algo={algo}", f"env_steps={args.env_steps}",
                             f"eval_every={args.eval_every}", f"episodes={args.episodes}", f"out={out}",
                             f"seed={seed}", f"resume={resume}", *args.set]
                finetune(compose_config("finetune", overrides))
            runs.setdefault(algo, []).append(_finished(out))
    report(runs, args)


def report(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    """Mean curves per method, the table, JSON and plot."""
    level = f"env_steps_to_{round(SUCCESS_LEVEL * 100)}"
    rlpd = _mean_steps(runs.get("rlpd", []), level)
    rows, curves = [], {}
    for algo, summaries in runs.items():
        steps = [point["env_steps"] for point in summaries[0]["curve"]]
        success = np.mean([[p["success_rate"] for p in s["curve"]] for s in summaries], axis=0)
        curves[algo] = [{"env_steps": x, "success_rate": float(y)} for x, y in zip(steps, success)]
        reached = _mean_steps(summaries, level)
        rows.append({
            "algo": algo, "seeds": [s["seed"] for s in summaries],
            "start_success": float(success[0]), "final_success": float(success[-1]),
            "best_success": float(success.max()), level: reached, "mean_curve_" + level: steps_to_success(curves[algo]),
            "rlpd_steps_over_these": None if reached is None or rlpd is None else rlpd / reached,
            "env_steps_per_s": float(np.mean([s["env_steps_per_s"] for s in summaries])),
            "updates_per_s": float(np.mean([s["updates_per_s"] for s in summaries])),
        })
    header = f"{'method':<10} {'start':>6} {'final':>6} {'best':>6} {'steps to 80%':>13} {'env st/s':>9} {'upd/s':>6}"
    lines = [header, "-" * len(header)]
    for row in rows:
        reached = "never" if row[level] is None else f"{row[level]:.0f}"
        lines.append(f"{row['algo']:<10} {row['start_success']:>6.0%} {row['final_success']:>6.0%} "
                     f"{row['best_success']:>6.0%} {reached:>13} {row['env_steps_per_s']:>9.0f} "
                     f"{row['updates_per_s']:>6.1f}")
    table = "\n".join(lines)
    print(table)
    settings = {k: v for k, v in vars(args).items() if k not in ("work", "out")}
    write_report(args.out, {"settings": {**settings, "out": str(args.out)}, "rows": rows, "runs": runs}, table)
    plot_curves({f"{algo} ({len(runs[algo])} seed{'s' if len(runs[algo]) > 1 else ''})": points
                 for algo, points in curves.items()}, args.out.with_suffix(".png"))


def _finished(out: Path) -> dict[str, Any]:
    """A finished run's summary with its curve."""
    summary = json.loads((out / "summary.json").read_text())
    summary["curve"] = json.loads((out / "curve.json").read_text())
    return summary


def _mean_steps(summaries: list[dict[str, Any]], level: str) -> float | None:
    """Mean env steps to the success level over seeds; None if any seed never reached it."""
    values = [s[level] for s in summaries]
    return None if not values or any(v is None for v in values) else float(np.mean(values))


if __name__ == "__main__":
    main()
