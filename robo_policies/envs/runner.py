"""Evaluate a policy in an environment: success rate, episode stats, model latency and a video.

``evaluate`` is the task side of ``robo eval`` and of the trainer's periodic evaluation. It
knows nothing about networks: anything with ``reset()``, ``act(obs)``, ``nfe`` and a
``model_call_ms`` list (``PolicyLike``) can be evaluated, in any Gymnasium env (a Task's
``task.env``, or a registered id through ``make_gym_env_factory`` in ``gym_target.py``).

Seeds: episode ``i`` resets the env with ``seed + i``. ``robo collect seed=S`` recorded its
attempts from seeds S, S+1, ..., so evaluate from a seed far above them (``DEFAULT_EVAL_SEED``,
100000, as diffusion_policy's test seeds) to keep the evaluation layouts unseen in training.
A policy that keeps per-episode acting state (``BatchPolicy``) draws episode ``i``'s sampling
noise from a generator seeded with ``seed + i`` too, so an episode's outcome depends on its
seed alone: not on the episodes before it, nor on those batched with it (``num_envs``).

Vectorised evaluation (``num_envs`` > 1) steps several envs in this process, one episode each,
and asks the policy for all their actions at once (``act_batch``: one model call for the envs
whose action queue is empty). Each env is reset by hand when its episode ends, with the next
episode's seed, so no vector-env autoreset decides seeds or steps a finished env.

Episodes are stepped by ``step_episode`` (``episode.py``), which also says how success is
read: the flag at the last step, with ``ever_success`` recording whether it was reached at all.
An env that reports no success flag is an error here.

The video shows what the policy saw: each frame is the env's render with the camera images
of the policy's observation to its right, scaled to the render's height (``side_by_side``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from robo_policies.data.replay_buffer import is_image
from robo_policies.envs.episode import RunningEpisode
from robo_policies.policy import ModelCall
from robo_policies.utils.video import Mp4Writer

DEFAULT_EVAL_SEED = 100000
"""First evaluation seed used by ``robo eval``: far above the seeds ``robo collect`` uses."""

RECORD_KEYS = ("seed", "success", "ever_success", "length", "return", "model_calls", "model_ms")
"""Keys of every per-episode record; ``episode_callback`` results may not reuse them."""


@runtime_checkable
class PolicyLike(Protocol):
    """What ``evaluate`` needs from a policy.

    Attributes:
        nfe: network evaluations per model call (reported, not used).
        model_call_ms: the policy appends the wall time of every model call to this list
            (it calls the model only when its action queue is empty).
        model_call_nfe: optional; the network evaluations each model call used, for
            policies whose calls differ (warm starts, early stopping); reported instead of
            ``nfe`` when present.
        obs_shapes: optional; the observation keys the policy reads: the video shows the
            camera images among them (without it, every camera image of the observation).
    """

    nfe: int
    model_call_ms: list[float]

    def reset(self) -> None:
        """Clear observation history and action queue; called after each ``env.reset``."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One env action for the current observation (keys as in the training dataset)."""


class ChunkPolicy(PolicyLike, Protocol):
    """A ``PolicyLike`` that a real-time loop drives chunk by chunk (``robots.control_loop``):
    it predicts a whole chunk for an observation history, and the loop executes
    ``policy.executed_slice(config)`` of it on its own clock while the next one is computed.

    Attributes:
        config: ``n_obs_steps`` (To) and ``n_action_steps`` (Ta).
        obs_shapes: per-step shape of each observation key the policy reads.
        action_dim: size of one action.
    """

    config: Any
    obs_shapes: dict[str, tuple[int, ...]]
    action_dim: int

    def predict_chunk(self, obs: Any, **kwargs: Any) -> Any:
        """Chunks (B, Tp, A) for histories {key: (B, To, ...)}; ``shift=`` the policy steps
        since the last chunk when it warm-starts from it."""


EnvFactory = Callable[..., gym.Env]
"""``make_env()`` builds an env; ``make_env(render_mode="rgb_array")`` one that renders
(``Task.env`` and ``GymTarget.make_env`` both qualify)."""

EpisodeCallback = Callable[[dict[str, np.ndarray], dict[str, Any]], dict[str, Any]]


