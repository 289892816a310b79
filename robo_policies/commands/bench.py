"""``robo bench``: measured inference latency and training throughput of every head.

Benchmarks build untrained policies with the shapes of a real task (``diffdrive_nav``-like
low-dimensional observations; an added 84x84 camera for image observations), so they need
no dataset and time exactly the code paths ``robo eval`` and ``robo train`` run.

- ``inference``: model-call latency (``Policy.predict_chunk`` on one observation: encode,
  denoise, unnormalise) for each registered head x the samplers it declares
  (``ActionHead.bench_samplers``), per backbone and thread count, and per executed action
  (the call over the Ta actions it serves). Warm-start samplers (``rti``) time warm-started
  calls (``sampling.warmstart``: the episode's full first call is in the warm-up).
- ``train``: optimiser steps of mini-batched denoising for M in ``samples_per_obs``: how many
  observations and denoising samples per second, and the step's extra peak memory.

Both write a JSON list of records and print a table; targets are read from these files,
never asserted in timed tests.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robo_policies.utils.atomic import atomic_write_text
from robo_policies.utils.errors import ConfigError
from robo_policies.heads import head_class, head_config, head_names
from robo_policies.policy import Policy, PolicyConfig
from robo_policies.sampling.warmstart import WarmStart, WarmStartConfig

LOW_DIM_OBS = {"base_pose": (4,), "base_vel": (2,), "goal": (2,), "obstacle": (2,)}
IMAGE_OBS = {**LOW_DIM_OBS, "camera": (84, 84, 3)}
ACTION_DIM = 2

MODELS = {
    "mlp": PolicyConfig(net="mlp"),
    "unet": PolicyConfig(net="unet"),
    "unet_dp": PolicyConfig(net="unet", down_dims=[256, 512, 1024], time_dim=128),
}
"""Backbones: the demo's MLP, the default small UNet and diffusion_policy's UNet widths
(256/512/1024) with a step embedding of 128, not the low-dim preset's 256."""


def bench_inference(
    models: Sequence[str] = tuple(MODELS), threads: Sequence[int] = (1, 2), calls: int = 20,
    warmup: int = 3,
) -> list[dict[str, Any]]:
    """Latency records ``head, sampler, steps, nfe, threads, model, ms_p50, ms_p95,
    ms_per_action_p50`` (per executed action: ``ms_p50`` over the policy's Ta), for every
    registered head's ``bench_samplers``; a head without a backbone is timed once, under
    ``mlp`` (its own network is an MLP).

    ``nfe`` is measured: network evaluations the head reports per call. The energy head's
    adaptive stop may use fewer than its cap; these untrained backbones start with a zero
    output layer, so their energy is flat and the MLP's adaptive runs stop after 2.
    """
    _check_choices("model", models, MODELS)
    records = []
    samplers = [(name, sampler) for name in head_names() for sampler in head_class(name).bench_samplers]
    for model in models:
        for head, sampler in samplers:
            if not head_class(head).uses_backbone and model != "mlp":
                continue  # one network, whatever the backbone
            config = replace(MODELS[model], head=head_config(head, **sampler.settings))
            policy = _policy(config, LOW_DIM_OBS).eval()
            if sampler.warm_steps is not None:  # warm after the first call
                policy.warm_start = WarmStart(WarmStartConfig(steps=sampler.warm_steps))
            obs = _observation_batch(LOW_DIM_OBS, config.n_obs_steps, batch=1)
            for n_threads in threads:
                with _torch_threads(n_threads):
                    times, nfes = [], []
                    for i in range(warmup + calls):
                        start = time.perf_counter()
                        policy.predict_chunk(obs)
                        if i >= warmup:
                            times.append((time.perf_counter() - start) * 1000.0)
                            nfes.append(policy.head.last_nfe)
                records.append({
                    "head": head, "sampler": sampler.name, "steps": sampler.steps,
                    "nfe": float(np.mean(nfes)), "threads": n_threads, "model": model,
                    "ms_p50": float(np.percentile(times, 50)), "ms_p95": float(np.percentile(times, 95)),
                    "ms_per_action_p50": float(np.percentile(times, 50)) / config.n_action_steps,
                })
    return records


