"""Benchmark LeRobot directories: frame decoding and training in place against zarr.

Builds a synthetic image dataset (zarr), writes it as a LeRobot v3.0 directory (AV1, one mp4 per
camera) and converts that back to zarr, then measures:

* decode throughput (frames/s) of ``LeRobotDataset[camera]`` read episode by episode and at
  random rows (what a batch of windows asks), next to a plain PyAV loop decoding the same mp4
  front to back;
* training steps/s of the same tiny image policy from the directory and from the converted
  zarr (loader in the training process, so decoding is part of the step), from the difference
  of a long and a short run (set-up and validation cancel out), and their ratio.

Writes ``scripts/results/lerobot.json``. Run with ``OMP_NUM_THREADS=1``:

    OMP_NUM_THREADS=1 python scripts/bench_lerobot.py [--episodes 8] [--length 60] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from robo_policies.cli.main import main as robo
from robo_policies.data.convert import convert
from robo_policies.data.lerobot.dataset import LeRobotDataset
from robo_policies.data.replay_buffer import ReplayBuffer

POLICY = ["policy=mlp_bc", "policy.net=mlp", "policy.n_obs_steps=1", "policy.horizon=4", "policy.n_action_steps=2",
          "policy.hidden_dim=32", "policy.n_blocks=1", "train.batch_size=16", "train.threads=1",
          "train.loader_workers=0", "train.log_every=1000", "train.checkpoint_every=100000", "progress=false"]


def synthetic_zarr(path: Path, episodes: int, length: int, size: int) -> Path:
    """Smoothly moving gradient images (codec-friendly, like a camera) with state and action."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    buffer = ReplayBuffer.create(path, attrs={"fps": 30.0, "task": "bench"})
    for episode in range(episodes):
        frames = np.stack([np.stack([(x + 2 * t + 9 * episode) % 256, (y + t) % 256, (x + y) // 2 % 256], -1)
                           for t in range(length)]).astype(np.uint8)
        buffer.add_episode({"front_image": frames, "state": rng.normal(size=(length, 6)).astype(np.float32),
                            "action": rng.normal(size=(length, 3)).astype(np.float32)})
    return path


def reader_fps(directory: Path, random_rows: bool) -> float:
    """Frames/s through LeRobotDataset: whole episodes in order, or 512 random single rows."""
    dataset = LeRobotDataset(directory)
    frames = dataset["front_image"]
    start = time.perf_counter()
    if random_rows:
        rows = np.random.default_rng(0).integers(0, len(frames), 512)
        for row in rows:
            frames[int(row): int(row) + 1]
        count = len(rows)
    else:
        for episode in range(dataset.n_episodes):
            frames[dataset.episode_slice(episode)]
        count = len(frames)
    return count / (time.perf_counter() - start)


def plain_pyav_fps(mp4: Path) -> float:
    """Frames/s of the simplest PyAV loop: decode the file front to back into RGB arrays."""
    start = time.perf_counter()
    with av.open(str(mp4)) as container:
        count = sum(1 for frame in container.decode(video=0) if frame.to_ndarray(format="rgb24") is not None)
    return count / (time.perf_counter() - start)


def train_seconds(dataset: Path, out: Path, steps: int) -> float:
    start = time.perf_counter()
    code = robo(["train", f"dataset={dataset}", f"out={out}", f"train.steps={steps}", *POLICY])
    if code:
        raise SystemExit(f"robo train failed on {dataset} (exit {code})")
    return time.perf_counter() - start


def steps_per_second(dataset: Path, work: Path, short: int, long: int) -> dict[str, float]:
    """Steps/s from the time a long run takes beyond a short one (set-up cancels out)."""
    short_s = train_seconds(dataset, work / f"{dataset.name}_short", short)
    long_s = train_seconds(dataset, work / f"{dataset.name}_long", long)
    return {"short_run_s": round(short_s, 3), "long_run_s": round(long_s, 3),
            "steps_per_s": round((long - short) / (long_s - short_s), 2)}


def run(episodes: int, length: int, size: int, short: int, long: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = synthetic_zarr(work / "source.zarr", episodes, length, size)
        directory = convert(source, work / "lerobot_dir", format="lerobot")
        converted = convert(directory, work / "converted.zarr")
        mp4 = directory / "videos/observation.images.front/chunk-000/file-000.mp4"
        decode = {"reader_sequential_fps": round(reader_fps(directory, random_rows=False), 1),
                  "reader_random_rows_fps": round(reader_fps(directory, random_rows=True), 1),
                  "plain_pyav_fps": round(plain_pyav_fps(mp4), 1)}
        train_seconds(directory, work / "warm_up", 2)  # imports and first-call costs, not measured
        train = {"lerobot_dir": steps_per_second(directory, work, short, long),
                 "zarr": steps_per_second(converted, work, short, long)}
    ratio = train["zarr"]["steps_per_s"] / train["lerobot_dir"]["steps_per_s"]
    return {
        "dataset": {"episodes": episodes, "length": length, "image": [size, size, 3], "codec": "av1 (libsvtav1, g=2, crf=30)"},
        "decode": decode,
        "train": {**train, "zarr_over_dir_time_ratio": round(ratio, 2), "target": "directory not slower than 2x zarr",
                  "policy": POLICY, "steps": [short, long]},
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--length", type=int, default=60)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=110)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lerobot.json")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse()
    result = run(args.episodes, args.length, args.size, args.short, args.long)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
