"""``robo record``: teleoperation (keyboard, leader arm or gamepad) into a crash-safe dataset.

Each step stores the observation read before acting (one array per key of the robot's
``observation_features``, and each camera's frame as ``<name>_image``, uint8, one frame per
chunk), ``timestamp`` (seconds since the episode's first step, on the robot's clock) and
``action``, the command actually sent (``send_action``'s return, after the safety chain): a
policy learns what the robot was really told to do, not what a key or a leader asked for.
Episodes are kept in memory and appended with one ``add_episode`` each when they end, so a kill
or crash mid-episode loses that episode only and the dataset never shows part of one. The
dataset is a zarr ReplayBuffer (``format=zarr``) or a LeRobotDataset v3.0 directory
(``format=lerobot``, :class:`~robo_policies.data.lerobot.writer.LeRobotWriter`: each episode's
own parquet and mp4 files, then the meta files). An existing dataset is appended to (it must
come from the same robot at the same rate, in the same format).

Between episodes the teleop still drives the robot (to reset the scene); Enter starts an
episode and ends it early, Backspace discards the episode in progress so it can be recorded
again, Esc stops recording and drops the episode in progress.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robo_policies.data.lerobot import is_lerobot_dir
from robo_policies.data.replay_buffer import ReplayBuffer, is_image
from robo_policies.robots.keyboard import DriveSettings, Keyboard
from robo_policies.robots.robot import Robot
from robo_policies.robots.teleop import KeySource, drive, keyboard_for
from robo_policies.utils.errors import ConfigError

DATASET_SOURCE = "robo record"
DISCARD_KEY = "backspace"
"""Pressed while an episode records: drop it and record it again."""
FORMATS = ("zarr", "lerobot")


class EpisodeSink(Protocol):
    """Where finished episodes go: a zarr :class:`ReplayBuffer` or a
    :class:`~robo_policies.data.lerobot.writer.LeRobotWriter`."""

    @property
    def n_episodes(self) -> int: ...
    @property
    def attrs(self) -> dict[str, Any]: ...
    @property
    def meta_keys(self) -> list[str]: ...
    @property
    def step_shapes(self) -> dict[str, tuple[int, ...]]: ...
    def update_attrs(self, attrs: Mapping[str, Any]) -> None: ...
    def add_episode(self, data: Mapping[str, np.ndarray], episode_meta: Mapping[str, Any] | None = None) -> None: ...


@dataclass
class RecordResult:
    """What a recording session did."""

    path: str
    episodes_before: int
    episodes_saved: int
    steps_saved: int


def record(robot: Robot, keys: KeySource, out: str | Path, episodes: int, fps: float, episode_s: float,
           settings: DriveSettings, echo: Callable[[str], None] = print,
           controller: Keyboard | None = None, task: str = "", image_size: int = 0,
           format: str = "zarr") -> RecordResult:
    """Record up to ``episodes`` teleoperated episodes of ``episode_s`` seconds at ``fps`` from a
    connected robot into ``out`` (created, or appended to), driven by its kind's keys or by
    ``controller`` (a leader arm). ``task`` (e.g. "pick the cube") is kept with each episode:
    the dataset's ``tasks`` attribute lists the task strings, ``meta/task_index`` says which
    one each episode did (LeRobot's layout). ``image_size``: store camera frames as squares
    of this side, fitted as ``robo deploy`` fits them for a policy (0: as the cameras deliver).
    ``format``: ``zarr`` (a ReplayBuffer) or ``lerobot`` (a LeRobotDataset v3.0 directory)."""
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if not (fps > 0 and episode_s > 0):
        raise ConfigError(f"fps and episode_s must be > 0, got fps={fps}, episode_s={episode_s}")
    if image_size < 0:
        raise ConfigError(f"image_size must be >= 0, got {image_size}")
    if image_size:
        robot.fit_cameras({f"{name}_image": (image_size, image_size, 3) for name in robot.cameras})
    buffer = open_dataset(out, robot, fps, format)
    before = buffer.n_episodes
    tasks = list(buffer.attrs.get("tasks") or [])
    if task not in tasks:
        tasks.append(task)
        buffer.update_attrs({"tasks": tasks})
    echo(f"{out}: {before} episodes already recorded; recording {episodes} more at {fps:g} Hz")
    controller = controller or keyboard_for(robot, settings)
    echo(f"keys: {controller.help}; space e-stop, r reset; Enter starts/ends an episode, Backspace "
         f"discards the one recording (record it again), Esc stops")
    features = [*robot.observation_features, *(f"{name}_image" for name in robot.cameras)]
    if buffer.n_episodes:
        _require_same_shapes(buffer, robot.get_observation(), features, out)
    saved_steps = 0
    with robot.held_at_exit():
        while buffer.n_episodes - before < episodes:
            echo(f"episode {buffer.n_episodes + 1}: set the scene (the keys drive), then press Enter to record")
            if drive(robot, keys, controller, fps, end_keys=("enter",), echo=echo) == "quit":
                break
            steps: dict[str, list[np.ndarray]] = {key: [] for key in [*features, "timestamp", "action"]}

            def keep(observation: dict[str, np.ndarray], sent: np.ndarray) -> None:
                for key in [*features, "timestamp"]:
                    steps[key].append(observation[key])
                steps["action"].append(sent)

            started = time.time()
            echo(f"recording episode {buffer.n_episodes + 1} ({episode_s:g} s; Enter ends it early)")
            ended = drive(robot, keys, controller, fps, duration_s=episode_s, end_keys=("enter", DISCARD_KEY),
                          on_step=keep, echo=echo)
            if ended == "quit":
                echo(f"episode {buffer.n_episodes + 1} dropped ({len(steps['action'])} steps)")
                break
            if ended == DISCARD_KEY:
                echo(f"episode {buffer.n_episodes + 1} discarded ({len(steps['action'])} steps): record it again")
                continue
            data = {key: _column(values) for key, values in steps.items() if key != "timestamp"}
            times = np.asarray(steps["timestamp"], dtype=np.float64)
            data["timestamp"] = times - times[0]
            meta = {"start_time": started, "task_index": tasks.index(task)}
            if buffer.n_episodes and "task_index" not in buffer.meta_keys:  # recorded before tasks were kept
                del meta["task_index"]
            buffer.add_episode(data, meta)
            saved_steps += len(data["action"])
            echo(f"episode {buffer.n_episodes} saved: {len(data['action'])} steps")
    result = RecordResult(str(out), before, buffer.n_episodes - before, saved_steps)
    echo(f"{out}: {result.episodes_saved} episodes saved this session, {buffer.n_episodes} in all")
    return result


def _require_same_shapes(buffer: EpisodeSink, observation: dict[str, np.ndarray], features: list[str],
                         out: str | Path) -> None:
    """Refuse, before an episode is recorded, steps another shape than the stored ones (a
    camera in another mode, another ``image_size``): they could not join the dataset."""
    shapes = buffer.step_shapes
    for key in features:
        if key in shapes:
            stored, now = shapes[key], tuple(np.shape(observation[key]))
            if stored != now:
                raise ConfigError(f"{out}: {key!r} is stored as {stored} per step, the robot now gives {now} "
                                  f"(another camera mode or image_size?): choose another out")


def _column(values: list[np.ndarray]) -> np.ndarray:
    """One key's steps stacked: camera frames stay uint8, everything else float32."""
    column = np.asarray(values)
    return column if is_image(column.shape[1:], column.dtype) else column.astype(np.float32)


def open_dataset(out: str | Path, robot: Robot, fps: float, format: str = "zarr") -> EpisodeSink:
    """``out`` for appending when it exists (same robot, rate and format), else a new dataset."""
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}: choose one of {', '.join(FORMATS)}")
    from robo_policies.data.lerobot.writer import LeRobotWriter  # pyarrow and PyAV only when needed

    out = Path(out)
    if out.exists() and format == "zarr" and is_lerobot_dir(out):
        raise ConfigError(f"{out} is a LeRobot dataset directory (it has meta/info.json): record into it with "
                          f"format=lerobot, or choose another out")
    if out.exists() and format == "lerobot" and not is_lerobot_dir(out):
        raise ConfigError(f"{out} exists and is not a LeRobot dataset directory (no meta/info.json; a zarr "
                          f"dataset is recorded into with format=zarr): choose another out")
    if out.exists():
        buffer: EpisodeSink = LeRobotWriter.open(out) if format == "lerobot" else ReplayBuffer.open(out, mode="a")
        attrs = buffer.attrs
        if attrs.get("robot") != robot.name or not math.isclose(attrs.get("fps") or 0.0, fps):
            raise ConfigError(f"{out} holds robot {attrs.get('robot')!r} at {attrs.get('fps')} Hz, not "
                             f"{robot.name!r} at {fps:g} Hz: choose another out")
        return buffer
    out.parent.mkdir(parents=True, exist_ok=True)
    attrs = {"robot": robot.name, "fps": fps, "action_names": robot.action_names, "source": DATASET_SOURCE}
    if format == "lerobot":
        return LeRobotWriter(out, fps=fps, attrs=attrs)
    return ReplayBuffer.create(out, attrs=attrs)
