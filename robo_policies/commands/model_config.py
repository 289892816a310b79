"""Settings of the commands that train or load a model: ``robo train``, ``eval``, ``compose``,
``finetune`` and ``deploy``.

They hold the policy's, the warm start's and the RL methods' typed configs, whose modules
import torch, so they live apart from ``config.py``: ``compose_config`` imports this module
only for these commands, and ``robo --help`` or ``robo collect`` start without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from robo_policies.commands.config import TaskConfig, compose_config, store_settings
from robo_policies.heads import HeadConfig
from robo_policies.policy import PolicyConfig
from robo_policies.rl.config import RLConfig
from robo_policies.sampling.warmstart import WarmStartConfig
from robo_policies.train.config import TrainConfig
from robo_policies.utils.errors import ConfigError


@dataclass
class TrainRunConfig:
    """Settings of ``robo train``."""

    defaults: list = field(
        default_factory=lambda: ["_self_", {"task": None}, {"policy": "diffusion"}, {"train": "cpu"}]
    )
    task: TaskConfig = field(default_factory=lambda: TaskConfig(name=""))
    """Task group: task=<name> trains on data/<name>.zarr when no dataset is given. Optional: a
    dataset names its own task (attrs task, read by evaluation), and one converted from
    elsewhere needs none."""
    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(head=HeadConfig()))
    """Policy group: policy=diffusion | flow | energy | mlp_bc | diffusion_dp_paper (configs/policy/);
    the head's own settings are policy.head.<field> (e.g. policy.head.solver=heun with
    policy=flow; robo_policies/heads/<head>.py)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation group: train=cpu | dp_paper (configs/train/)."""
    dataset: str = ""
    """Training dataset (.zarr; convert other formats with `robo dataset convert`); empty:
    data/<task>.zarr."""
    out: str = ""
    """Run directory: checkpoints/, checkpoint/ (final policy), tensorboard/, curve.png; empty:
    outputs/train/<task, else the dataset's name>_<head>."""
    seed: int = 0
    """Seeds the episode split, initial weights, batch sampling and diffusion noise."""
    resume: bool = False
    """Continue from `out`'s last checkpoint with the same step count and schedule."""
    progress: bool = True
    """Show a progress bar."""


def train_run_config(overrides: list[str]) -> DictConfig:
    """``robo train``'s settings composed with ``overrides``, with an empty ``dataset`` and
    ``out`` filled in (see their docs) and no ``task`` when none was named, so the saved run
    config names what was trained on and no task that was not used."""
    cfg = compose_config("train", overrides)
    task = cfg.task.name
    if not cfg.dataset:
        if not task:
            raise ConfigError("dataset=<path.zarr> is required (or task=<name> to train on data/<name>.zarr)")
        cfg.dataset = f"data/{task}.zarr"
    if not cfg.out:
        cfg.out = f"outputs/train/{task or Path(cfg.dataset).stem}_{cfg.policy.head.name}"
    if not task:
        with open_dict(cfg):
            del cfg["task"]
    return cfg


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
    threads: int = 0
    """torch CPU threads (0: every core the process may use but one; utils/threads.py)."""
    num_envs: int = 1
    """Episodes run at once, each in its own env, with one batched policy call for all of
    them; every episode keeps its seed and its own sampling noise, so the results are those
    of num_envs=1 (robo finetune: its periodic evaluations)."""


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
    and runs normally (as ros2_control does); 0: do not try. The loop's waits sleep (the bus's
    wait for a reply too), so it does not starve the kernel work that delivers the servos'
    replies; on a fake bus losing every 7th reply both 50 and 0 completed 20 of 20 deploys,
    50 with no late tick, 0 with ticks up to 78 ms late (README, "Lossy servo bus")."""
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


store_settings({"train": TrainRunConfig, "eval": EvalRunConfig, "compose": ComposeConfig,
                "finetune": FinetuneConfig, "deploy": DeployConfig})  # MODEL_COMMANDS in config.py