@dataclass
class EvalResult:
    """The outcome of ``evaluate``.

    Attributes:
        success_rate: fraction of episodes whose last step reported success.
        episodes: number of episodes run.
        mean_episode_len: mean number of env steps per episode.
        mean_return: mean undiscounted sum of rewards per episode.
        latency_ms_p50, latency_ms_p95: percentiles of the policy's model-call wall times
            during the run, in milliseconds (a call batched for several envs once for each
            episode it served); ``None`` if the policy made no model calls.
        ms_per_action_p50: median over executed actions of the model time behind each (a
            call's time shared by the actions executed from it): per-step cost at any number
            of actions per call; like ``latency_ms_p50`` it leaves out rare slow calls such
            as a warm-started policy's full first call.
        ms_per_action_mean: all model time over all steps, rare slow calls included.
        nfe: network evaluations per model call: the median of the measured calls when the
            policy reports them, else its configured ``nfe`` (``None`` if it has neither).
        seed: the first episode's seed (episode ``i`` used ``seed + i``).
        records: one dict per episode: ``seed, success, ever_success, length, return,
            model_calls`` and whatever ``episode_callback`` returned.
        seconds: wall time of the whole evaluation.
        video_path: the mp4 written, if any.
        sampler: how the policy sampled, when the caller says (``robo eval``: ``name`` full
            or rti, and the warm start's settings).
    """

    success_rate: float
    episodes: int
    mean_episode_len: float
    mean_return: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    nfe: int | None
    seed: int
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    video_path: str | None = None
    ms_per_action_p50: float | None = None
    ms_per_action_mean: float | None = None
    sampler: dict[str, Any] | None = None

    @property
    def successes(self) -> int:
        """Number of successful episodes."""
        return sum(bool(r["success"]) for r in self.records)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (numpy scalars and arrays converted)."""
        data = {
            "success_rate": self.success_rate,
            "episodes": self.episodes,
            "successes": self.successes,
            "mean_episode_len": self.mean_episode_len,
            "mean_return": self.mean_return,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95,
            "ms_per_action_p50": self.ms_per_action_p50,
            "ms_per_action_mean": self.ms_per_action_mean,
            "nfe": self.nfe,
            "seed": self.seed,
            "seconds": self.seconds,
            "video_path": self.video_path,
            "sampler": self.sampler,
            "records": self.records,
        }
        return json.loads(json.dumps(data, default=_json_default))

    def to_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` to ``path`` atomically (a temp file, then ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def format_table(self, name: str = "eval") -> str:
        """A one-row results table for the terminal (see ``format_results_table``)."""
        return format_results_table([(name, self)])


def format_results_table(rows: Sequence[tuple[str, EvalResult]]) -> str:
    """One aligned table with a row per ``(name, result)``, e.g. one per task.

    Columns: name, success (rate and count), episodes, mean length, mean return,
    model-call latency p50/p95 in ms, model time per executed action (median over episodes)
    and NFE; a missing value shows as ``-``.
    """
    header = ("name", "success", "episodes", "mean len", "return", "p50 ms", "p95 ms", "ms/act", "nfe")
    body = [
        (
            name,
            f"{r.success_rate:.1%} ({r.successes}/{r.episodes})",
            str(r.episodes),
            f"{r.mean_episode_len:.1f}",
            f"{r.mean_return:.2f}",
            _fmt_ms(r.latency_ms_p50),
            _fmt_ms(r.latency_ms_p95),
            _fmt_ms(r.ms_per_action_p50, digits=2),
            "-" if r.nfe is None else str(r.nfe),
        )
        for name, r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])  # names left-aligned, numbers right-aligned
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:]))
        return "  ".join((first, *rest)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body)])


def evaluate(
    policy: PolicyLike,
    make_env: EnvFactory | gym.Env,
    episodes: int,
    seed: int,
    video_path: str | Path | None = None,
    video_episodes: int = 2,
    progress: bool = True,
    max_steps: int | None = None,
    obs_adapter: Callable[[Any], dict[str, np.ndarray]] | None = None,
    episode_callback: EpisodeCallback | None = None,
    desc: str = "eval",
    num_envs: int = 1,
) -> EvalResult:
    """Run ``episodes`` policy episodes; episode ``i`` resets the env with ``seed + i``.

    Each episode: ``env.reset(seed=seed + i)``, a new policy episode, then an action and
    ``env.step`` until the env terminates or truncates (its TimeLimit or own horizon), or
    ``max_steps`` steps. ``episode.py`` says how success is read.

    A policy that keeps one acting state per episode (``BatchPolicy``: ``Policy``, a
    composition, a fine-tuned agent) starts each episode with ``new_episode(seed + i)``, so its
    sampling noise too is the episode's own; any other ``PolicyLike`` is ``reset()``.

    Args:
        policy: a ``PolicyLike``.
        make_env: an env factory (called with no arguments for plain episodes and with
            ``render_mode="rgb_array"`` for recorded ones), or an env, which is used for
            every episode, must already render ``rgb_array`` frames if video is requested,
            and is not closed.
        episodes: number of episodes (>= 1).
        seed: the first episode's seed.
        video_path: write the first ``video_episodes`` episodes into this one mp4. Each
            episode contributes ``length + 1`` frames: the frame after reset and one after
            every step, each the env's render with the policy's camera images beside it
            (``side_by_side``). Frames with an odd width or height are padded by one edge
            pixel. Only those episodes are rendered, with a render env built just for them.
        video_episodes: how many episodes the video shows (capped at ``episodes``).
        progress: show a tqdm bar with the running success rate.
        max_steps: stop an episode after this many steps even if the env has not ended it.
        obs_adapter: turns the env's observation into the policy's dict of arrays; needed
            when the env's observation is not already that dict (see ``gym_target``).
        episode_callback: ``callback(trajectory_obs, last_info) -> dict`` merged into the
            episode's record; ``trajectory_obs`` stacks each (adapted) observation key over
            the episode's ``length + 1`` observations (initial, then one per step). The
            trajectory is kept only when a callback is given.
        desc: the progress bar's label.
        num_envs: episodes run at once, each in its own env from ``make_env`` (a
            ``BatchPolicy`` and an env factory needed beyond 1): every step, one batched
            model call serves the envs whose action queue is empty. Episode ``i`` still has
            seed ``seed + i`` and its own noise, so the records are the serial run's (up to
            the float rounding of batched matrix products), in episode order; so is the video.
            A batched call counts once per episode it served in the latency percentiles
            (what each waited) and is shared among them in ``model_ms`` and per-action times.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    n_video = min(video_episodes, episodes) if video_path is not None else 0
    if video_path is not None and n_video < 1:
        raise ValueError(f"video_episodes must be >= 1 with a video_path, got {video_episodes}")
    if isinstance(make_env, gym.Env):
        if n_video and make_env.render_mode != "rgb_array":
            raise ValueError(
                "video needs an env with render_mode='rgb_array'; pass an env factory or such an env"
            )
        if num_envs > 1:
            raise ValueError(f"num_envs={num_envs} needs an env factory to build each env, not an env")
    actor = policy if isinstance(policy, BatchPolicy) else _OneEpisodeAtATime(policy, num_envs)
    policy_keys = getattr(policy, "obs_shapes", None)
    envs = _Envs(make_env, num_envs)
    video = Mp4Writer(Path(video_path)) if n_video else None
    recorded: dict[int, list[np.ndarray]] = {}  # frames of finished recorded episodes, not yet written
    written = 0  # recorded episodes written to the video

    def frame(run: _Run) -> np.ndarray:
        return side_by_side(_rgb(run.episode.env.render()), camera_views(run.episode.obs, policy_keys))

    def start(slot: int, index: int) -> _Run:
        env = envs.get(slot, render=index < n_video)
        if index < n_video and video is not None and video.fps is None:
            video.fps = env.metadata.get("render_fps") or 10
        episode = RunningEpisode(env, seed + index, max_steps=max_steps,
                                 obs_adapter=lambda raw: _adapt(raw, obs_adapter),
                                 keep_observations=episode_callback is not None)
        run = _Run(index, episode, actor.new_episode(seed + index), [] if index < n_video else None)
        if run.frames is not None:
            run.frames.append(frame(run))
        return run

    def write_video() -> None:
        """Write the finished recorded episodes that are next in episode order."""
        nonlocal written
        while video is not None and written in recorded:
            for image in recorded.pop(written):
                video.append(image)
            written += 1

    start_time = time.perf_counter()
    records: dict[int, dict[str, Any]] = {}
    timings: dict[int, _Timings] = {}
    upcoming = iter(range(episodes))
    running: dict[int, _Run] = {}  # by env slot
    bar = tqdm(total=episodes, desc=desc, unit="ep", disable=not progress)
    try:
        while len(records) < episodes:
            for slot in range(num_envs):
                index = None if slot in running else next(upcoming, None)
                if index is not None:
                    running[slot] = start(slot, index)
            runs = list(running.items())
            calls_before = [len(run.acting.calls) for _, run in runs]
            actions = actor.act_batch([run.acting for _, run in runs], [run.episode.obs for _, run in runs])
            for (slot, run), before, action in zip(runs, calls_before, actions):
                run.call_steps += [len(run.episode.rewards)] * (len(run.acting.calls) - before)
                run.episode.step(action)
                if run.frames is not None:
                    run.frames.append(frame(run))
                if not run.episode.done:
                    continue
                del running[slot]
                records[run.index], timings[run.index] = _finish(run, episode_callback)
                if run.frames is not None:
                    recorded[run.index] = run.frames
                    write_video()
                bar.update(1)
                rate = sum(r["success"] for r in records.values()) / len(records)
                bar.set_postfix(success=f"{rate:.0%}", refresh=False)
        if video is not None:
            video.finish()
    finally:
        bar.close()
        if video is not None:
            video.abort()  # no-op after finish()
        envs.close()

    ordered = [records[i] for i in range(episodes)]
    call_ms = [ms for i in range(episodes) for ms in timings[i].call_ms]
    call_nfe = [nfe for i in range(episodes) for nfe in timings[i].call_nfe if nfe is not None]
    action_ms = [ms for i in range(episodes) for ms in timings[i].action_ms]
    p50, p95 = (float(p) for p in np.percentile(call_ms, [50, 95])) if call_ms else (None, None)
    nfe = int(np.median(call_nfe)) if call_nfe else getattr(policy, "nfe", None)
    return EvalResult(
        success_rate=sum(r["success"] for r in ordered) / episodes,
        episodes=episodes,
        mean_episode_len=float(np.mean([r["length"] for r in ordered])),
        mean_return=float(np.mean([r["return"] for r in ordered])),
        latency_ms_p50=p50,
        latency_ms_p95=p95,
        ms_per_action_p50=float(np.median(action_ms)) if action_ms else None,
        ms_per_action_mean=float(sum(r["model_ms"] for r in ordered) / len(action_ms)) if action_ms else None,
        nfe=None if nfe is None else int(nfe),
        seed=seed,
        records=ordered,
        seconds=time.perf_counter() - start_time,
        video_path=str(video_path) if n_video else None,
    )


