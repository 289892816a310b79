"""Benchmark torch's thread count on an idle and on a busy machine.

Trains the demo's diffusion policy (MLP denoiser, x0-prediction, batch 256, diffdrive_nav's
observation and action sizes) for a few seconds in a fresh process per setting, with 1 thread,
2 threads and the default (``utils.threads``: every core but one), first on an otherwise idle
machine, then while a second process keeps one core busy (a Python busy loop, the kind of
load a simulator or viewer puts next to a training run). Reports steps/s and the CPU time the
process got per wall second. Writes ``scripts/results/threads.json``.

    python scripts/bench_threads.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "threads.json"
BUSY_LOOP = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"


def measure(threads: int, seconds: float) -> dict[str, float]:
    """Training steps/s of the demo policy with ``threads`` torch threads (0: the default)."""
    import torch

    from robo_policies.heads import head_config
    from robo_policies.policy import Policy, PolicyConfig
    from robo_policies.utils.threads import use_threads

    count = use_threads(threads)
    torch.manual_seed(0)
    config = PolicyConfig(net="mlp", head=head_config("diffusion", prediction="sample"))
    shapes = {"base_pose": (4,), "base_vel": (2,), "goal": (2,), "obstacle": (2,)}
    policy = Policy(config, shapes, [], 2).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    batch = {key: torch.randn(256, config.n_obs_steps, *shape) for key, shape in shapes.items()}
    batch["action"] = torch.rand(256, config.horizon, 2) * 2 - 1

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        policy.compute_loss(batch).backward()
        optimizer.step()

    for _ in range(10):
        step()
    steps, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - wall
    return {"threads": count, "steps_per_s": round(steps / elapsed, 2),
            "cpu_s_per_wall_s": round((time.process_time() - cpu) / elapsed, 2)}


def run_child(threads: int, seconds: float) -> dict[str, float]:
    """``measure`` in a fresh process (torch's thread pool is set once per process)."""
    out = subprocess.run([sys.executable, __file__, "--child", str(threads), "--seconds", str(seconds)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.seconds)))
        return
    records = []
    for load in ("idle", "one core busy"):
        busy = None
        if load != "idle":
            busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=4 * (args.seconds + 10))])
            time.sleep(1.0)
        try:
            for threads in (1, 2, 0):
                record = {"load": load, "setting": "default" if threads == 0 else f"threads={threads}",
                          **run_child(threads, args.seconds)}
                print(record, flush=True)
                records.append(record)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    report = {"machine": {"cores": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                          "loadavg_at_end": os.getloadavg()},
              "benchmark": "demo diffusion policy (MLP, x0-prediction), batch 256, training steps",
              "records": records}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
