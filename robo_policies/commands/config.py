"""Typed run configs composed by Hydra, with the help text kept beside each field.

Every command's settings are one dataclass. Each field has a docstring under it, from which
``robo <command> --help`` is generated, so documentation and defaults live in one place.
Hydra composes the dataclass (registered in its ConfigStore) with the YAML groups under
``configs/`` (``task/...``) and the command line's ``key=value`` overrides; a misspelt key is
an error, not a silently ignored setting.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from importlib import import_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from robo_policies.robots.cameras.registry import CameraConfig
from robo_policies.robots.keyboard import DriveSettings
from robo_policies.utils.plugins import plugin_config_dirs

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def field_docs(schema: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (cleanrl-style settings docs)."""
    docs: dict[str, str] = {}
    for klass in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, following in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


@dataclass
class TaskConfig:
    """Which task to build; chosen with ``task=<name>`` from ``configs/task/``."""

    name: str = "diffdrive_nav"
    """Registered task name (see `robo tasks`)."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments for the task's env constructor."""


@dataclass
class CollectConfig:
    """Settings of ``robo collect``."""

    defaults: list = field(default_factory=lambda: ["_self_", {"task": "diffdrive_nav"}])
    task: TaskConfig = field(default_factory=TaskConfig)
    """Task group: task=<name> (configs/task/<name>.yaml)."""
    episodes: int = 50
    """Number of successful demonstrations to save."""
    out: str = "data/${task.name}.zarr"
    """Output dataset (.zarr directory)."""
    seed: int = 0
    """Attempt k resets the env with seed+k."""
    action_noise: float = 0.0
    """Std of Gaussian noise added to executed actions, as a fraction of each action's
    half-range; `action` keeps the expert's clean label, `executed_action` what was sent."""
    noisy_labels: bool = False
    """Store the noisy executed action as the label (`action`) too, like a shaky teleoperator,
    instead of the expert's clean label."""
    keep_failed: bool = False
    """Also save failed attempts (marked in meta/success)."""
    max_attempts: int = 0
    """Give up after this many attempts (0: 2*episodes + 10)."""
    overwrite: bool = False
    """Replace an existing dataset at `out`."""
    resume: bool = False
    """Append to an existing dataset at `out` until it holds `episodes`."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class RobotToolConfig:
    """Settings of ``robo robot calibrate`` and ``robo robot check`` (and of every command on one robot)."""

    robot: str = ""
    """Robot name (see `robo robot list`) or a robot.yaml path."""
    port: str = ""
    """Serial port of the robot's bus (default: the one in its config; `robo robot find-port` names it)."""


@dataclass
class RobotCheckConfig(RobotToolConfig):
    """Settings of ``robo robot check``."""

    move: bool = False
    """Power the robot and send commands: the hold, a NaN the chain must refuse and one small
    step (default: read only, torque off, the commands are dry runs through the chain)."""
    move_step: float = 0.05
    """The step of move=true on the first command dimension: rad for a joint, rad/s for a wheel."""


@dataclass
class CameraToolConfig(CameraConfig):
    """Settings of ``robo camera snap`` and ``robo camera check``: a robot's cameras by name
    (``robot=``, ``camera=``), or one camera described by the settings below them."""

    robot: str = ""
    """Robot whose cameras (its robot.yaml ``cameras:``) to use; empty: the camera settings here."""
    camera: str = ""
    """The camera's name on ``robot`` (check: every camera when empty)."""


@dataclass
class CameraSnapConfig(CameraToolConfig):
    """Settings of ``robo camera snap``."""

    out: str = "frame.png"
    """Image file to write (PNG or JPEG by suffix)."""


@dataclass
class CameraCheckConfig(CameraToolConfig):
    """Settings of ``robo camera check``."""

    seconds: float = 3.0
    """How long to read each camera."""
    read_hz: float = 50.0
    """How often to read, as the control loop would."""
    out: str = "outputs/camera_check.json"
    """JSON file for the per-camera report."""


@dataclass
class RobotSetupMotorsConfig(RobotToolConfig):
    """Settings of ``robo robot setup-motors``."""

    latency_ms: float = 16.0
    """The USB adapter's latency timer (ms). Each of the 253 ids of a scan waits about twice this
    when silent: ~9 s per scan at 16 ms (the Linux FTDI default), ~1 s at 1 ms."""