@runtime_checkable
class BatchPolicy(Protocol):
    """A policy that acts in several episodes at once (``policy.ActsInEpisodes``): what
    ``evaluate`` needs for ``num_envs`` > 1."""

    def new_episode(self, seed: int) -> Any:
        """The acting state of a new episode (its noise seeded by ``seed``), whose
        ``calls`` lists the ``ModelCall``s that served it."""

    def act_batch(self, episodes: Sequence[Any], observations: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """One action per episode for its observation, with batched model calls."""


@dataclass
class _PlainEpisode:
    """A plain ``PolicyLike``'s episode: the model calls read off its ``model_call_ms``."""

    seen: int
    calls: list[ModelCall] = field(default_factory=list)


class _OneEpisodeAtATime:
    """A plain ``PolicyLike`` driven as a ``BatchPolicy``, in one env: ``reset()`` at each
    episode, ``act`` at each step, each new entry of its ``model_call_ms`` one model call."""

    def __init__(self, policy: PolicyLike, num_envs: int) -> None:
        if num_envs > 1:
            raise TypeError(
                f"num_envs={num_envs} needs a policy that acts in several episodes at once "
                f"(new_episode, act_batch: robo_policies.policy.ActsInEpisodes); a "
                f"{type(policy).__name__} has one episode at a time"
            )
        self.policy = policy

    def new_episode(self, seed: int) -> _PlainEpisode:
        self.policy.reset()
        return _PlainEpisode(seen=len(self.policy.model_call_ms))  # after reset, which may clear it

    def act_batch(self, episodes: Sequence[_PlainEpisode],
                  observations: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        (episode,), (obs,) = episodes, observations
        action = self.policy.act(obs)
        new_ms = self.policy.model_call_ms[episode.seen:]
        if new_ms:  # most steps pop a queued action: nothing to read
            nfe_log = getattr(self.policy, "model_call_nfe", [])
            new_nfe = nfe_log[len(nfe_log) - len(new_ms):] if len(nfe_log) >= len(new_ms) else [None] * len(new_ms)
            episode.calls += [ModelCall(ms, nfe, 1) for ms, nfe in zip(new_ms, new_nfe)]
            episode.seen += len(new_ms)
        return [action]


class _Envs:
    """Each env slot's env, built on demand: a render env for the recorded (first) episodes,
    then a plain one (the render env is closed); a given env serves the one slot."""

    def __init__(self, make_env: EnvFactory | gym.Env, num_envs: int) -> None:
        self.make_env = make_env
        self.built: list[dict[bool, gym.Env]] = [{} for _ in range(num_envs)]

    def get(self, slot: int, render: bool) -> gym.Env:
        if isinstance(self.make_env, gym.Env):
            return self.make_env
        envs = self.built[slot]
        if render not in envs:
            for other in list(envs):
                envs.pop(other).close()
            envs[render] = self.make_env(render_mode="rgb_array") if render else self.make_env()
        return envs[render]

    def close(self) -> None:
        for envs in self.built:
            for env in envs.values():
                env.close()


@dataclass
class _Run:
    """An episode in an env slot: the env's side, the policy's side, and what is recorded."""

    index: int
    episode: RunningEpisode
    acting: Any
    frames: list[np.ndarray] | None
    call_steps: list[int] = field(default_factory=list)  # the step at which each model call happened


@dataclass
class _Timings:
    """One episode's model-call times: each call's wall time and NFE, and per executed action
    its share of the call it came from (the call's time over its episodes and actions)."""

    call_ms: list[float]
    call_nfe: list[int | None]
    action_ms: list[float]


def _finish(run: _Run, episode_callback: EpisodeCallback | None) -> tuple[dict[str, Any], _Timings]:
    """A finished episode's record and model-call timings."""
    episode = run.episode.result()
    if not episode.success_reported:
        raise ValueError(
            f"the env reported neither info['is_success'] nor info['success'] in episode "
            f"seed={episode.seed}; info keys: {sorted(episode.info)}"
        )
    calls = run.acting.calls
    shares = [call.ms / call.episodes for call in calls]
    record: dict[str, Any] = {
        "seed": episode.seed,
        "success": episode.success,
        "ever_success": episode.ever_success,
        "length": episode.length,
        "return": episode.total_reward,
        "model_calls": len(calls),
        "model_ms": float(sum(shares)),
    }
    if episode_callback is not None:
        trajectory = episode.observations
        stacked = {key: np.stack([o[key] for o in trajectory]) for key in trajectory[0]}
        extra = dict(episode_callback(stacked, episode.info) or {})
        clashes = sorted(set(extra) & set(RECORD_KEYS))
        if clashes:
            raise ValueError(f"episode_callback returned reserved record keys {clashes}")
        record.update(extra)
    served = np.diff([*run.call_steps, episode.length])  # actions executed from each call (0: superseded)
    action_ms = [share / n for share, n in zip(shares, served) for _ in range(n)]
    # Actions before the first call (a policy that acts without its model) cost nothing.
    action_ms += [0.0] * (run.call_steps[0] if run.call_steps else episode.length)
    return record, _Timings([call.ms for call in calls], [call.nfe for call in calls], action_ms)


def _adapt(
    obs: Any, obs_adapter: Callable[[Any], dict[str, np.ndarray]] | None
) -> dict[str, np.ndarray]:
    if obs_adapter is not None:
        return obs_adapter(obs)
    if not isinstance(obs, dict):
        raise TypeError(
            f"the env's observation is a {type(obs).__name__}, not a dict of arrays; pass "
            "obs_adapter (make_gym_env_factory in robo_policies.envs.gym_target builds one)"
        )
    return obs


def camera_views(obs: Mapping[str, Any], keys: Collection[str] | None = None) -> list[np.ndarray]:
    """The camera images (H, W, C) uint8 of ``obs``, in key order: those among ``keys`` (the
    policy's), or all of them when ``keys`` is None."""
    views = {key: np.asarray(value) for key, value in obs.items() if keys is None or key in keys}
    return [view for _, view in sorted(views.items()) if is_image(view.shape, view.dtype)]


def side_by_side(scene: np.ndarray, views: Sequence[np.ndarray]) -> np.ndarray:
    """``scene`` (H, W, 3) with each view to its right, scaled to height H by the nearest pixel
    (a view (h, w) becomes (H, round(w * H / h))): a video frame that shows the scene and what
    the policy saw at the same moment. Without views, ``scene`` itself."""
    height = scene.shape[0]
    panels = [scene]
    for view in views:
        view = _rgb(view)
        h, w = view.shape[:2]
        width = round(w * height / h)
        rows, cols = np.arange(height) * h // height, np.arange(width) * w // width
        panels.append(view[rows][:, cols])
    return np.concatenate(panels, axis=1) if views else scene


def _rgb(frame: Any) -> np.ndarray:
    """``frame`` as (H, W, 3) uint8: an alpha channel dropped, a grey one repeated."""
    if frame is None:
        raise ValueError("env.render() gave None; make the env with render_mode='rgb_array'")
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise ValueError(f"a video frame has shape {frame.shape}, expected (H, W, 3)")
    frame = np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame[..., :3]
    return frame if frame.dtype == np.uint8 else np.clip(frame, 0, 255).astype(np.uint8)


def _fmt_ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
