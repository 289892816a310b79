"""Compare every policy head on the same demonstrations with the same training budget.

Per task: collect the demo recipe's demonstrations once, train each head with the recipe's
policy and training settings (``robo_policies/configs/recipe/<task>.yaml``), then evaluate
each sampler on the same unseen seeds: diffusion DDPM-100 and DDIM-10 (one trained model),
flow at 1/2/5/10 Euler steps (one model), the energy head with its adaptive stop (at most 4
energy evaluations), and the ``mlp_bc`` regression baseline. The ``RTI`` rows warm-start each
call after an episode's first from the previous chunk (``sampler=rti``: 3 solver steps from
the guess noised halfway; energy: 2 descent steps); ``RTI-DP`` rows use the clean guess at the
low level calibrated on the training data's held-out episodes, as RTI-DP does. "Ta 1" rows
execute one action per call (RTI-DP's setting), beside full solves at Ta 1.

Writes ``scripts/results/compare_heads.json`` (one record per task x sampler) and
``compare_heads.md`` (the table the README shows). Runs one job at a time: on 2 cores,
parallel torch processes slow each other down far more than they gain.

    python scripts/compare_heads.py [--tasks diffdrive_nav arm_pick_place] [--episodes 50]
        [--heads diffusion flow] [--out scripts/results/compare_heads.json]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from robo_policies.commands.demo import evaluate_run, load_recipe, side_counts, train_from_recipe, write_report
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.envs.runner import DEFAULT_EVAL_SEED, format_results_table

DDPM_100 = {"sampling.scheduler": "ddpm", "sampling.inference_steps": 100}
DDIM_10 = {"sampling.scheduler": "ddim", "sampling.inference_steps": 10}
RTI = {"sampler": "rti", "rti.steps": 3}  # re-noised halfway, 3 steps (the defaults)
RTI_DP = {**RTI, "rti.renoise": False, "rti.calibrate": True}  # clean guess at a low level
TA_1 = {"sampling.n_action_steps": 1}  # one action per call: fully closed loop, as RTI-DP runs

SAMPLERS = (
    # (row label, trained head, `robo eval` settings); Ta is the recipe's unless a label says
    ("diffusion DDPM-100", "diffusion", DDPM_100),
    ("diffusion DDIM-10", "diffusion", DDIM_10),
    ("diffusion RTI-3", "diffusion", {**DDIM_10, **RTI}),
    ("diffusion DDPM-100, Ta 1", "diffusion", {**DDPM_100, **TA_1}),
    ("diffusion DDIM-10, Ta 1", "diffusion", {**DDIM_10, **TA_1}),
    ("diffusion RTI-3, Ta 1", "diffusion", {**DDIM_10, **RTI, **TA_1}),
    ("diffusion RTI-DP-3, Ta 1", "diffusion", {**DDIM_10, **RTI_DP, **TA_1}),
    ("flow 1 step", "flow", {"sampling.inference_steps": 1}),
    ("flow 2 steps", "flow", {"sampling.inference_steps": 2}),
    ("flow 5 steps", "flow", {"sampling.inference_steps": 5}),
    ("flow 10 steps", "flow", {"sampling.inference_steps": 10}),
    ("flow RTI-3", "flow", {"sampling.inference_steps": 5, **RTI}),
    ("flow 5 steps, Ta 1", "flow", {"sampling.inference_steps": 5, **TA_1}),
    ("flow RTI-3, Ta 1", "flow", {"sampling.inference_steps": 5, **RTI, **TA_1}),
    ("flow RTI-DP-3, Ta 1", "flow", {"sampling.inference_steps": 5, **RTI_DP, **TA_1}),
    ("energy adaptive (<=4)", "energy", {"sampling.inference_steps": 4}),
    ("energy RTI-2, Ta 1", "energy", {**RTI, "rti.steps": 2, **TA_1}),
    ("mlp_bc", "mlp_bc", {}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["diffdrive_nav", "arm_pick_place"])
    parser.add_argument("--heads", nargs="+", default=list(dict.fromkeys(h for _, h, _ in SAMPLERS)))
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
    samplers = [row for row in SAMPLERS if row[1] in args.heads]
    for task in args.tasks:
        recipe = load_recipe(task)
        dataset = work / f"{task}.zarr"
        if not (args.reuse and dataset.exists()):
            collect(get_task(task), dataset, episodes=recipe.collect.episodes, seed=args.seed,
                    action_noise=recipe.collect.action_noise, overwrite=True, progress=False)
        train_seconds = {}
        for head in dict.fromkeys(head for _, head, _ in samplers):
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
        for label, head, settings in samplers:
            result = evaluate_run(work / task / head, episodes=args.episodes, seed=args.eval_seed,
                                  progress=False, settings=settings,
                                  out=work / task / "eval" / re.sub(r"[^A-Za-z0-9]+", "_", label))
            rows.append((label, result))
            records.append({
                "task": task, "row": label, "head": head, "settings": settings,
                **{k: v for k, v in result.to_dict().items() if k not in ("records", "video_path", "sampler")},
                "sampled": result.sampler,
                **side_counts(result),
                "train_seconds": round(train_seconds[head], 1),
                "train_steps": args.train_steps or int(recipe.train.steps),
            })
            print(f"{task}: {label}: success {result.success_rate:.2f}", flush=True)
        tables.append(f"{task}\n" + format_results_table(rows))

    out, table = Path(args.out), "\n\n".join(tables)
    write_report(out, records, table)
    print("\n" + table + f"\n\nwrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
