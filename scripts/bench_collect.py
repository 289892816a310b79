"""Benchmark `robo collect`: wall time and expert success for 50 demonstrations per task.

Writes one JSON record per task (default ``scripts/results/collect.json``). The target from
issue #2 is under 2 minutes per 50 demonstrations with expert success >= 95% on a 2-core CPU.

    python scripts/bench_collect.py [--tasks diffdrive_nav arm_pick_place] [--episodes 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import zarr

from robo_policies.envs import get_task
from robo_policies.envs.collect import collect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["diffdrive_nav", "arm_pick_place"])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="scripts/results/collect.json")
    args = parser.parse_args()

    records = []
    for name in args.tasks:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.zarr"
            start = time.perf_counter()
            result = collect(get_task(name), path, episodes=args.episodes, seed=args.seed,
                             progress=False)
            seconds = time.perf_counter() - start
            root = zarr.open_group(str(path), mode="r")
            records.append({
                "task": name,
                "episodes": result.saved,
                "attempts": result.attempts,
                "expert_success_rate": round(result.success_rate, 4),
                "steps": result.steps,
                "wall_seconds": round(seconds, 2),
                "seconds_per_episode": round(seconds / max(result.attempts, 1), 3),
                "episode_ends_entries": int(root["meta/episode_ends"].shape[0]),
                "data_keys": sorted(root["data"].array_keys()),
            })
            print(json.dumps(records[-1]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "node": platform.machine()},
              "seed": args.seed, "results": records}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
