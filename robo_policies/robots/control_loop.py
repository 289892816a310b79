"""The fixed-rate control loop: one loop for hardware and the MuJoCo twin.

Each tick (10 to 50 Hz) reads the robot when a policy step begins, sends the action that the
schedule holds for this moment through the robot's safety chain, and sleeps to an absolute
deadline, so a slow tick does not shift the ones after it. Deadlines and period statistics
keep the robot's clock (``clock.py``), so a test runs the loop on a fake clock and its
timing is exact.

Inference is decoupled from the loop: a ``PolicyWorker`` thread predicts the next chunk
while the loop keeps executing the present one. Every chunk is stamped with the time of the
observation it came from, and its actions are scheduled one policy step apart from there;
actions whose time has passed when the chunk arrives are skipped (as diffusion_policy's
real-robot loop does), so a chunk's actions always line up with the world they were
predicted for. Between policy steps the loop repeats the present action (a 50 Hz loop
drives a 10 Hz policy).
"""

from __future__ import annotations

import os
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robo_policies.policy import executed_slice, history_batch
from robo_policies.robots.clock import SPIN_S
from robo_policies.utils.errors import RoboError
from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import ConfigError

if TYPE_CHECKING:
    from robo_policies.envs.runner import ChunkPolicy


def _warm_started(policy: ChunkPolicy) -> bool:
    """Whether the policy warm-starts each chunk from the previous one (RTI)."""
    return getattr(policy, "warm_start", None) is not None


@dataclass
class Chunk:
    """Actions (n, A) scheduled from ``start`` (episode seconds), one per ``step_s``."""

    start: float
    actions: np.ndarray
    step_s: float

    def action_at(self, t: float) -> np.ndarray | None:
        """The action for time ``t``, or None once the chunk is used up."""
        index = self._step(t)
        return self.actions[index] if 0 <= index < len(self.actions) else None

    def steps_left(self, t: float) -> int:
        """Policy steps after the one that contains ``t``."""
        return max(0, len(self.actions) - self._step(t) - 1)

    def _step(self, t: float) -> int:
        """Which of the chunk's policy steps contains time ``t`` (negative: before it starts)."""
        return int(np.floor((t - self.start) / self.step_s + 1e-6))


class PolicyWorker:
    """The policy in a background thread: one request in flight at a time.

    Args:
        policy: a ``ChunkPolicy`` (``predict_chunk``, ``config.n_obs_steps``, ``config.n_action_steps``).
        step_s: seconds between the policy's actions (its task's control period).

    ``inference_ms`` is measured on the wall clock: it is the compute a chunk costs.
    """

    def __init__(self, policy: ChunkPolicy, step_s: float) -> None:
        self.policy = policy
        self.step_s = step_s
        self.inference_ms: list[float] = []
        self._requests: queue.Queue[tuple[list[dict[str, np.ndarray]], float] | None] = queue.Queue()
        self._results: queue.Queue[Chunk | BaseException] = queue.Queue()
        self._busy = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """A request is being worked on."""
        return self._busy

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="policy-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._requests.put(None)
            self._thread.join(timeout=5.0)
            self._thread = None

    def request(self, history: list[dict[str, np.ndarray]], t_obs: float) -> None:
        """Ask for the chunk that starts at the newest observation in ``history`` (taken at ``t_obs``)."""
        self._busy = True
        self._requests.put((list(history), t_obs))

    def poll(self, timeout: float | None = 0.0) -> Chunk | None:
        """The finished chunk, if any (``timeout=None`` waits for it); re-raises the worker's error."""
        try:
            result = self._results.get(block=timeout != 0.0, timeout=timeout)
        except queue.Empty:
            return None
        self._busy = False
        if isinstance(result, RoboError):  # bad input (an observation key the robot lacks)
            raise result
        if isinstance(result, BaseException):
            raise RuntimeError(f"policy inference failed: {result}") from result
        return result

    def discard_pending(self) -> None:
        """Wait for the request in flight, if any, and drop its chunk (an episode ended
        while it was computed; its times belong to the old episode's clock)."""
        if self._busy:
            self.poll(timeout=None)

    def _serve(self) -> None:
        config = self.policy.config
        executed = executed_slice(config)
        previous_t: float | None = None
        while (item := self._requests.get()) is not None:
            history, t_obs = item
            try:
                start = time.perf_counter()
                # An RTI warm start shifts the previous chunk by the policy steps between the
                # two observations (the loop asks ahead of time, so fewer than Ta). A new
                # episode restarts the clock; the policy's reset() has cleared its warm start.
                kwargs = {}
                if _warm_started(self.policy) and previous_t is not None and t_obs > previous_t:
                    kwargs["shift"] = int(round((t_obs - previous_t) / self.step_s))
                with torch.no_grad():
                    batch = history_batch(history, self.policy.obs_shapes, config.n_obs_steps)
                    window = self.policy.predict_chunk(batch, **kwargs)[0].cpu().numpy().astype(np.float64)
                previous_t = t_obs
                self.inference_ms.append((time.perf_counter() - start) * 1000.0)
                self._results.put(Chunk(t_obs, window[executed], self.step_s))
            except BaseException as err:  # handed to the loop, which stops the robot
                self._results.put(err)


