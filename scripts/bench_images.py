"""Benchmark the camera path: rendering, collection, dataset size and the training data loader.

For each image task (``<task>_image``, 84x84 cameras): milliseconds per camera frame, env
steps per second with and without the cameras, collection wall time and dataset bytes per
100 demonstrations, and whether the loader keeps up with training: windows per second read
by ``data.loader.training_batches`` (in the training process, and with one worker) against
the windows per second one training step of the default image policy consumes.
Writes ``scripts/results/images.json``.

    python scripts/bench_images.py [--tasks diffdrive_nav arm_pick_place] [--episodes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robo_policies.data import Normalizer, ReplayBuffer, SequenceSampler, window_offsets
from robo_policies.data.loader import training_arrays, training_batches
from robo_policies.envs import get_task
from robo_policies.envs.collect import collect
from robo_policies.envs.mujoco_env import fast_renderer
from robo_policies.data.observation_keys import default_observation_keys
from robo_policies.policy import Policy, PolicyConfig, split_observation_keys


def frame_ms(task_name: str, frames: int = 200) -> float:
    """Milliseconds to render one camera frame (84x84, no shadows/reflections/multisampling)."""
    env = get_task(f"{task_name}_image").env().unwrapped
    env.reset(seed=0)
    renderer = fast_renderer(env.model, env.image_size, env.image_size)
    camera = env.CAMERAS[0]
    renderer.update_scene(env.data, camera=camera)
    renderer.render()
    start = time.perf_counter()
    for _ in range(frames):
        renderer.update_scene(env.data, camera=camera)
        renderer.render()
    renderer.close()
    env.close()
    return (time.perf_counter() - start) / frames * 1000


def steps_per_s(task_name: str, steps: int = 300) -> float:
    """Env steps per second under random actions."""
    env = get_task(task_name).env()
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()
    return steps / (time.perf_counter() - start)


def loader_and_step(path: Path, batch_size: int, steps: int, n_obs_steps: int) -> dict[str, float]:
    """Windows/s the loader delivers (0 and 1 workers) and the training step consumes."""
    buffer = ReplayBuffer.open(path)
    keys = default_observation_keys(buffer.keys, buffer.attrs)
    shapes = {key: tuple(buffer[key].shape[1:]) for key in keys}
    low_dim, images = split_observation_keys(keys, shapes, {key: buffer[key].dtype for key in keys})
    arrays = training_arrays(buffer, [*keys, "action"])
    obs, action = window_offsets(n_obs_steps, 16)
    windows = SequenceSampler(arrays, buffer.episode_ends, {**{k: obs for k in keys}, "action": action})
    rates = {}
    for workers in (0, 1):
        batches = training_batches(windows, batch_size, 0, 0, 0, steps + 3, workers)
        for _ in range(3):  # start-up (spawning a worker) is not the steady rate
            next(batches)
        start = time.perf_counter()
        for _ in range(steps):
            next(batches)
        rates[f"loader_windows_per_s_{workers}_workers"] = round(batch_size * steps / (time.perf_counter() - start), 1)
    config = PolicyConfig.from_dict({"net": "mlp", "n_obs_steps": n_obs_steps, "horizon": 16, "n_action_steps": 8,
                                     "head": {"name": "diffusion", "prediction": "sample"}})
    modes = {**{k: "minmax" for k in low_dim}, "action": "minmax"}
    policy = Policy(config, shapes, images, arrays["action"].shape[1], Normalizer.fit(arrays, modes))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    batches = list(training_batches(windows, batch_size, 0, 0, 0, steps + 2, 0))
    times = []
    for batch in batches:
        start = time.perf_counter()
        loss = policy.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    step_s = float(np.median(times[2:]))
    return {**rates, "train_step_ms": round(step_s * 1000, 1),
            "train_windows_per_s": round(batch_size / step_s, 1),
            "samples_per_obs": policy.config.samples_per_obs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["diffdrive_nav", "arm_pick_place"])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-obs-steps", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="scripts/results/images.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    records = []
    for name in args.tasks:
        record = {"task": f"{name}_image", "camera_frame_ms": round(frame_ms(name), 2),
                  "env_steps_per_s_state": round(steps_per_s(name), 1),
                  "env_steps_per_s_image": round(steps_per_s(f"{name}_image"), 1)}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "demo.zarr"
            start = time.perf_counter()
            result = collect(get_task(f"{name}_image"), path, episodes=args.episodes, seed=0, progress=False)
            seconds = time.perf_counter() - start
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            record.update({"collect_seconds_per_100_episodes": round(seconds * 100 / result.saved, 1),
                           "collect_steps_per_s": round(result.steps / seconds, 1),
                           "dataset_mb_per_100_episodes": round(size * 100 / result.saved / 2**20, 1),
                           **loader_and_step(path, args.batch_size, args.steps, args.n_obs_steps)})
        records.append(record)
        print(json.dumps(record))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "node": platform.machine(),
                          "torch_threads": args.threads},
              "batch_size": args.batch_size, "n_obs_steps": args.n_obs_steps, "results": records}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