@dataclass
class TeleopSourceConfig(RobotToolConfig):
    """What drives the robot in ``robo robot teleop`` and ``robo record``."""

    teleop: str = "keyboard"
    """keyboard (the robot kind's keys), leader (a leader arm moved by hand: ``leader=``) or
    gamepad (a wheeled base, ``gamepad=``: hold LB, left stick drives, right stick turns)."""
    leader: str = ""
    """teleop=leader: the leader arm's robot name or robot.yaml (e.g. so101_leader), read only."""
    leader_port: str = ""
    """teleop=leader: the leader's serial port (default: the one in its config)."""
    gamepad: str = "/dev/input/js0"
    """teleop=gamepad: the Linux joystick device."""


@dataclass
class RobotTeleopConfig(TeleopSourceConfig):
    """Settings of ``robo robot teleop``."""

    hz: float = 20.0
    """Command rate (Hz); every command goes through the robot's safety chain."""
    duration_s: float = 0.0
    """Stop after this many seconds (0: until Esc)."""
    drive: DriveSettings = field(default_factory=DriveSettings)
    """What one key press does."""


@dataclass
class RecordConfig(TeleopSourceConfig):
    """Settings of ``robo record``."""

    out: str = ""
    """Dataset (.zarr directory, or a LeRobot directory with format=lerobot); an existing one is
    appended to (same robot, fps and format)."""
    format: str = "zarr"
    """zarr (a ReplayBuffer) or lerobot (a LeRobotDataset v3.0 directory: a parquet and an mp4 per
    camera per episode; LeRobot's loader and ``robo train dataset=<dir>`` read it)."""
    episodes: int = 1
    """Episodes to record in this session."""
    fps: float = 10.0
    """Control and recording rate (Hz): one stored step per command."""
    episode_s: float = 30.0
    """Seconds per episode (Enter ends one early)."""
    task: str = ""
    """What the episodes do, e.g. task="pick the cube" (kept per episode: attrs tasks, meta/task_index)."""
    image_size: int = 0
    """Store camera frames as squares of this side (84: what the image recipes train on),
    centre cropped and shrunk as ``robo deploy`` feeds a policy; 0: as the cameras deliver them."""
    drive: DriveSettings = field(default_factory=DriveSettings)
    """What one key press does."""


@dataclass
class ReplayConfig(RobotToolConfig):
    """Settings of ``robo replay``."""

    dataset: str = ""
    """A dataset recorded with ``robo record`` on this robot."""
    episode: int = 0
    """Which episode to replay (0 is the first)."""
    fps: float = 0.0
    """Rate of the replay (Hz); 0: the rate it was recorded at."""


@dataclass
class DemoConfig:
    """Settings of ``robo demo`` (per-task recipes: configs/recipe/<task>.yaml)."""

    tasks: list = field(default_factory=lambda: ["diffdrive_nav", "arm_pick_place"])
    """Tasks to collect, train and evaluate, in order."""
    head: str = "diffusion"
    """Policy head trained on every task (diffusion, flow, energy or mlp_bc)."""
    baseline: str = "mlp_bc"
    """Extra policy head trained on `baseline_tasks` for comparison ("" for none)."""
    baseline_tasks: list = field(default_factory=lambda: ["diffdrive_nav"])
    """Tasks that also get the baseline."""
    out: str = "outputs/demo"
    """Run directories (<out>/<task>/), results.json and results.md."""
    data: str = "data/demo"
    """Where the demonstrations are collected."""
    eval_episodes: int = 50
    """Evaluation episodes per policy."""
    train_steps: int = 0
    """Training steps per policy (0: each recipe's; small values make a quick smoke run)."""
    demos: int = 0
    """Demonstrations per task (0: each recipe's)."""
    eval_seed: int = 100000
    """First evaluation seed (collection uses seed, seed+1, ...)."""
    seed: int = 0
    """Collection and training seed."""
    jobs: int = 0
    """Runs (collections, trainings with their evaluations) at once, each in a worker process
    with one torch thread; 0: one per available core; 1: one after another in this process
    (with progress bars)."""
    progress: bool = True
    """Show progress bars."""


