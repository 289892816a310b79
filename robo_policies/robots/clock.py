"""Time for the robot layer: the wall clock on hardware, a fake clock in tests.

Everything that depends on time (the watchdog, the e-stop's latch time, rate limits measured
between sends, the fixed-rate loops' deadlines and period statistics, observation and send
timestamps, a base's odometry) reads a ``Clock`` that a robot is given once, instead of
``time`` directly. On hardware it is ``WALL_CLOCK``; a test gives a ``FakeClock``, whose time
moves only when the test (or a loop's ``sleep``) moves it, so timing assertions are exact and
cannot flake on a loaded machine.

Waits for other threads (a policy worker's chunk, a servo's reply) stay in wall time: a fake
clock cannot make a thread finish sooner.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

SPIN_S = 0.0005
"""The last stretch before a wall-clock deadline is waited by spinning: ``time.sleep`` can overshoot."""


class Clock(Protocol):
    """Monotonic seconds and a way to let them pass."""

    def now(self) -> float:
        """Seconds from an arbitrary origin; never decreases."""
        ...

    def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock (at once for ``seconds <= 0``)."""
        ...


class WallClock:
    """``time.perf_counter``; ``sleep`` sleeps, then spins the last ``SPIN_S`` for precision."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        if seconds > SPIN_S:
            time.sleep(seconds - SPIN_S)
        while time.perf_counter() < deadline:
            pass


class FakeClock:
    """Time that moves only when told: ``advance(seconds)``, or ``sleep(seconds)`` (a
    sleeper's time passes at once). Thread-safe, so a robot's watchdog thread can read it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if not seconds >= 0:
            raise ValueError(f"a clock only moves forward, got {seconds!r} s")
        with self._lock:
            self._now += seconds


WALL_CLOCK = WallClock()
"""The clock of every robot that is not given another."""
