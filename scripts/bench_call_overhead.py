"""Benchmark what one policy call costs beyond its network evaluations.

For the demo's MLP policies (diffdrive_nav's observation and action sizes, batch of one
observation window, 1 torch thread) and three samplers (flow with 1 Euler step, diffusion
DDIM with 10 steps, diffusion RTI warm start with 3 steps), a warm ``Policy.predict_chunk``
is timed against the bare network forwards it needs (``head.net`` called ``nfe`` times on
ready-made inputs). The two contenders alternate call by call in one process, so a busy
machine slows both alike; CPU time (``time.process_time``) and wall time are both recorded,
as min and median over the calls. A breakdown of a call times its parts the same way, each
alone: ``encode`` (normalise + encoder), ``noise`` (initial noise, or a warm start's shifted,
noised guess), ``solve_without_net`` (the head's solve with the network replaced by a ready
result: time grid and coefficient look-up, solver arithmetic, clamp, dispatch), ``unnormalise``;
``rest`` is the median call minus the forwards and these parts (``predict_chunk``'s own
Python dispatch and what does not add up; each part timed alone pays its own timer and
inference-mode entry, so the parts overstate and ``rest`` can be negative). Writes ``scripts/results/call_overhead.json``.

    python scripts/bench_call_overhead.py [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from robo_policies.heads import head_config
from robo_policies.policy import Policy, PolicyConfig
from robo_policies.sampling.warmstart import WarmStart, WarmStartConfig, shift_chunk

RESULTS = Path(__file__).resolve().parent / "results" / "call_overhead.json"
SHAPES = {"base_pose": (4,), "base_vel": (2,), "goal": (2,), "obstacle": (2,)}
ACTION_DIM = 2
SAMPLERS = {
    "flow-1": ("flow", {"inference_steps": 1}, None),
    "ddim-10": ("diffusion", {"prediction": "sample", "inference_steps": 10}, None),
    "rti-3": ("diffusion", {"prediction": "sample", "inference_steps": 10}, 3),
}


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    call()
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(name: str, calls: int) -> dict[str, object]:
    head, settings, warm_steps = SAMPLERS[name]
    torch.manual_seed(0)
    policy = Policy(PolicyConfig(net="mlp", head=head_config(head, **settings)), SHAPES, [], ACTION_DIM).eval()
    if warm_steps:
        policy.warm_start = WarmStart(WarmStartConfig(steps=warm_steps))
    obs = {key: torch.randn(1, policy.config.n_obs_steps, *shape) for key, shape in SHAPES.items()}
    for _ in range(2):  # a warm start's first call is a full solve; later ones are warm
        policy.predict_chunk(obs)
    nfe = policy.last_nfe
    with torch.no_grad():
        cond = policy.encode(obs)
    x = torch.randn(1, policy.config.horizon, ACTION_DIM)
    t = torch.full((1,), 0.5)

    def forwards() -> None:
        with torch.no_grad():
            for _ in range(nfe):
                policy.head.net(x, t, cond)

    parts = call_parts(policy, obs, warm_steps)
    samples: dict[str, list[tuple[float, float]]] = {"predict_chunk": [], "bare_forwards": []}
    samples.update({part: [] for part in parts})
    for _ in range(20):  # warm-up
        policy.predict_chunk(obs)
        forwards()
        for part in parts.values():
            part()
    for _ in range(calls):  # interleaved: the same machine state for all
        samples["predict_chunk"].append(timed(lambda: policy.predict_chunk(obs)))
        samples["bare_forwards"].append(timed(forwards))
        for part, run in parts.items():
            samples[part].append(timed(run))
    record: dict[str, object] = {"sampler": name, "nfe": nfe}
    for contender, values in samples.items():
        cpu, wall = np.array(values).T * 1000.0
        record[contender] = {"cpu_ms_min": round(float(cpu.min()), 4), "cpu_ms_p50": round(float(np.median(cpu)), 4),
                             "wall_ms_min": round(float(wall.min()), 4),
                             "wall_ms_p50": round(float(np.median(wall)), 4)}
    call, bare = record["predict_chunk"], record["bare_forwards"]
    record["ratio_cpu_p50"] = round(call["cpu_ms_p50"] / bare["cpu_ms_p50"], 3)
    record["ratio_cpu_min"] = round(call["cpu_ms_min"] / bare["cpu_ms_min"], 3)
    breakdown = {"forwards": bare["cpu_ms_p50"], **{part: record.pop(part)["cpu_ms_p50"] for part in parts}}
    breakdown["rest"] = round(call["cpu_ms_p50"] - sum(breakdown.values()), 4)
    record["breakdown_cpu_ms_p50"] = breakdown
    return record


def call_parts(policy: Policy, obs: dict[str, torch.Tensor], warm_steps: int | None) -> dict[str, Callable[[], object]]:
    """The parts of a warm ``predict_chunk`` besides the forwards, each runnable alone."""
    head, generator = policy.head, torch.Generator().manual_seed(1)
    with torch.inference_mode():
        cond = policy.encode(obs)
        chunk = head.sample(cond, generator=generator)
        prediction = head.field(chunk, torch.ones(1), cond)
    steps = warm_steps if warm_steps else None
    t_start = policy.warm_start.start_time_for(head, cond.device) if warm_steps else None

    def noise() -> torch.Tensor:
        if not warm_steps:
            return head.initial_noise(cond, generator)
        return head.noised_guess(shift_chunk(chunk, policy.config.n_action_steps), t_start, generator)

    def inference(run: Callable[[], object]) -> Callable[[], object]:
        return lambda: torch.inference_mode()(run)()

    return {
        "encode": inference(lambda: policy.encode(obs)),
        "noise": inference(noise),
        "solve_without_net": inference(lambda: head.sample(cond, x_init=chunk, t_start=t_start, steps=steps,
                                                           field=lambda x, t: prediction)),
        "unnormalise": inference(lambda: policy.normalizer.unnormalize("action", chunk)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = []
    for name in SAMPLERS:
        record = measure(name, args.calls)
        print(json.dumps(record), flush=True)
        records.append(record)
    report = {"machine": platform.platform(), "threads": 1, "calls": args.calls, "records": records}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