@dataclass
class LoopStats:
    """Timing of every tick (the robot's clock), gathered over a run's episodes."""

    period_s: float
    tick_starts: list[float] = field(default_factory=list)
    missed_deadlines: int = 0
    """Ticks whose work ended after the next tick's deadline."""
    starved_ticks: int = 0
    """Ticks with no scheduled action (the policy fell behind): the robot held still."""
    _episode_starts: list[int] = field(default_factory=list)

    def new_episode(self) -> None:
        self._episode_starts.append(len(self.tick_starts))

    def periods_ms(self) -> np.ndarray:
        """Time between consecutive tick starts within each episode (ms)."""
        starts = np.asarray(self.tick_starts)
        bounds = [*self._episode_starts, len(starts)]
        parts = [np.diff(starts[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b - a > 1]
        return np.concatenate(parts) * 1000.0 if parts else np.zeros(0)

    def summary(self) -> dict[str, Any]:
        periods = self.periods_ms()
        def pct(q: float) -> float | None:
            return round(float(np.percentile(periods, q)), 3) if len(periods) else None
        return {"target_period_ms": round(self.period_s * 1000.0, 3), "ticks": len(self.tick_starts),
                "period_ms_p50": pct(50), "period_ms_p99": pct(99),
                "period_ms_max": round(float(periods.max()), 3) if len(periods) else None,
                "missed_deadlines": self.missed_deadlines, "starved_ticks": self.starved_ticks}


@dataclass
class EpisodeOutcome:
    """How one episode of the loop ended."""

    ticks: int
    success: bool
    seconds: float
    """Episode time (ticks x period)."""


def run_episode(robot: Robot, worker: PolicyWorker, hz: float, max_seconds: float,
                stats: LoopStats, done: Callable[[], bool] = lambda: False,
                realtime: bool = True, lead_steps: int = 2) -> EpisodeOutcome:
    """Drive ``robot`` with the worker's policy at ``hz`` until ``done()`` or ``max_seconds``.

    ``lead_steps``: ask for the next chunk when this many policy steps of the present one are
    left, so it is ready before the present one runs out. With ``realtime=False`` (twins
    only) the loop does not sleep and waits for every chunk, which makes a run reproducible.
    Ticks keep ``robot.clock``; a chunk late for its tick is waited for in wall time, at most
    until the tick's deadline on that clock.
    """
    clock = robot.clock
    period = 1.0 / hz
    max_ticks = int(round(max_seconds * hz))
    history: deque[dict[str, np.ndarray]] = deque(maxlen=worker.policy.config.n_obs_steps)
    chunk: Chunk | None = None
    next_policy_step = 0.0
    worker.discard_pending()
    stats.new_episode()
    deadline = clock.now()
    for tick in range(max_ticks):
        t = tick * period
        stats.tick_starts.append(clock.now())
        if t >= next_policy_step - 1e-9:
            history.append(robot.get_observation())
            next_policy_step += worker.step_s
            needs_chunk = chunk is None or chunk.action_at(t) is None or chunk.steps_left(t) < lead_steps
            if needs_chunk and not worker.busy:
                worker.request(list(history), t)
        if chunk is None:  # the episode's first chunk is awaited before the clock starts
            chunk = worker.poll(timeout=None)
            deadline = stats.tick_starts[-1] = clock.now()
        elif (arrived := worker.poll(timeout=0.0 if realtime or not worker.busy else None)) is not None:
            chunk = arrived
        action = chunk.action_at(t) if chunk is not None else None
        if action is None and worker.busy and realtime:  # wait for it while the tick lasts
            arrived = worker.poll(timeout=max(0.0, deadline + period - SPIN_S - clock.now()))
            chunk = arrived if arrived is not None else chunk
            action = chunk.action_at(t)
        if action is None:
            stats.starved_ticks += 1
            action = robot.hold_command()
        robot.send_action(action)
        if done():
            return EpisodeOutcome(tick + 1, True, (tick + 1) * period)
        deadline += period
        if realtime:
            now = clock.now()
            if now > deadline:  # late: count it and start the next tick now, without a burst
                stats.missed_deadlines += 1
                deadline = now
            clock.sleep(deadline - now)
    return EpisodeOutcome(max_ticks, False, max_ticks * period)


@contextmanager
def loop_priority(priority: int) -> Iterator[bool]:
    """Inside the block the calling thread (the loop) runs under SCHED_FIFO at ``priority``
    (1-99), so other processes cannot delay its wake-ups; 0 leaves scheduling alone. Threads
    started inside inherit it, so start the policy worker first. Needs root, CAP_SYS_NICE or
    an rtprio limit: without, it warns and yields False. The previous policy comes back after.

    A SCHED_FIFO thread keeps its CPU until it blocks, so nothing in the loop may wait by
    spinning: the tick's sleep spins only its last ``SPIN_S``, and the bus's wait for a status
    packet blocks on the port (``motors/sdk_bus.py``). The vendor SDKs' own wait spins; at
    priority 50 it kept the CPU from the kernel work that delivers the reply, and deploys on
    a lossy bus failed with replies that never came (README, "Lossy servo bus")."""
    if priority == 0:
        yield False
        return
    if not 1 <= priority <= 99:
        raise ConfigError(f"rt_priority must be in [1, 99] (or 0: off), got {priority}")
    try:
        previous = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, AttributeError) as err:  # AttributeError: not Linux
        warnings.warn(f"cannot run the control loop at real-time priority {priority}: {err}; "
                      "its timing depends on the machine's other load (rt_priority=0 to not try)",
                      RuntimeWarning, stacklevel=3)
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, *previous)

