"""Benchmark `robo` start-up: wall time and heavy imports of the commands that must stay light.

Each command runs as the console script in a fresh process, ``--repeats`` times; the record
holds the median and the worst wall time and whether torch or diffusers was imported (from
``python -X importtime``). The target (issue #14): `robo --help`, `robo robot list` and
`robo dataset info <zarr>` under 1.5 s each on the 2-core CPU machine, without torch.

    python scripts/bench_cli_startup.py [--repeats 5] [--out scripts/results/cli_startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from robo_policies.data import ReplayBuffer

COMMANDS = (["--help"], ["robot", "list"], ["dataset", "info", "DATASET"], ["tasks"], ["collect", "--help"])
HEAVY = ("torch", "diffusers", "mujoco")


def run_once(argv: list[str]) -> tuple[float, set[str]]:
    """Wall seconds of one `robo <argv>` in a fresh interpreter, and the heavy modules it imported."""
    command = [sys.executable, "-X", "importtime", "-m", "robo_policies", *argv]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    return seconds, {name for name in HEAVY if name in imported}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="scripts/results/cli_startup.json")
    args = parser.parse_args()

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "tiny.zarr"
        ReplayBuffer.create(dataset).add_episode(
            {"state": np.zeros((10, 3), np.float32), "action": np.zeros((10, 2), np.float32)})
        for argv in COMMANDS:
            argv = [str(dataset) if part == "DATASET" else part for part in argv]
            runs = [run_once(argv) for _ in range(args.repeats)]
            seconds = [s for s, _ in runs]
            record = {
                "command": "robo " + " ".join("<zarr>" if part == str(dataset) else part for part in argv),
                "median_s": round(statistics.median(seconds), 3),
                "max_s": round(max(seconds), 3),
                "heavy_imports": sorted(set().union(*(heavy for _, heavy in runs))),
            }
            records.append(record)
            print(f"{record['command']:<28} median {record['median_s']:.2f} s  max {record['max_s']:.2f} s  "
                  f"heavy: {', '.join(record['heavy_imports']) or 'none'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                               "records": records}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
