"""The user-facing policy: normaliser + observation encoder + action head + action queue.

``Policy`` is the method side of the library: it knows observation keys and shapes, never
tasks. At run time it keeps the last ``n_obs_steps`` observations and a queue of actions;
the model runs only when the queue is empty, predicting ``horizon`` actions of which
``n_action_steps`` are executed (diffusion_policy's convention: execution starts at the
latest observation's index, ``n_obs_steps - 1``).

A saved policy is a directory: ``model.safetensors`` (weights, normaliser included),
optionally ``ema.safetensors`` (the exponential moving average used for evaluation), and
``config.yaml`` (the resolved config, shapes and SHA-256 of each weights file). Loading
needs nothing else and unpickles nothing; a missing or modified file is an error naming it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from robo_policies.utils.atomic import atomic_output
from robo_policies.utils.checksums import sha256_of
from robo_policies.utils.errors import CheckpointError, ConfigError, missing_observation_keys
from robo_policies.data.normalizer import Normalizer, apply_affine, invert_affine
from robo_policies.data.replay_buffer import is_image
from robo_policies.heads import HeadConfig, build_head, head_config
from robo_policies.heads.base import Generators
from robo_policies.heads.registry import config_fields

if TYPE_CHECKING:  # the warm start sits above the policy (sampling/) and is handed to it
    from robo_policies.sampling.warmstart import WarmStart

@dataclass
class PolicyConfig:
    """Architecture and sampling settings of a policy (``configs/policy/*.yaml``): what every
    head shares, and ``head``, the chosen head's own config."""

    head: HeadConfig = field(default_factory=lambda: head_config("diffusion"))
    """Action head and its own settings (``policy.head.<field>``), chosen by the preset
    (``policy=diffusion``, ``flow``, ``energy``, ``mlp_bc`` or a plugin's; ``heads.registry``).
    Given as a name or a mapping with ``name``, it becomes that head's config."""
    net: str = "unet"
    """Backbone of a generative head: ``unet`` (ConditionalUnet1D) or ``mlp`` (MLP-ResNet)."""
    samples_per_obs: Optional[int] = None
    """M: noisy copies of each action chunk trained per encoded observation (mini-batched
    denoising, after Mini-Diffuser): the encoder runs once, the head sees B*M samples.
    Unset (null): 1 for low-dim policies, 8 for policies with cameras, whose image encoder
    dominates a step; the saved policy's config.yaml holds the value used."""
    n_obs_steps: int = 2
    """To: observations the policy conditions on."""
    horizon: int = 16
    """Tp: actions predicted per model call."""
    n_action_steps: int = 8
    """Ta: actions executed per model call."""
    obs_keys: list[str] = field(default_factory=list)
    """Observation keys to use; empty: every dataset key but actions, rewards, bookkeeping,
    next-step copies (next_*) and the arrays the dataset's attrs non_input_keys lists
    (robo_policies/data/observation_keys.py)."""
    discrete_action_dims: Optional[list[int]] = None
    """Action dimensions that only take their two ends (a gripper), which sampler=rti snaps;
    unset (null): the dataset's attrs discrete_action_dims, else its task's, else none. The
    saved policy's config.yaml holds the dims used."""
    down_dims: list[int] = field(default_factory=lambda: [64, 128, 256])
    """UNet channels per level."""
    kernel_size: int = 5
    """UNet convolution width."""
    hidden_dim: int = 256
    """MLP width (MLP denoiser and mlp_bc)."""
    n_blocks: int = 3
    """MLP residual blocks."""
    time_dim: int = 64
    """Size of the diffusion-step embedding."""
    image_feature_dim: int = 64
    """Features per camera image from the image encoder."""
    encoder: str = "cnn"
    """Image encoder: cnn (small, CPU-sized) or resnet18 (diffusion_policy's ResNet-18 with
    GroupNorm, ~11 M parameters each); nets/encoders.py: IMAGE_ENCODERS."""
    shared_encoder: bool = False
    """One image encoder for all cameras instead of one per camera (each camera's features
    keep their own place in the conditioning, so the head still tells them apart)."""
    crop_ratio: float = 0.9
    """Image crop side as a fraction of the image's (84 -> 76): a random crop per sample in
    training, the centre crop when acting; 1.0: no crop."""
    color_jitter: float = 0.0
    """Brightness and contrast jitter in training, factors drawn from [1 - j, 1 + j]; 0: off."""
    obs_norm: str = "minmax"
    """Normalisation of low-dimensional observations: minmax, meanstd or identity."""
    action_norm: str = "minmax"
    """Normalisation of actions (diffusion heads expect minmax)."""

    def __post_init__(self) -> None:
        if isinstance(self.head, str):
            self.head = head_config(self.head)
        elif isinstance(self.head, Mapping):
            settings = dict(self.head)
            self.head = head_config(settings.pop("name", ""), **settings)

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> PolicyConfig:
        """The config a saved ``config.yaml`` holds (the old flat layout is migrated, and
        settings it predates take the values it behaved with: ``SETTINGS_ADDED``)."""
        saved = dict(saved)
        if isinstance(saved.get("head"), str):
            saved = migrate_flat_config(saved)
        saved = {**SETTINGS_ADDED, **saved}
        unknown = sorted(set(saved) - {item.name for item in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown policy settings {unknown}")
        return cls(**saved)

    def for_observations(self, has_images: bool) -> PolicyConfig:
        """This config with an unset ``samples_per_obs`` given its default: 8 for a policy
        with cameras, 1 otherwise."""
        if self.samples_per_obs is not None:
            return self
        return dataclasses.replace(self, samples_per_obs=IMAGE_SAMPLES_PER_OBS if has_images else 1)

    def shared_settings(self) -> list[str]:
        """The settings every head shares (this class's fields but ``head``)."""
        return [item.name for item in dataclasses.fields(self) if item.name != "head"]

    def setting_names(self) -> list[str]:
        """Every flat setting ``with_overrides`` takes: the shared ones and the head's."""
        return [*self.shared_settings(), *config_fields(self.head)]

    def with_overrides(self, overrides: Mapping[str, Any]) -> PolicyConfig:
        """This config with flat ``overrides`` (``{"inference_steps": 5, "n_action_steps": 1}``,
        what ``robo eval sampling.*`` and RL pass), each routed to the policy or its head's
        config by name; a key neither has is a ConfigError naming the valid ones."""
        shared, own = self.shared_settings(), config_fields(self.head)
        unknown = sorted(set(overrides) - set(shared) - set(own))
        if unknown:
            raise ConfigError(
                f"{unknown} not settings of a {self.head.name!r} policy; the policy's: {shared}; "
                f"its head's: {own}"
            )
        head = dataclasses.replace(self.head, **{k: v for k, v in overrides.items() if k in own})
        return dataclasses.replace(self, head=head, **{k: v for k, v in overrides.items() if k in shared})


IMAGE_SAMPLES_PER_OBS = 8
"""Default ``samples_per_obs`` of a policy with cameras: the image encoder costs far more than
the head, so 8 noisy chunks per encoding multiply the denoising samples per step nearly for free
(README, mini-batched denoising)."""

SETTINGS_ADDED = {"crop_ratio": 1.0}
"""Settings newer than some saved policies, with the value that keeps such a policy behaving as
it was trained (its encoder did not crop); the other added settings' defaults already do."""


FLAT_HEAD_KEYS = {
    "diffusion": {"train_steps": "train_steps", "inference_steps": "inference_steps",
                  "scheduler": "scheduler", "prediction": "prediction"},
    "flow": {"inference_steps": "inference_steps", "flow_solver": "solver",
             "flow_time_sampling": "time_sampling"},
    "energy": {"inference_steps": "inference_steps", "energy_min_grad_norm": "min_grad_norm",
               "energy_train_steps": "train_steps", "energy_step_size": "step_size",
               "energy_max_step_size": "max_step_size", "energy_langevin_sigma": "langevin_sigma",
               "energy_best_of": "best_of"},
    "mlp_bc": {},
}
"""Policies saved before heads had their own configs: every head's settings sat at the policy
level (``head`` was a name); per head, the old key of each of its settings."""


def migrate_flat_config(saved: Mapping[str, Any]) -> dict[str, Any]:
    """An old flat policy config (``head: flow``, ``flow_solver: ...``) in today's layout
    (``head: {name: flow, solver: ...}``); the other heads' settings it carried are dropped."""
    name = saved["head"]
    if name not in FLAT_HEAD_KEYS:
        raise ConfigError(f"unknown policy head {name!r} in a flat (old) policy config")
    old_keys = {key for keys in FLAT_HEAD_KEYS.values() for key in keys}
    migrated = {key: value for key, value in saved.items() if key not in old_keys}
    migrated["head"] = {"name": name, **{new: saved[old] for old, new in FLAT_HEAD_KEYS[name].items()
                                         if old in saved}}
    return migrated


class NormalizerModule(nn.Module):
    """A :class:`Normalizer` held as buffers, so it is saved inside the policy's weights."""

    def __init__(self, dims: Mapping[str, int], normalizer: Normalizer | None = None) -> None:
        super().__init__()
        self.keys = list(dims)
        self._index = {key: index for index, key in enumerate(self.keys)}
        for index, key in enumerate(self.keys):
            identity = (np.ones(dims[key]), np.zeros(dims[key]))
            scale, offset = normalizer.params[key] if normalizer else identity
            self.register_buffer(f"scale_{index}", torch.as_tensor(scale, dtype=torch.float32))
            self.register_buffer(f"offset_{index}", torch.as_tensor(offset, dtype=torch.float32))

    def _affine(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        index = self._index[key]
        return self._buffers[f"scale_{index}"], self._buffers[f"offset_{index}"]

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return apply_affine(x, *self._affine(key))

    def unnormalize(self, key: str, y: torch.Tensor) -> torch.Tensor:
        return invert_affine(y, *self._affine(key))


@dataclass(frozen=True)
class ModelCall:
    """One model call as an episode saw it: what ``robo eval`` reports per episode."""

    ms: float
    """Wall time of the whole call (with other episodes in it: the whole batched call)."""
    nfe: int | None
    """Network evaluations the call used (None: a policy that does not say)."""
    episodes: int
    """Episodes the call served (1: a call of its own; more: one batched call)."""


@dataclass
class EpisodeActing:
    """The acting state of one episode: what ``act`` keeps from step to step.

    A policy keeps one for its own episode (``reset``, ``act``); vectorised evaluation keeps
    one per env (``new_episode``) and acts for several at once (``act_batch``).
    """

    generator: torch.Generator
    """The episode's sampling noise."""
    history: deque[dict[str, np.ndarray]]
    """The last ``n_obs_steps`` observations."""
    queue: deque[np.ndarray] = field(default_factory=deque)
    """Actions of the last chunk still to execute."""
    previous: torch.Tensor | None = None
    """The warm start's last normalised chunk (1, Tp, A); None: the next call solves in full."""
    calls: list[ModelCall] = field(default_factory=list)
    """The model calls that served this episode."""


class ActsInEpisodes:
    """How a policy acts step by step: observation history, action queue, sampling noise,
    model-call logs (what ``robo eval`` reports) and an optional warm start.

    Shared by ``Policy`` and ``sampling.composition.ComposedPolicy``; a user provides
    ``config`` (``n_obs_steps``, ``n_action_steps``), ``obs_shapes``, ``predict_chunk`` and
    ``last_nfe``, and calls ``start_acting()`` at the end of ``__init__``.
    """

    config: Any
    obs_shapes: dict[str, tuple[int, ...]]
    warm_starts = True
    """Whether an RTI warm start applies (false for agents that pick among fresh samples)."""
    noise_per_row = True
    """Whether ``predict_chunk(generator=[...])`` draws each observation's noise from its own
    generator (``heads.base.Generators``). If not, ``act_batch`` calls it one episode at a
    time, so that an episode's noise never depends on which others share the call."""

    def start_acting(self) -> None:
        """Set up the acting state: sampling noise from seed 0, empty logs, no warm start."""
        self.generator = torch.Generator().manual_seed(0)
        self.model_call_ms: list[float] = []
        self.model_call_nfe: list[int] = []
        self.warm_start: WarmStart | None = None
        """RTI warm start between model calls (``sampling.warmstart``); None: full solves."""
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the observation history, queued actions and warm start (call at each
        episode start); ``seed`` also restarts the sampling noise, so an episode's actions
        depend on nothing before it."""
        if seed is not None:
            self.generator.manual_seed(seed)
        self.episode = EpisodeActing(self.generator, deque(maxlen=self.config.n_obs_steps))
        """The acting state of the policy's own episode (what ``act`` uses)."""
        if self.warm_start is not None:
            self.warm_start.reset()

    def new_episode(self, seed: int) -> EpisodeActing:
        """The acting state of a new episode whose noise starts from ``seed``; the same as
        ``reset(seed)`` gives the policy's own episode, but one of many (``act_batch``)."""
        return EpisodeActing(torch.Generator().manual_seed(seed), deque(maxlen=self.config.n_obs_steps))

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One action for the current observation; runs the model only when the queue is empty."""
        return self.act_batch([self.episode], [obs])[0]

    def act_batch(
        self, episodes: Sequence[EpisodeActing], observations: Sequence[Mapping[str, np.ndarray]]
    ) -> list[np.ndarray]:
        """One action for each episode's current observation. The episodes whose queue is
        empty share model calls: one for those solving in full and one for those warm-starting
        from their previous chunk (a warm start's step count differs from a full solve's)."""
        for episode, obs in zip(episodes, observations, strict=True):
            require_observation_keys(obs, self.obs_shapes, "the observation")
            episode.history.append({key: np.asarray(obs[key]) for key in self.obs_shapes})
        due = [episode for episode in episodes if not episode.queue]
        if self.noise_per_row:
            calls = [[e for e in due if e.previous is None], [e for e in due if e.previous is not None]]
        else:
            calls = [[episode] for episode in due]
        for group in calls:
            if group:
                self._refill(group)
        return [episode.queue.popleft() for episode in episodes]

    def _refill(self, group: Sequence[EpisodeActing]) -> None:
        """One model call for ``group``: queue the executed part of each episode's chunk."""
        windows = [history_batch(list(e.history), self.obs_shapes, self.config.n_obs_steps) for e in group]
        batch = {key: torch.cat([window[key] for window in windows]) for key in self.obs_shapes}
        if self.warm_start is not None:  # the group's previous chunks, all None or all there
            previous = [e.previous for e in group]
            self.warm_start.previous = None if previous[0] is None else torch.cat(previous)
        generators = [e.generator for e in group]
        start = time.perf_counter()
        chunks = self.predict_chunk(batch, generator=generators[0] if len(group) == 1 else generators)
        chunks = chunks.cpu().numpy()
        call = ModelCall((time.perf_counter() - start) * 1000.0, self.last_nfe, len(group))
        self.model_call_ms.append(call.ms)
        self.model_call_nfe.append(call.nfe)
        for row, episode in enumerate(group):
            episode.queue.extend(chunks[row][executed_slice(self.config)])
            episode.calls.append(call)
            if self.warm_start is not None:
                episode.previous = self.warm_start.previous[row:row + 1]


def executed_slice(config: Any) -> slice:
    """The actions of a predicted chunk (Tp long) that are executed: ``[To - 1, To - 1 + Ta)``.

    diffusion_policy's convention: the chunk starts at the oldest observation of the window,
    so execution starts at the latest one. ``config`` is anything with ``n_obs_steps`` and
    ``n_action_steps`` (a ``PolicyConfig``, a composition's config). The one place the rule
    is written: acting, RL's chunk MDP and the robot control loop all use it.
    """
    first = config.n_obs_steps - 1
    return slice(first, first + config.n_action_steps)


def require_observation_keys(obs: Mapping[str, Any], keys: Iterable[str], source: str) -> None:
    """Raise an ``ObservationKeyError`` naming every key of ``keys`` that ``obs`` lacks, what
    the policy reads and what ``source`` provides (a robot without a camera, say)."""
    keys = list(keys)
    missing = [key for key in keys if key not in obs]
    if missing:
        raise missing_observation_keys(missing, keys, list(obs), source)


def history_batch(frames: Sequence[Mapping[str, np.ndarray]], keys: Iterable[str],
                  n_obs_steps: int) -> dict[str, torch.Tensor]:
    """The last ``n_obs_steps`` observations as a batch of one {key: (1, To, ...)}; the first
    is repeated until To are seen (as at an episode's start)."""
    frames = list(frames)[-n_obs_steps:]
    require_observation_keys(frames[-1], keys, "the observation")
    frames = [frames[0]] * (n_obs_steps - len(frames)) + frames
    return {key: torch.as_tensor(np.stack([frame[key] for frame in frames]))[None] for key in keys}


class Policy(ActsInEpisodes, nn.Module):
    """Normaliser + ObservationEncoder + ActionHead, with observation history and action queue.

    Args:
        config: architecture and sampling settings; an unset ``samples_per_obs`` is chosen
            by whether the policy has cameras (``PolicyConfig.for_observations``).
        obs_shapes: per-step shape of each observation key the policy reads; 3-D uint8
            shapes (H, W, C) are camera images, everything else is low-dimensional.
        action_dim: size of one action.
        normalizer: fitted statistics (training); omitted when loading saved weights.
    """

    def __init__(
        self,
        config: PolicyConfig,
        obs_shapes: Mapping[str, tuple[int, ...]],
        image_keys: list[str],
        action_dim: int,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__()
        from robo_policies.nets import ObservationEncoder

        config = config.for_observations(has_images=bool(image_keys))
        if config.samples_per_obs < 1:
            raise ConfigError(f"samples_per_obs must be >= 1, got {config.samples_per_obs}")
        if not 1 <= config.n_action_steps <= config.horizon - config.n_obs_steps + 1:
            raise ConfigError(
                f"n_action_steps={config.n_action_steps} must be in [1, horizon - n_obs_steps + 1"
                f" = {config.horizon - config.n_obs_steps + 1}]"
            )
        out_of_range = [dim for dim in config.discrete_action_dims or () if not 0 <= dim < action_dim]
        if out_of_range:
            raise ConfigError(f"policy.discrete_action_dims {out_of_range} out of range for {action_dim}-D actions")
        self.config = config
        self.obs_shapes = {key: tuple(shape) for key, shape in obs_shapes.items()}
        self.image_keys = sorted(image_keys)
        self.low_dim_keys = sorted(k for k in self.obs_shapes if k not in self.image_keys)
        self.action_dim = action_dim
        dims = {key: math.prod(self.obs_shapes[key]) for key in self.low_dim_keys}
        self.normalizer = NormalizerModule({**dims, "action": action_dim}, normalizer)
        self.encoder = ObservationEncoder(
            low_dim=dims,
            images={k: _chw(self.obs_shapes[k]) for k in self.image_keys},
            n_obs_steps=config.n_obs_steps,
            image_feature_dim=config.image_feature_dim,
            encoder=config.encoder,
            shared_encoder=config.shared_encoder,
            crop_ratio=config.crop_ratio,
            color_jitter=config.color_jitter,
        )
        self.head = build_head(config, action_dim, self.encoder.out_dim)
        self.start_acting()

    @property
    def nfe(self) -> int:
        """Network evaluations per model call at the configured steps (a full solve)."""
        return self.head.nfe

    @property
    def last_nfe(self) -> int:
        """Network evaluations the last model call used (fewer after a warm start)."""
        return self.head.last_nfe

    # -- training -----------------------------------------------------------------------

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Loss on a batch of windows: observation keys (B, To, ...), ``action`` (B, Tp, A).

        Mini-batched denoising: each observation is encoded once and its chunk repeated
        ``samples_per_obs`` times; the head draws independent noise and time per row, and
        its networks treat rows independently, so the copies share nothing but the encoding.
        """
        cond = self.encode(batch)
        action = self.normalizer.normalize("action", batch["action"].float())  # robomimic stores float64
        is_pad = batch.get("action_is_pad")
        copies = self.config.samples_per_obs
        if copies > 1:
            cond, action = cond.repeat_interleave(copies, 0), action.repeat_interleave(copies, 0)
            is_pad = None if is_pad is None else is_pad.repeat_interleave(copies, 0)
        return self.head.loss(cond, action, is_pad)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The training loss (so DistributedDataParallel can wrap the policy)."""
        return self.compute_loss(batch)

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Observation windows (B, To, ...) -> conditioning vector (B, C)."""
        require_observation_keys(obs, self.obs_shapes, "the batch")
        inputs = {
            key: self.normalizer.normalize(key, obs[key].float().flatten(start_dim=2))
            for key in self.low_dim_keys
        }
        inputs.update({key: obs[key] for key in self.image_keys})
        return self.encoder(inputs)

    # -- inference ----------------------------------------------------------------------

    def predict_chunk(self, obs: Mapping[str, torch.Tensor], shift: int | None = None,
                      generator: Generators = None) -> torch.Tensor:
        """Unnormalised action chunks (B, Tp, A) for observation windows (B, To, ...); a warm
        start shifts the previous chunk by ``shift`` steps (default: the Ta executed actions).
        Noise comes from ``generator`` (one, or one per row), default the policy's own."""
        with torch.no_grad() if self.head.samples_with_grad else torch.inference_mode():
            return self._predict_chunk(obs, shift, generator)

    def _predict_chunk(self, obs: Mapping[str, torch.Tensor], shift: int | None,
                       generator: Generators) -> torch.Tensor:
        cond = self.encode(obs)
        shift = self.config.n_action_steps if shift is None else shift
        generator = self.generator if generator is None else generator
        if self.warm_start is None:
            chunk = self.head.sample(cond, generator=generator)
        else:
            chunk = self.warm_start.sample(self.head, cond, generator, shift)
        return self.normalizer.unnormalize("action", chunk)

    # -- saving and loading -------------------------------------------------------------

    def save(
        self,
        directory: str | Path,
        ema: Policy | None = None,
        metadata: Mapping[str, Any] | None = None,
        overwrite: bool = True,
    ) -> Path:
        """Write ``model.safetensors`` (+ ``ema.safetensors``) and ``config.yaml`` atomically.

        ``metadata`` (e.g. the training task and dataset) is stored in ``config.yaml`` for
        tools such as ``robo eval``; loading does not need it.
        """
        directory = Path(directory)
        with atomic_output(directory, overwrite=overwrite) as tmp:
            tmp.mkdir(parents=True)
            weights = {"model.safetensors": self}
            if ema is not None:
                weights["ema.safetensors"] = ema
            checksums = {}
            for name, module in weights.items():
                state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
                save_file(state, str(tmp / name))
                checksums[name] = sha256_of(tmp / name)
            description = {
                "policy": dataclasses.asdict(self.config),
                "obs_shapes": {k: list(v) for k, v in self.obs_shapes.items()},
                "image_keys": self.image_keys,
                "action_dim": self.action_dim,
                "sha256": checksums,
                "metadata": dict(metadata or {}),
            }
            (tmp / "config.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, use_ema: bool = True, overrides: Mapping[str, Any] | None = None
    ) -> Policy:
        """Rebuild a saved policy; the EMA weights are used when present and ``use_ema``.

        ``overrides`` replace saved settings that do not change the weights (sampler, step
        counts, executed actions), flat: e.g. ``{"inference_steps": 100}`` goes to the head's
        config, ``{"n_action_steps": 1}`` to the policy's (``PolicyConfig.with_overrides``).
        A ``config.yaml`` of the old flat layout is migrated (``migrate_flat_config``).
        """
        directory = Path(directory)
        config, description = _read_saved(directory)
        try:
            obs_shapes = {k: tuple(v) for k, v in description["obs_shapes"].items()}
            image_keys, action_dim = list(description["image_keys"]), int(description["action_dim"])
            checksums = dict(description["sha256"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CheckpointError(f"{directory / 'config.yaml'}: invalid policy config ({err})") from err
        policy = cls(config.with_overrides(overrides or {}), obs_shapes, image_keys, action_dim)
        name = "ema.safetensors" if use_ema and "ema.safetensors" in checksums else "model.safetensors"
        path = directory / name
        if name not in checksums:
            raise CheckpointError(f"{path}: no checksum for it in {directory / 'config.yaml'} (sha256)")
        # every weights file the checkpoint lists is verified, not only the one loaded: a damaged
        # model.safetensors next to a sound EMA is a damaged checkpoint (fine-tuning resumes from it)
        for listed, checksum in sorted(checksums.items(), key=lambda item: item[0] != name):
            if Path(listed).name != listed:
                raise CheckpointError(f"{directory / 'config.yaml'}: sha256 lists {listed!r}, not a file name")
            listed_path = directory / listed
            if not listed_path.is_file():
                raise FileNotFoundError(f"{listed_path}: weights file is missing")
            if sha256_of(listed_path) != checksum:
                raise CheckpointError(f"{listed_path}: checksum mismatch with config.yaml (file modified or damaged)")
        try:
            policy.load_state_dict(load_file(str(path)))
        except (SafetensorError, RuntimeError) as err:
            raise CheckpointError(f"{path}: cannot load weights ({err})") from err
        return policy.eval()


def saved_policy_config(directory: str | Path) -> PolicyConfig:
    """The ``PolicyConfig`` a saved policy was written with (without loading its weights)."""
    return _read_saved(Path(directory))[0]


def _read_saved(directory: Path) -> tuple[PolicyConfig, dict[str, Any]]:
    """(config, the whole description) from a saved policy's ``config.yaml``."""
    config_path = directory / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no policy config (is {directory} a saved policy?)")
    try:
        description = yaml.safe_load(config_path.read_text())
        return PolicyConfig.from_dict(description["policy"]), description
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path}: invalid policy config ({err})") from err


def is_saved_policy(directory: str | Path) -> bool:
    """Whether ``directory`` holds a saved ``Policy`` (its config and weights)."""
    directory = Path(directory)
    return (directory / "config.yaml").is_file() and (directory / "model.safetensors").is_file()


def resolve_policy_dir(checkpoint: str | Path) -> Path:
    """A saved policy's directory, given it or a run directory (whose ``checkpoint/`` is used)."""
    path = Path(checkpoint)
    for candidate in (path, path / "checkpoint"):
        if is_saved_policy(candidate):
            return candidate
    raise FileNotFoundError(f"{path}: neither a saved policy nor a run directory with a saved policy in checkpoint/")


def policy_metadata(directory: str | Path) -> dict[str, Any]:
    """The ``metadata`` a saved policy was written with (empty if none)."""
    path = Path(directory) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no policy config (is {directory} a saved policy?)")
    return dict(yaml.safe_load(path.read_text()).get("metadata") or {})


def _chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, C) as stored in datasets -> (C, H, W) for the image encoder."""
    height, width, channels = shape
    return channels, height, width


def split_observation_keys(
    keys: list[str], shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """(low-dim keys, image keys) among ``keys``: images are 3-D uint8 arrays (H, W, C)."""
    images = [k for k in keys if is_image(shapes[k], dtypes[k])]
    return [k for k in keys if k not in images], images
