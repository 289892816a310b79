"""GPC study: success versus composition weight for two parent pairs, weights chosen on
validation seeds and reported on test seeds.

Per pair: collect the task's demo recipe demonstrations, train the two parents with a reduced
budget (so that neither is perfect and a composition has room to help), then

1. ``robo compose`` (``search=grid``, step 0.1) scores every weight w of parent A (1 - w for
   B) on validation seeds from 200000 and picks the best (ties: shorter episodes, then
   closer to uniform);
2. every weight is also evaluated on the test seeds from 100000 (``robo eval``'s), which the
   choice never saw: the row of the chosen weight is the composition's honest result, and
   w = 1 / w = 0 are the parents themselves.

Pairs:

- ``arm_obs_subsets``: two diffusion policies on ``arm_pick_place`` that each miss one thing
  the task needs (A: the cube's orientation, which picks the grasp face; B: the target);
- ``diffdrive_heads``: a diffusion and a flow-matching policy on ``diffdrive_nav`` (the
  diffusion parent leads the shared solver; the flow parent is queried through the
  diffusion <-> flow state/time mapping).

Writes ``scripts/results/compose_study.json`` and ``.md``. One job at a time (2 cores).

    python scripts/compose_study.py [--pairs arm_obs_subsets diffdrive_heads] [--test-episodes 50]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from robo_policies.commands.config import compose_config
from robo_policies.commands.demo import load_recipe, train_from_recipe, write_report
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.envs.runner import DEFAULT_EVAL_SEED, format_results_table
from robo_policies.commands.evaluate import evaluate_policy
from robo_policies.policy import Policy
from robo_policies.sampling.composition import ComposedPolicy
from robo_policies.commands.compose import run_compose, weights_label


@dataclass(frozen=True)
class Parent:
    """One parent: a name, its head and recipe policy overrides."""

    name: str
    head: str
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    """Two parents trained on one task's demonstrations with ``steps`` training steps each."""

    task: str
    steps: int
    parents: tuple[Parent, Parent]


PAIRS = {
    "arm_obs_subsets": Pair("arm_pick_place", 2000, (
        Parent("no_cube_quat", "diffusion", {"obs_keys": ["joint_pos", "joint_vel", "eef_pos", "cube_pos", "target_pos"]}),
        Parent("no_target", "diffusion", {"obs_keys": ["joint_pos", "joint_vel", "eef_pos", "cube_pos", "cube_quat"]}),
    )),
    "diffdrive_heads": Pair("diffdrive_nav", 5000, (
        Parent("diffusion", "diffusion"),
        Parent("flow", "flow"),
    )),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--val-episodes", type=int, default=20)
    parser.add_argument("--test-episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="collection and training seed")
    parser.add_argument("--train-steps", type=int, default=0, help="0: each pair's")
    parser.add_argument("--work", default="outputs/compose_study", help="datasets, parents, searches")
    parser.add_argument("--out", default="scripts/results/compose_study.json")
    parser.add_argument("--reuse", action="store_true", help="keep datasets and parents already in --work")
    args = parser.parse_args()

    work, report, tables = Path(args.work), {}, []
    for name in args.pairs:
        pair = PAIRS[name]
        parent_dirs = _train_parents(pair, work / name, args)
        candidates, best, _ = run_compose(compose_config("compose", [
            f"checkpoints=[{','.join(map(str, parent_dirs))}]", "search=grid", "step=0.1",
            f"episodes={args.val_episodes}", f"out={work / name / 'search'}", "progress=false",
        ]))
        parents = [Policy.load(directory) for directory in parent_dirs]
        test_cfg = compose_config("eval", [f"episodes={args.test_episodes}", "progress=false"])
        rows, results = [], []
        for candidate in candidates:
            composed = ComposedPolicy(parents, candidate.weights, [str(d) for d in parent_dirs])
            test = evaluate_policy(composed, test_cfg, pair.task, name, seed=DEFAULT_EVAL_SEED)
            rows.append((weights_label(candidate.weights), test))
            results.append({"weights": list(candidate.weights), "val_success": candidate.result.success_rate,
                            "test_success": test.success_rate, "test_mean_len": test.mean_episode_len})
            print(f"{name} {weights_label(candidate.weights)}: val {candidate.result.success_rate:.2f} "
                  f"test {test.success_rate:.2f}", flush=True)
        chosen = next(r for r in results if r["weights"] == list(best.weights))
        report[name] = {
            "task": pair.task, "train_steps": pair.steps,
            "parents": [{"name": p.name, "head": p.head, **p.policy} for p in pair.parents],
            "val_seed": 200000, "val_episodes": args.val_episodes,
            "test_seed": DEFAULT_EVAL_SEED, "test_episodes": args.test_episodes,
            "weights": results, "chosen": chosen,
        }
        a, b = (p.name for p in pair.parents)
        lines = [f"{name} ({pair.task}; w = weight of {a}, 1 - w of {b})",
                 "w     val success  test success"]
        lines += [f"{r['weights'][0]:.1f}   {r['val_success']:>10.0%}  {r['test_success']:>12.0%}" for r in results]
        lines.append(f"chosen on validation: w = {chosen['weights'][0]:.1f}, test {chosen['test_success']:.0%} "
                     f"(parents: {a} {results[-1]['test_success']:.0%}, {b} {results[0]['test_success']:.0%})")
        tables.append("\n".join(lines) + "\n\ntest episodes\n" + format_results_table(rows))

    out, table = Path(args.out), "\n\n".join(tables)
    write_report(out, report, table)
    print("\n" + table + f"\n\nwrote {out} and {out.with_suffix('.md')}")


def _train_parents(pair: Pair, root: Path, args: argparse.Namespace) -> list[Path]:
    """Collect the task's recipe demonstrations once and train both parents on them."""
    recipe = load_recipe(pair.task)
    dataset = root / "data.zarr"
    if not (args.reuse and dataset.exists()):
        collect(get_task(pair.task), dataset, episodes=recipe.collect.episodes, seed=args.seed,
                action_noise=recipe.collect.action_noise, overwrite=True, progress=False)
    directories = []
    for parent in pair.parents:
        run = root / parent.name
        if not (args.reuse and (run / "checkpoint").is_dir()):
            parent_recipe = OmegaConf.merge(recipe, {"policy": parent.policy})
            train_from_recipe(parent_recipe, parent.head, dataset, run, seed=args.seed,
                              progress=False, steps=args.train_steps or pair.steps)
        directories.append(run / "checkpoint")
    return directories


if __name__ == "__main__":
    main()