def bench_train(
    heads: Sequence[str] = ("diffusion", "flow", "energy"),
    samples_per_obs: Sequence[int] = (1, 4, 16, 64),
    obs_kinds: Sequence[str] = ("low_dim", "image"),
    model: str = "mlp",
    batch_size: int = 32,
    steps: int = 10,
    warmup: int = 2,
    threads: int = 2,
) -> list[dict[str, Any]]:
    """Throughput records ``head, samples_per_obs, obs, obs_per_s, denoise_samples_per_s,
    peak_mem_mb`` (plus ``model``, ``batch_size``, ``threads``).

    Each configuration runs in its own forked process so ``peak_mem_mb`` (the growth of the
    process's peak resident memory over its set-up) belongs to that configuration alone.
    """
    _check_choices("model", [model], MODELS)
    _check_choices("obs", obs_kinds, ("low_dim", "image"))
    _check_choices("head", heads, head_names())
    context = multiprocessing.get_context("fork")
    records = []
    for head in heads:
        for kind in obs_kinds:
            for copies in samples_per_obs:
                job = dict(head=head, kind=kind, copies=copies, model=model, batch_size=batch_size,
                           steps=steps, warmup=warmup, threads=threads)
                with context.Pool(1) as pool:
                    records.append(pool.apply(_train_throughput, kwds=job))
    return records


def _train_throughput(
    head: str, kind: str, copies: int, model: str, batch_size: int, steps: int, warmup: int,
    threads: int,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    obs_shapes = IMAGE_OBS if kind == "image" else LOW_DIM_OBS
    config = replace(MODELS[model], head=head_config(head), samples_per_obs=copies)
    policy = _policy(config, obs_shapes).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    batch = _observation_batch(obs_shapes, config.n_obs_steps, batch=batch_size)
    batch["action"] = torch.rand(batch_size, config.horizon, ACTION_DIM) * 2 - 1
    baseline_kb = _current_rss_kb()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        policy.compute_loss(batch).backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "head": head, "samples_per_obs": copies, "obs": kind,
        "obs_per_s": batch_size * steps / seconds,
        "denoise_samples_per_s": batch_size * copies * steps / seconds,
        "peak_mem_mb": max(peak_kb - baseline_kb, 0) / 1024.0,
        "model": model, "batch_size": batch_size, "threads": threads,
    }


def write_records(records: list[dict[str, Any]], out: str | Path) -> Path:
    """Write the records as a JSON list (atomically)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(records, indent=2) + "\n")
    return path


def format_records(records: list[dict[str, Any]]) -> str:
    """An aligned text table of the records (floats with 2 decimals)."""
    if not records:
        return "(no records)"
    keys = list(records[0])
    cells = [[f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in records]
    widths = [max(len(k), *(len(row[i]) for row in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _check_choices(name: str, values: Sequence[str], known: Sequence[str]) -> None:
    unknown = [value for value in values if value not in known]
    if unknown:
        raise ConfigError(f"unknown {name} {unknown}; choose from {list(known)}")


def _policy(config: PolicyConfig, obs_shapes: dict[str, tuple[int, ...]]) -> Policy:
    torch.manual_seed(0)
    images = [key for key, shape in obs_shapes.items() if len(shape) == 3]
    return Policy(config, obs_shapes, images, ACTION_DIM)


def _observation_batch(
    obs_shapes: dict[str, tuple[int, ...]], n_obs_steps: int, batch: int
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    out = {}
    for key, shape in obs_shapes.items():
        if len(shape) == 3:
            out[key] = torch.randint(0, 256, (batch, n_obs_steps, *shape), generator=generator, dtype=torch.uint8)
        else:
            out[key] = torch.randn(batch, n_obs_steps, *shape, generator=generator)
    return out


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _current_rss_kb() -> int:
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * resource.getpagesize() // 1024
