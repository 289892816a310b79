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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from robo_policies.heads import HeadConfig
from robo_policies.policy import PolicyConfig
from robo_policies.utils.plugins import plugin_config_dirs
from robo_policies.rl.config import RLConfig
from robo_policies.robots.keyboard import DriveSettings
from robo_policies.sampling.warmstart import WarmStartConfig
from robo_policies.train.config import TrainConfig

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
class TrainRunConfig:
    """Settings of ``robo train``."""

    defaults: list = field(
        default_factory=lambda: ["_self_", {"task": "diffdrive_nav"}, {"policy": "diffusion"},
                                 {"train": "cpu"}]
    )
    task: TaskConfig = field(default_factory=TaskConfig)
    """Task group: task=<name>; names the default dataset (evaluation reads the dataset's task)."""
    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(head=HeadConfig()))
    """Policy group: policy=diffusion | flow | energy | mlp_bc | diffusion_dp_paper (configs/policy/);
    the head's own settings are policy.head.<field> (e.g. policy.head.solver=heun with
    policy=flow; robo_policies/heads/<head>.py)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation group: train=cpu | dp_paper (configs/train/)."""
    dataset: str = "data/${task.name}.zarr"
    """Training dataset (.zarr; convert other formats with `robo dataset convert`)."""
    out: str = "outputs/train/${task.name}_${policy.head.name}"
    """Run directory: checkpoints/, checkpoint/ (final policy), tensorboard/, curve.png."""
    seed: int = 0
    """Seeds the episode split, initial weights, batch sampling and diffusion noise."""
    resume: bool = False
    """Continue from `out`'s last checkpoint with the same step count and schedule."""
    progress: bool = True
    """Show a progress bar."""


def sampling_settings() -> DictConfig:
    """The ``sampling`` node of ``robo eval``/``compose``/``finetune``/``deploy``: an open mapping
    (keys need no ``+``) checked when the policy loads (``PolicyConfig.with_overrides``)."""
    return OmegaConf.create({}, flags={"struct": False})