@dataclass
class BenchInferenceConfig:
    """Settings of ``robo bench inference``."""

    out: str = "outputs/bench/inference.json"
    """JSON file for the records (head, sampler, steps, nfe, threads, model, ms_p50, ms_p95)."""
    models: list = field(default_factory=lambda: ["mlp", "unet", "unet_dp"])
    """Backbones: mlp (demo default), unet (small default), unet_dp (diffusion_policy size)."""
    threads: list = field(default_factory=lambda: [1, 2])
    """Torch intra-op thread counts to time."""
    calls: int = 20
    """Timed model calls per configuration (after 3 warm-up calls)."""


@dataclass
class BenchTrainConfig:
    """Settings of ``robo bench train``."""

    out: str = "outputs/bench/train.json"
    """JSON file for the records (head, samples_per_obs, obs, obs_per_s, denoise_samples_per_s, peak_mem_mb)."""
    heads: list = field(default_factory=lambda: ["diffusion", "flow", "energy"])
    """Heads to time."""
    samples_per_obs: list = field(default_factory=lambda: [1, 4, 16, 64])
    """M values: noisy copies per encoded observation."""
    obs: list = field(default_factory=lambda: ["low_dim", "image"])
    """Observation kinds: low_dim (state vectors) and image (adds an 84x84 camera)."""
    model: str = "mlp"
    """Backbone: mlp, unet or unet_dp."""
    batch_size: int = 32
    """Observations per optimiser step."""
    steps: int = 10
    """Timed optimiser steps per configuration (after 2 warm-up steps)."""
    threads: int = 2
    """Torch intra-op threads."""


def store_settings(settings: dict[str, type]) -> None:
    """Register each command's settings class in Hydra's ConfigStore under the command's name."""
    for name, schema in settings.items():
        ConfigStore.instance().store(name=name, node=schema)


store_settings({
    "collect": CollectConfig, "demo": DemoConfig, "robot_setup_motors": RobotSetupMotorsConfig,
    "robot_calibrate": RobotToolConfig, "robot_check": RobotCheckConfig,
    "robot_teleop": RobotTeleopConfig, "record": RecordConfig, "replay": ReplayConfig,
    "bench_inference": BenchInferenceConfig, "bench_train": BenchTrainConfig,
    "camera_snap": CameraSnapConfig, "camera_check": CameraCheckConfig,
})


MODEL_COMMANDS = ("train", "eval", "compose", "finetune", "deploy")
"""Commands whose settings hold a policy's, a warm start's or an RL method's typed config:
they live in ``model_config.py``, imported only when one of them runs or shows its help, so
the other commands start without torch."""


def settings_class(name: str) -> type:
    """The settings class called ``name`` (e.g. ``"TrainRunConfig"``), wherever it lives."""
    if name in globals():
        return globals()[name]
    return getattr(import_module("robo_policies.commands.model_config"), name)


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose config ``name`` with Hydra-style ``key=value`` overrides, resolved; the
    plugins' ``configs/`` folders (``utils.plugins``) are searched after the built-in ones."""
    if name in MODEL_COMMANDS:
        import_module("robo_policies.commands.model_config")  # registers them (imports torch)
    extra = [f"file://{path}" for path in plugin_config_dirs()]
    if extra:
        overrides = [*overrides, f"hydra.searchpath=[{','.join(extra)}]"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg


def config_help(schema: Any, prefix: str = "", skip: frozenset[str] = frozenset({"defaults"})) -> str:
    """One line per setting, ``key=default  doc``; nested dataclasses give dotted keys. A
    nested config whose class has ``help_variants()`` (the action head's) also lists the
    settings of each variant it can become."""
    docs = field_docs(schema if isinstance(schema, type) else type(schema))
    lines = []
    for item in dataclasses.fields(schema):
        if item.name in skip:
            continue
        default = getattr(schema, item.name, None)
        if default is None and item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        if dataclasses.is_dataclass(default):
            lines.append(f"  {prefix}{item.name}: {docs.get(item.name, '')}")
            lines.append(config_help(default, prefix=f"{prefix}{item.name}."))
            for variant, variant_schema in getattr(default, "help_variants", dict)().items():
                shared = frozenset(field.name for field in dataclasses.fields(default))
                own = config_help(variant_schema, prefix=f"{prefix}{item.name}.", skip=shared)
                lines.append(f"  {prefix}{item.name} of {variant}:{'' if own else ' no settings of its own'}")
                lines.extend([own] if own else [])
        else:
            lines.append(f"  {prefix}{item.name}={default}  {docs.get(item.name, '')}")
    return "\n".join(lines)
