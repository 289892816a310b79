"""``robo dataset view``: look at one episode without writing code.

The episode becomes a video: every camera side by side on top, and under them the plots of
its low-dimensional observations and its actions over the whole episode, with a cursor at
the present step and the episode's task string as the title. ``.mp4`` writes the video,
``.html`` one self-contained page that plays it (the video inlined, nothing to serve).
The plots are drawn once; each frame only moves the cursor, so a long episode stays quick.
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robo_policies.data.datasets import AnyDataset, open_dataset
from robo_policies.data.replay_buffer import is_image
from robo_policies.utils.atomic import atomic_write_text
from robo_policies.utils.errors import ConfigError
from robo_policies.utils.video import Mp4Writer

CAMERA_HEIGHT = 192
"""Pixels of the camera row: small frames are enlarged by whole factors up to about this."""
PLOT_HEIGHT = 320
"""Pixels of the plots under the cameras."""
NOT_PLOTTED = frozenset({"timestamp"})
"""Per-step arrays that are bookkeeping, not signals worth a plot."""


@dataclass(frozen=True)
class EpisodeView:
    """What ``view_episode`` wrote."""

    path: Path
    frames: int
    height: int
    width: int
    task: str


def episode_task(buffer: AnyDataset, episode: int) -> str:
    """The episode's task string: its ``tasks`` entry (recordings, LeRobot), else the dataset's
    simulated ``task``, else ""."""
    tasks = buffer.attrs.get("tasks")
    if tasks and "task_index" in buffer.meta_keys:
        return str(tasks[int(buffer.meta("task_index")[episode])])
    return str(buffer.attrs.get("task") or "")


def view_episode(dataset: str | Path, episode: int, out: str | Path, fps: float = 0.0) -> EpisodeView:
    """Write episode ``episode`` of ``dataset`` to ``out`` (.mp4 or .html) at ``fps`` (0: the
    dataset's recorded rate, else 10)."""
    out = Path(out)
    if out.suffix not in (".mp4", ".html"):
        raise ConfigError(f"out={out}: write an .mp4 or an .html file")
    buffer = open_dataset(dataset)
    if not 0 <= episode < buffer.n_episodes:
        raise ConfigError(f"{dataset}: no episode {episode}; it has {buffer.n_episodes} (0..{buffer.n_episodes - 1})")
    steps = buffer.episode(episode)
    cameras = [key for key, value in steps.items() if is_image(value.shape[1:], value.dtype)]
    signals = {key: value.reshape(len(value), -1) for key, value in steps.items()
               if key not in cameras and key not in NOT_PLOTTED and np.issubdtype(value.dtype, np.number)}
    task = episode_task(buffer, episode)
    rate = fps or float(buffer.attrs.get("fps") or 0.0) or 10.0
    n_steps = len(steps["action"])
    camera_row = _side_by_side([steps[key] for key in cameras]) if cameras else None
    width = max(640, camera_row.shape[2] if camera_row is not None else 0)
    plots, cursor_x = _plots(signals, n_steps, width, f"{Path(dataset).name} episode {episode}: {task or '(no task)'}"
                                + (f"\ncameras, left to right: {', '.join(cameras)}" if cameras else ""))
    frames = ((_pad_width(camera_row[t], width) if camera_row is not None else None, cursor_x(t))
              for t in range(n_steps))
    with tempfile.TemporaryDirectory() as scratch:
        video_path = out if out.suffix == ".mp4" else Path(scratch) / "episode.mp4"
        _write_video(video_path, plots, frames, rate)
        if out.suffix == ".html":
            _write_page(out, video_path, task, f"{dataset} episode {episode}", n_steps, rate, cameras, list(signals))
    height = PLOT_HEIGHT + (camera_row.shape[1] if camera_row is not None else 0)
    return EpisodeView(out, n_steps, height + height % 2, width + width % 2, task)


def _write_video(path: Path, plots: np.ndarray, frames: Iterator[tuple[np.ndarray | None, int]],
                 fps: float) -> None:
    """Each (camera row or None, cursor column) as one frame: the cameras over the plots."""
    writer = Mp4Writer(path)
    writer.fps = fps
    try:
        for camera_row, cursor in frames:
            plot = plots.copy()
            plot[:, cursor - cursor % 2:cursor - cursor % 2 + 4] = (220, 30, 30)  # 4 px on even columns: crisp in yuv420p
            writer.append(plot if camera_row is None else np.concatenate([camera_row, plot], axis=0))
    except BaseException:
        writer.abort()
        raise
    writer.finish()


def _side_by_side(cameras: list[np.ndarray]) -> np.ndarray:
    """Every camera's frames (T, H, W, 3), enlarged by whole factors to about
    ``CAMERA_HEIGHT`` and padded to one height, side by side: (T, H', sum W', 3)."""
    enlarged = []
    for frames in cameras:
        factor = max(1, CAMERA_HEIGHT // frames.shape[1])
        enlarged.append(frames.repeat(factor, axis=1).repeat(factor, axis=2))
    height = max(frames.shape[1] for frames in enlarged)
    padded = [np.pad(frames, ((0, 0), (0, height - frames.shape[1]), (0, 4), (0, 0))) for frames in enlarged]
    return np.concatenate(padded, axis=2)


def _pad_width(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` centred in ``width`` columns."""
    left = (width - image.shape[1]) // 2
    return np.pad(image, ((0, 0), (left, width - image.shape[1] - left), (0, 0)))


def _plots(signals: dict[str, np.ndarray], n_steps: int, width: int,
           title: str) -> tuple[np.ndarray, Callable[[int], int]]:
    """The observation and action plots as one (PLOT_HEIGHT, width, 3) image, and the pixel
    column of step ``t``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    groups = [("observations", {k: v for k, v in signals.items() if k != "action"}),
              ("action", {k: v for k, v in signals.items() if k == "action"})]
    groups = [(name, group) for name, group in groups if group]
    figure, axes = plt.subplots(len(groups) or 1, 1, figsize=(width / dpi, PLOT_HEIGHT / dpi), dpi=dpi,
                                sharex=True, squeeze=False)
    figure.suptitle(title, fontsize=9)
    for ax, (name, group) in zip(axes[:, 0], groups):
        for key, values in group.items():
            for dim in range(values.shape[1]):
                ax.plot(values[:, dim], linewidth=1, label=f"{key}[{dim}]" if values.shape[1] > 1 else key)
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, max(1, n_steps - 1))
        if sum(values.shape[1] for values in group.values()) <= 8:
            ax.legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("step", fontsize=8)
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    bottom = axes[-1, 0]
    x0 = bottom.transData.transform((0, 0))[0]
    x1 = bottom.transData.transform((max(1, n_steps - 1), 0))[0]
    plt.close(figure)
    image = image[:PLOT_HEIGHT, :width]

    def cursor_x(t: int) -> int:
        return int(round(x0 + (x1 - x0) * t / max(1, n_steps - 1)))

    return image, cursor_x


def _write_page(out: Path, video: Path, task: str, name: str, n_steps: int, fps: float, cameras: list[str],
                signals: list[str]) -> None:
    """One HTML page with the video inlined (base64), written atomically."""
    encoded = base64.b64encode(video.read_bytes()).decode("ascii")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(name)}</title></head>
<body style="font-family: sans-serif">
<h2>{html.escape(name)}</h2>
<p>task: <b>{html.escape(task or "(no task)")}</b> &middot; {n_steps} steps at {fps:g} Hz &middot;
cameras: {html.escape(", ".join(cameras) or "none")} &middot; plotted: {html.escape(", ".join(signals))}</p>
<video controls autoplay loop muted src="data:video/mp4;base64,{encoded}"></video>
</body></html>
"""
    atomic_write_text(out, page)
