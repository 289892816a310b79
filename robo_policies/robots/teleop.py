"""Teleoperation: keys from the terminal, or a leader arm or gamepad, drive a robot through
its safety chain.

The robot's kind binds the motion keys (``RobotKind.keyboard``: an arm's joints in
``arm.py``, a base's driving keys in ``wheeled_base.py``); a leader arm (``leader.py``) or a
gamepad (``gamepad.py``) can take the motion's place, with the same shape of controller. Everywhere: the config's e-stop
key (space) latches the e-stop, ``r`` resets it, Esc or Ctrl-C quits. Commands go out at a
fixed rate on the robot's clock through ``send_action``, so every limit of the chain applies
and what was sent is what is shown (and recorded by ``robo record``).

Keys come from a ``KeySource``: ``TerminalKeys`` reads the terminal without blocking, and
a test drives the same loop with ``ScriptedKeys``.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any, Protocol

import numpy as np

from robo_policies.robots.config import RobotConfig
from robo_policies.robots.factory import make_robot
from robo_policies.robots.keyboard import QUIT_KEYS, RESET_KEY, DriveSettings, Keyboard
from robo_policies.robots.registry import robot_kind
from robo_policies.robots.robot import Robot, RobotError
from robo_policies.robots.signals import stop_signals
from robo_policies.utils.errors import ConfigError

SPECIAL_KEYS = {" ": "space", "\n": "enter", "\r": "enter", "\x1b": "esc", "\x03": "ctrl-c", "\x7f": "backspace"}
ARROWS = {"A": "up", "B": "down", "C": "right", "D": "left"}


class KeySource(Protocol):
    """Keys pressed since the last call, oldest first, without waiting."""

    def read(self) -> list[str]: ...


def parse_keys(text: str) -> list[str]:
    """Key names of terminal input: letters lower-cased, ``space``, ``enter``, ``esc``,
    ``ctrl-c``, arrows as ``up``/``down``/``left``/``right``; other characters as they are."""
    keys, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\x1b" and text[index + 1:index + 2] in ("[", "O") and index + 2 < len(text):
            keys.append(ARROWS.get(text[index + 2], "unknown"))
            index += 3
            continue
        keys.append(SPECIAL_KEYS.get(char, char.lower() if char.isalpha() else char))
        index += 1
    return keys


class TerminalKeys:
    """Keys from standard input, read without blocking.

    On a terminal it switches to cbreak mode (keys arrive one by one, unechoed; Ctrl-C still
    interrupts) and restores the terminal's settings on exit. From a pipe it reads what
    arrives; the end of input reads as Esc (quit).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._fd = (stream or sys.stdin).fileno()
        self._saved: list[Any] | None = None
        self._ended = False

    def __enter__(self) -> TerminalKeys:
        if os.isatty(self._fd):
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> list[str]:
        if self._ended:
            return ["esc"]
        data = b""
        while select.select([self._fd], [], [], 0)[0]:
            chunk = os.read(self._fd, 1024)
            if not chunk:
                self._ended = True
                return [*parse_keys(data.decode(errors="replace")), "esc"]
            data += chunk
        return parse_keys(data.decode(errors="replace"))


class ScriptedKeys:
    """Keys from a list, one entry per read (one control tick); Esc once it runs out."""

    def __init__(self, ticks: Sequence[Sequence[str]]) -> None:
        self._ticks = [list(keys) for keys in ticks]

    def read(self) -> list[str]:
        return self._ticks.pop(0) if self._ticks else ["esc"]


def keyboard_for(robot: Robot, settings: DriveSettings) -> Keyboard:
    """The key bindings of the robot's kind."""
    if robot.kind is None:
        raise RobotError(f"{robot.name}: its kind, and so its keys, is unknown (build it with make_robot)")
    return robot_kind(robot.kind).keyboard(robot, settings)


def drive(robot: Robot, keys: KeySource, controller: Keyboard, hz: float, *,
          duration_s: float = 0.0, end_keys: Sequence[str] = (),
          on_step: Callable[[dict[str, np.ndarray], np.ndarray], None] | None = None,
          echo: Callable[[str], None] = print) -> str:
    """Drive ``robot`` from ``keys`` at ``hz`` until a quit key (returns ``"quit"``), one of
    ``end_keys`` (returns it) or ``duration_s`` (returns ``"time"``; 0: no limit).

    Each tick reads the keys, reads an observation when ``on_step`` wants one, sends the
    command and hands ``on_step`` the observation with what was sent. A line is echoed
    whenever what is sent or the e-stop changes. Ticks keep the robot's clock.
    """
    clock = robot.clock
    period = 1.0 / hz
    max_ticks = round(duration_s * hz) if duration_s else None
    deadline = clock.now()
    shown: tuple[Any, ...] | None = None
    tick = 0
    while max_ticks is None or tick < max_ticks:
        pressed = keys.read()
        now = clock.now()
        if QUIT_KEYS.intersection(pressed):
            return "quit"
        for key in pressed:
            robot.estop.on_key(key)
            if key == RESET_KEY and robot.estop.is_latched:
                robot.estop.reset()
                echo("e-stop reset" if not robot.estop.is_latched else f"e-stop still latched: {robot.estop.reason}")
        controller.handle(pressed, now)
        observation = robot.get_observation() if on_step is not None else None
        sent = robot.send_action(controller.command(now))
        controller.sent(sent)
        if on_step is not None:
            on_step(observation, sent)
        state = (tuple(np.round(sent, 3)), robot.estop.reason)
        if state != shown:
            shown = state
            values = " ".join(f"{name}={value:+.3f}" for name, value in zip(robot.action_names, sent))
            echo(f"sent {values}" + (f"   E-STOP: {robot.estop.reason} (r resets)" if robot.estop.reason else ""))
        tick += 1
        ended = next((key for key in pressed if key in end_keys), None)
        if ended is not None:
            return ended
        deadline += period
        remaining = deadline - clock.now()
        if remaining > 0:
            clock.sleep(remaining)
        else:
            deadline = clock.now()  # late: start afresh rather than rush to catch up
    return "time"


def teleop(robot: Robot, keys: KeySource, hz: float, settings: DriveSettings,
           duration_s: float = 0.0, echo: Callable[[str], None] = print,
           controller: Keyboard | None = None) -> list[np.ndarray]:
    """Teleop of a connected robot until Esc (or ``duration_s``) by its kind's keys, or by
    ``controller`` (a leader arm); returns every command sent. The robot is left holding still."""
    controller = controller or keyboard_for(robot, settings)
    echo(f"teleop {robot.name} at {hz:g} Hz: {controller.help}; space e-stop, r reset, Esc quit")
    sent: list[np.ndarray] = []
    with robot.held_at_exit():
        drive(robot, keys, controller, hz, duration_s=duration_s, on_step=lambda _, command: sent.append(command),
              echo=echo)
    return sent


@contextmanager
def keyboard_session(config: RobotConfig, port: str | None, hz: float) -> Iterator[tuple[Robot, TerminalKeys]]:
    """The robot, connected for commands at ``hz``, and the terminal's keys. However the block
    ends (Esc, Ctrl-C, SIGTERM, SIGHUP, an error) the robot is stopped and disconnected with
    torque off, and the terminal gets its settings back."""
    if not hz > 0:
        raise ConfigError(f"the command rate must be > 0 Hz, got {hz}")
    robot = make_robot(config, period_s=1.0 / hz, port=port)
    with stop_signals(robot, config.estop.signal), TerminalKeys() as keys, robot:
        yield robot, keys
