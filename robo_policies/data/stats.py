"""``robo dataset stats``: what is in a dataset, in numbers.

Per key: shape, dtype, min, max, mean and std (per dimension for low-dimensional keys, over
every pixel for cameras), written as ``stats.json``; the episode lengths as a histogram
(``episode_lengths.png``). Useful before training (an action dimension that never moves, a
joint stuck at a limit, a few episodes far longer than the rest) and to compare a recording
with a simulated dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from robo_policies.data.replay_buffer import is_image
from robo_policies.data.validate import summarize_dataset
from robo_policies.utils.atomic import atomic_output, atomic_write_text

MAX_ROWS_PER_KEY = 12
"""Dimensions of one key printed in the table (all of them go into stats.json)."""


def dataset_stats(dataset: str | Path, out: str | Path) -> tuple[dict[str, Any], str]:
    """Write ``stats.json`` and ``episode_lengths.png`` into ``out``; return the statistics and
    the table to print."""
    summary = summarize_dataset(dataset, moments=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys: dict[str, Any] = {}
    rows = []
    for key, info in summary.keys.items():
        if info.mean is None:  # not numeric
            continue
        image = is_image(info.shape, np.dtype(info.dtype))
        values = {"min": info.min, "max": info.max, "mean": info.mean, "std": info.std}
        if image:  # one number per statistic, over every pixel and channel
            values = {"min": info.min.min(), "max": info.max.max(), "mean": info.mean.mean(),
                      "std": float(np.sqrt(np.mean(info.std ** 2 + info.mean ** 2) - info.mean.mean() ** 2))}
        stats = {name: np.asarray(value, dtype=np.float64).round(6).tolist() for name, value in values.items()}
        keys[key] = {"shape": list(info.shape), "dtype": info.dtype, **stats}
        flat = {name: np.atleast_1d(np.asarray(value, dtype=np.float64)) for name, value in values.items()}
        for dim in range(min(len(flat["mean"]), MAX_ROWS_PER_KEY)):
            label = key if len(flat["mean"]) == 1 else f"{key}[{dim}]"
            rows.append((label, info.dtype, *(f"{flat[name][dim]:.4g}" for name in ("min", "max", "mean", "std"))))
        if len(flat["mean"]) > MAX_ROWS_PER_KEY:
            rows.append((f"{key}[...]", "", f"{len(flat['mean']) - MAX_ROWS_PER_KEY} more in stats.json", "", "", ""))
    lengths = summary.episode_lengths
    report = {"dataset": str(dataset), "episodes": summary.n_episodes, "steps": summary.n_steps,
              "episode_length": {"min": int(lengths.min()), "max": int(lengths.max()),
                                 "mean": round(float(lengths.mean()), 3)} if len(lengths) else None,
              "keys": keys}
    atomic_write_text(out / "stats.json", json.dumps(report, indent=2) + "\n")
    _length_histogram(lengths, out / "episode_lengths.png", str(dataset))
    return report, _table(rows, report)


def _table(rows: list[tuple[str, ...]], report: dict[str, Any]) -> str:
    header = ("key", "dtype", "min", "max", "mean", "std")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"{report['dataset']}: {report['episodes']} episodes, {report['steps']} steps"]
    if report["episode_length"]:
        length = report["episode_length"]
        lines.append(f"episode length min {length['min']}  mean {length['mean']:g}  max {length['max']}")
    lines += ["  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def _length_histogram(lengths: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.hist(lengths, bins=min(30, max(1, len(np.unique(lengths)))), color="#4477aa")
    ax.set_xlabel("episode length (steps)")
    ax.set_ylabel("episodes")
    ax.set_title(title, fontsize=8)
    figure.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
