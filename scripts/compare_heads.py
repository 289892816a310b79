"""Compare every policy head on the same demonstrations with the same training budget.

Per task: collect the demo recipe's demonstrations once, train each head with the recipe's
policy and training settings (``robo_policies/configs/recipe/<task>.yaml``), then evaluate
each sampler on the same unseen seeds: diffusion DDPM-100 and DDIM-10 (one trained model),
flow at 1/2/5/10 Euler steps (one model), the energy head with its adaptive stop (at most 4
energy evaluations), and the ``mlp_bc`` regression baseline.

Writes ``scripts/results/compare_heads.json`` (one record per task x sampler) and
``compare_heads.md`` (the table the README shows). Runs one job at a time: on 2 cores,
parallel torch processes slow each other down far more than they gain.

    python scripts/compare_heads.py [--tasks diffdrive_nav arm_pick_place] [--episodes 50]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from robo_policies.demo import evaluate_run, load_recipe, side_counts, train_from_recipe
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.envs.runner import DEFAULT_EVAL_SEED, format_results_table

SAMPLERS = (
    # (row label, trained head, sampling settings at evaluation)
    ("diffusion DDPM-100", "diffusion", {"scheduler": "ddpm", "inference_steps": 100}),
    ("diffusion DDIM-10", "diffusion", {"scheduler": "ddim", "inference_steps": 10}),
    ("flow 1 step", "flow", {"inference_steps": 1}),
    ("flow 2 steps", "flow", {"inference_steps": 2}),
    ("flow 5 steps", "flow", {"inference_steps": 5}),
    ("flow 10 steps", "flow", {"inference_steps": 10}),
    ("energy adaptive (<=4)", "energy", {"inference_steps": 4}),
    ("mlp_bc", "mlp_bc", {}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["diffdrive_nav", "arm_pick_place"])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="collection and training seed")
    parser.add_argument("--eval-seed", type=int, default=DEFAULT_EVAL_SEED)
    parser.add_argument("--train-steps", type=int, default=0, help="0: each recipe's")
    parser.add_argument("--work", default="outputs/compare_heads", help="datasets and runs")
    parser.add_argument("--out", default="scripts/results/compare_heads.json")
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate runs already trained in --work instead of retraining them")
    args = parser.parse_args()

    work, records, tables = Path(args.work), [], []
    for task in args.tasks:
        recipe = load_recipe(task)
        dataset = work / f"{task}.zarr"
        if not (args.reuse and dataset.exists()):
            collect(get_task(task), dataset, episodes=recipe.collect.episodes, seed=args.seed,
                    action_noise=recipe.collect.action_noise, overwrite=True, progress=False)
        train_seconds = {}
        for head in dict.fromkeys(head for _, head, _ in SAMPLERS):
            summary = work / task / head / "train_summary.json"
            if args.reuse and summary.is_file():
                train_seconds[head] = json.loads(summary.read_text())["seconds"]
                continue
            start = time.perf_counter()
            train_from_recipe(recipe, head, dataset, work / task / head, seed=args.seed,
                              progress=False, steps=args.train_steps)
            train_seconds[head] = time.perf_counter() - start
            print(f"{task}: trained {head} in {train_seconds[head]:.0f} s", flush=True)
        rows = []
        for label, head, sampling in SAMPLERS:
            result = evaluate_run(work / task / head, episodes=args.episodes, seed=args.eval_seed,
                                  progress=False, sampling=sampling,
                                  out=work / task / "eval" / re.sub(r"[^A-Za-z0-9]+", "_", label))
            rows.append((label, result))
            records.append({
                "task": task, "sampler": label, "head": head, **sampling,
                **{k: v for k, v in result.to_dict().items() if k not in ("records", "video_path")},
                **side_counts(result),
                "train_seconds": round(train_seconds[head], 1),
                "train_steps": args.train_steps or int(recipe.train.steps),
            })
            print(f"{task}: {label}: success {result.success_rate:.2f}", flush=True)
        tables.append(f"{task}\n" + format_results_table(rows))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=2) + "\n")
    table = "\n\n".join(tables)
    out.with_suffix(".md").write_text("```\n" + table + "\n```\n")
    print("\n" + table + f"\n\nwrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
