"""Process signals while a command drives a robot: stop safely, never just die.

The default action of SIGTERM (``kill``, systemd, a container stop) and SIGHUP (the terminal
or SSH session closed) ends the process at once, watchdog thread included, and the motors
keep their last goal: a base would drive on. ``stop_signals`` turns both into an exception
that unwinds every ``with robot:`` block, so ``disconnect`` sets the wheels to zero and
turns torque off first. It also installs the config's e-stop signal (``kill -USR1 <pid>``),
which latches the e-stop without ending the process.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from robo_policies.robots.robot import Robot
from robo_policies.utils.errors import ConfigError

UNWINDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(SystemExit):
    """A terminating signal arrived; the exit status is 128 + its number, as a shell reports it."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(128 + signum)


@contextmanager
def stop_signals(robot: Robot, estop_signal: str | None = None) -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP raise ``Terminated`` and ``estop_signal`` (a name
    such as ``SIGUSR1``, or None) latches the robot's e-stop. Call from the main thread."""
    if estop_signal and estop_signal not in signal.Signals.__members__:
        raise ConfigError(f"{robot.name}: estop.signal {estop_signal!r} is not a signal name (e.g. SIGUSR1)")
    previous = {signum: signal.signal(signum, _raise_terminated) for signum in UNWINDING_SIGNALS}
    try:
        if estop_signal:
            robot.estop.install_signal(signal.Signals[estop_signal])
        yield
    finally:
        robot.estop.uninstall_signals()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