@dataclass
class RolloutConfig:
    """Where and how saved policies are rolled out: shared by ``robo eval`` and ``robo compose``."""

    defaults: list = field(default_factory=lambda: ["_self_", {"task": None}])
    episodes: int = 50
    """Evaluation episodes; episode i resets with seed+i."""
    task: Optional[TaskConfig] = None
    """Task group: task=<name> to evaluate on (default: the policy's training task)."""
    env: dict = field(
        default_factory=lambda: {"id": None, "kwargs": {}, "import": None, "obs_map": {}}
    )
    """A Gymnasium env instead of a task: env.id=<id>, env.kwargs, env.import=<module that
    registers it>, env.obs_map={policy_key: env_key}."""
    max_steps: int = 0
    """Episode step limit (0: the task's horizon or the env's TimeLimit)."""
    sampling: Dict[str, Any] = field(default_factory=sampling_settings)
    """Sampling settings to change at evaluation (the network weights stay the same):
    sampling.<field>=value for any field of the saved policy's config or of its head's, e.g.
    sampling.inference_steps=100, sampling.n_action_steps=1, sampling.scheduler=ddpm
    (diffusion), sampling.solver=heun (flow), sampling.best_of=4 (energy). A key the policy
    and its head lack is an error naming the valid ones; a composition passes each key to the
    parents that have it."""
    sampler: str = "full"
    """full: every model call solves from noise; rti: the first call of an episode does, later
    calls warm-start from the previous chunk shifted by the executed actions (settings rti.*)."""
    rti: WarmStartConfig = field(default_factory=lambda: WarmStartConfig())
    """RTI warm start (sampler=rti): rti.steps, rti.start_noise, rti.calibrate, rti.discrete_dims."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class EvalRunConfig(RolloutConfig):
    """Settings of ``robo eval``."""

    checkpoint: str = ""
    """A saved policy or composition directory, or a run directory (its checkpoint/ is used)."""
    seed: int = 100000
    """First evaluation seed (far from `robo collect`'s seeds, so test episodes are unseen)."""
    out: str = ""
    """Where eval.json and rollout.mp4 go (default: the run directory, or the policy dir)."""
    video_episodes: int = 2
    """Episodes recorded into rollout.mp4 (0: no video)."""


@dataclass
class ComposeConfig(RolloutConfig):
    """Settings of ``robo compose`` (GPC weight search; see robo_policies/sampling/)."""

    checkpoints: list = field(default_factory=list)
    """Parent policies to compose (saved policy or run directories), in order: the first leads
    the shared solver (its time grid, solver and steps)."""
    search: str = "grid"
    """Weight search: grid (every weight vector with spacing `step`) or coarse_to_fine (the
    grid at `coarse_step`, then the `step` grid closer than `coarse_step` to its best)."""
    step: float = 0.1
    """Spacing of the weight grid; 1/step must be a whole number (2 parents, 0.1: 11 vectors)."""
    coarse_step: float = 0.2
    """coarse_to_fine: spacing of the first pass; 1/coarse_step must be whole, and coarse_step a
    whole multiple of `step`."""
    episodes: int = 20
    """Validation episodes per weight vector (the same seeds for every vector)."""
    val_seed: int = 200000
    """First validation seed: episode i resets with val_seed+i. Disjoint from `robo eval`'s
    test seeds (100000 on) and `robo collect`'s (0 on), so weights are not chosen on test episodes."""
    out: str = "outputs/compose"
    """search.json and search.md (every weight vector's success and episode length) and
    checkpoint/, the best composition (`robo eval checkpoint=<out>` evaluates it)."""


@dataclass
class FinetuneConfig(RolloutConfig):
    """Settings of ``robo finetune`` (online RL in simulation; see robo_policies/rl/)."""

    defaults: list = field(default_factory=lambda: ["_self_", {"task": None}, {"algo": "expo"}, {"rl": "cpu"}])
    checkpoint: str = ""
    """The trained policy to fine-tune (a saved policy or a run directory)."""
    algo: str = "expo"
    """expo (edit policy + argmax-Q over base samples), parl (PA-RL: critic-optimised actions
    distilled with the policy's own loss), rlpd (SAC baseline with a Gaussian actor, no
    pre-training), imitation (the base policy keeps imitating the demonstrations: control) or a
    plugin's algorithm (robo_policies/rl/registry.py). It chooses the settings under rl."""
    env_steps: int = 50000
    """Environment steps of online interaction."""
    out: str = "outputs/finetune/${algo}"
    """Run directory: checkpoint/ (robo eval loads it), curve.json, curve.png, summary.json,
    tensorboard/, rollout.mp4, config.yaml."""
    seed: int = 0
    """Seeds the training episodes, the networks and every sample."""
    dataset: str = ""
    """Demonstrations mixed into every batch (default: the policy's training dataset)."""
    eval_every: int = 5000
    """Evaluate (and checkpoint) every this many env steps, and at step 0."""
    eval_seed: int = 100000
    """First evaluation seed; every evaluation uses the same `episodes` seeds from here."""
    resume: bool = False
    """Continue the run in `out` from its checkpoint (after a kill)."""
    video_episodes: int = 2
    """Episodes of the final policy recorded into rollout.mp4 (0: none)."""
    rl: RLConfig = field(default_factory=RLConfig)
    """The algo's settings: the shared ones below plus its own (its config class in
    robo_policies/rl/<algo>.py); presets rl=cpu (default) | expo_paper | parl_paper |
    rlpd_paper (configs/rl/, each for its algo)."""


@dataclass
class DeployConfig:
    """Settings of ``robo deploy``."""

    robot: str = ""
    """Robot name (see `robo robot list`) or a robot.yaml path."""
    checkpoint: str = ""
    """A saved policy or a run directory (its checkpoint/ is used)."""
    sim: bool = False
    """Run on the robot's MuJoCo twin instead of the hardware (same loop and safety chain)."""
    port: str = ""
    """Serial port of the robot's bus (default: the one in its config)."""
    hz: float = 0.0
    """Control loop rate (10-50 Hz typical; 0: the policy's own rate). Between policy steps the
    loop repeats the present action."""
    policy_hz: float = 0.0
    """Rate the policy was trained at (0: its task's control rate)."""
    episodes: int = 1
    """Episodes to run; a twin's episode i resets with seed+i and ends on success or the
    task's horizon."""
    duration_s: float = 30.0
    """Hardware: seconds per episode."""
    seed: int = 100000
    """First episode seed (the same as `robo eval`'s, so success rates compare)."""
    out: str = "outputs/deploy"
    """Where deploy.json and config.yaml go."""
    realtime: bool = True
    """Twin only: false runs as fast as possible and waits for every chunk (reproducible)."""
    lead_steps: int = 2
    """Ask for the next chunk when this many policy steps of the present one are left."""
    threads: int = 1
    """Torch threads for inference (the loop needs a core of its own)."""
    rt_priority: int = 50
    """Real-time loops run their thread under SCHED_FIFO at this priority (1-99), so other
    processes cannot delay its ticks; without root, CAP_SYS_NICE or an rtprio limit it warns
    and runs normally (as ros2_control does); 0: do not try."""
    sampling: Dict[str, Any] = field(default_factory=sampling_settings)
    """Sampling settings to change at deployment: sampling.<field>=value for any field of the
    policy's config or its head's (e.g. sampling.inference_steps=5), as in robo eval."""
    sampler: str = "full"
    """full: every chunk is solved from noise; rti: from the previous chunk, shifted by the
    policy steps between the two observations, in rti.steps steps."""
    rti: WarmStartConfig = field(default_factory=lambda: WarmStartConfig())
    """RTI warm start (sampler=rti): rti.steps, rti.start_noise, rti.calibrate, rti.discrete_dims."""
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
class RobotSetupMotorsConfig(RobotToolConfig):
    """Settings of ``robo robot setup-motors``."""

    latency_ms: float = 16.0
    """The USB adapter's latency timer (ms). Each of the 253 ids of a scan waits about twice this
    when silent: ~9 s per scan at 16 ms (the Linux FTDI default), ~1 s at 1 ms."""


@dataclass
class RobotTeleopConfig(RobotToolConfig):
    """Settings of ``robo robot teleop``."""

    hz: float = 20.0
    """Command rate (Hz); every command goes through the robot's safety chain."""
    duration_s: float = 0.0
    """Stop after this many seconds (0: until Esc)."""
    drive: DriveSettings = field(default_factory=DriveSettings)
    """What one key press does."""


@dataclass
class RecordConfig(RobotToolConfig):
    """Settings of ``robo record``."""

    out: str = ""
    """Dataset (.zarr directory); an existing one is appended to (same robot and fps)."""
    episodes: int = 1
    """Episodes to record in this session."""
    fps: float = 10.0
    """Control and recording rate (Hz): one stored step per command."""
    episode_s: float = 30.0
    """Seconds per episode (Enter ends one early)."""
    drive: DriveSettings = field(default_factory=DriveSettings)
    """What one key press does."""


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


def _register() -> None:
    store = ConfigStore.instance()
    store.store(name="collect", node=CollectConfig)
    store.store(name="train", node=TrainRunConfig)
    store.store(name="eval", node=EvalRunConfig)
    store.store(name="compose", node=ComposeConfig)
    store.store(name="demo", node=DemoConfig)
    store.store(name="finetune", node=FinetuneConfig)
    store.store(name="deploy", node=DeployConfig)
    store.store(name="robot_setup_motors", node=RobotSetupMotorsConfig)
    store.store(name="robot_calibrate", node=RobotToolConfig)
    store.store(name="robot_check", node=RobotToolConfig)
    store.store(name="robot_teleop", node=RobotTeleopConfig)
    store.store(name="record", node=RecordConfig)
    store.store(name="bench_inference", node=BenchInferenceConfig)
    store.store(name="bench_train", node=BenchTrainConfig)


_register()


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Compose config ``name`` with Hydra-style ``key=value`` overrides, resolved; the
    plugins' ``configs/`` folders (``utils.plugins``) are searched after the built-in ones."""
    extra = [f"file://{path}" for path in plugin_config_dirs()]
    if extra:
        overrides = [*overrides, f"hydra.searchpath=[{','.join(extra)}]"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg


def config_help(schema: Any, prefix: str = "") -> str:
    """One line per setting, ``key=default  doc``; nested dataclasses give dotted keys."""
    docs = field_docs(schema if isinstance(schema, type) else type(schema))
    lines = []
    for item in dataclasses.fields(schema):
        if item.name == "defaults":
            continue
        default = getattr(schema, item.name, None)
        if default is None and item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        if dataclasses.is_dataclass(default):
            lines.append(f"  {prefix}{item.name}: {docs.get(item.name, '')}")
            lines.append(config_help(default, prefix=f"{prefix}{item.name}."))
        else:
            lines.append(f"  {prefix}{item.name}={default}  {docs.get(item.name, '')}")
    return "\n".join(lines)
