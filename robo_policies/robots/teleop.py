"""Keyboard teleoperation: raw keys from the terminal drive a robot through its safety chain.

A base: ``w``/``s`` (or the up/down arrows) forward/back, ``a``/``d`` (left/right arrows)
turn, ``q``/``e`` strafe (omni only), ``x`` stop. A key sets the motion and a terminal's key
repeat keeps it alive: when no motion key arrives for ``key_timeout_s`` the base stops, so
it only moves while a key is held. An arm: keys ``1``..``9`` nudge joint 1..9 up by
``joint_step`` (the gripper, last, by ``gripper_step`` towards closed) and the same keys
with shift (US layout ``!@#$%^&*(``) nudge it down; ``x`` holds the present position.

Everywhere: the config's e-stop key (space) latches the e-stop, ``r`` resets it, Esc or
Ctrl-C quits. Commands go out at a fixed rate through ``send_action``, so every limit of
the chain applies and what was sent is what is shown (and recorded by ``robo record``).

Keys come from a ``KeySource``: ``TerminalKeys`` reads the terminal without blocking, and
a test drives the same loop with ``ScriptedKeys``.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Protocol

import numpy as np

from robo_policies.robots.arm import ManipulatorArm
from robo_policies.robots.base_kinematics import OmniKinematics
from robo_policies.robots.config import RobotConfig
from robo_policies.robots.factory import make_robot
from robo_policies.robots.robot import Robot
from robo_policies.robots.signals import stop_signals
from robo_policies.robots.wheeled_base import WheeledBase

QUIT_KEYS = frozenset({"esc", "ctrl-c"})
RESET_KEY = "r"
HOLD_KEY = "x"
SPECIAL_KEYS = {" ": "space", "\n": "enter", "\r": "enter", "\x1b": "esc", "\x03": "ctrl-c", "\x7f": "backspace"}
ARROWS = {"A": "up", "B": "down", "C": "right", "D": "left"}
SHIFTED_DIGITS = "!@#$%^&*("
"""Shift + 1..9 on a US keyboard."""


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


@dataclass
class DriveSettings:
    """How far a key moves the robot."""

    speed: float = 0.2
    """Base: forward and strafe speed (m/s)."""
    turn_speed: float = 1.0
    """Base: yaw rate (rad/s)."""
    key_timeout_s: float = 0.6
    """Base: stop when no motion key arrives for this long (0: keys latch until x)."""
    joint_step: float = 0.05
    """Arm: rad per key press."""
    gripper_step: float = 0.1
    """Arm: gripper closure (0 open .. 1 closed) per key press."""


class BaseKeyboard:
    """Keys -> body twist -> wheel speeds (``WheeledBase.twist_command``)."""

    help = "w/s forward/back, a/d turn, q/e strafe (omni), x stop"

    def __init__(self, robot: WheeledBase, settings: DriveSettings) -> None:
        self.robot = robot
        self.settings = settings
        s = settings
        self.bindings = {"w": (s.speed, 0.0, 0.0), "up": (s.speed, 0.0, 0.0),
                         "s": (-s.speed, 0.0, 0.0), "down": (-s.speed, 0.0, 0.0),
                         "a": (0.0, 0.0, s.turn_speed), "left": (0.0, 0.0, s.turn_speed),
                         "d": (0.0, 0.0, -s.turn_speed), "right": (0.0, 0.0, -s.turn_speed)}
        if isinstance(robot.kinematics, OmniKinematics):
            self.bindings.update(q=(0.0, s.speed, 0.0), e=(0.0, -s.speed, 0.0))
        self.twist = (0.0, 0.0, 0.0)
        """(vx, vy, wz) asked for by the last motion key."""
        self._last_key = 0.0

    def handle(self, keys: list[str], now: float) -> None:
        for key in keys:
            if key in self.bindings:
                self.twist, self._last_key = self.bindings[key], now
            elif key in (HOLD_KEY, RESET_KEY):
                self.twist = (0.0, 0.0, 0.0)

    def command(self, now: float) -> np.ndarray:
        timeout = self.settings.key_timeout_s
        if timeout and now - self._last_key > timeout:
            self.twist = (0.0, 0.0, 0.0)
        vx, vy, wz = self.twist
        return self.robot.twist_command(vx, wz, vy)

    def sent(self, command: np.ndarray) -> None:
        """A base's next command does not build on the last one."""


class ArmKeyboard:
    """Keys nudge joint targets; the target follows what the safety chain let through."""

    help = "1-9 nudge a joint up, shift+1-9 (!@#...) down, the last is the gripper; x hold"

    def __init__(self, robot: ManipulatorArm, settings: DriveSettings) -> None:
        if robot.action_dim > 9:
            raise ValueError(f"{robot.name}: keyboard teleop drives at most 9 motors, it has {robot.action_dim}")
        self.robot = robot
        self.steps = np.full(robot.action_dim, settings.joint_step)
        self.steps[-1] = settings.gripper_step
        self.target: np.ndarray | None = None

    def handle(self, keys: list[str], now: float) -> None:
        if self.target is None:
            self.target = self.robot.hold_command()
        for key in keys:
            if key in (HOLD_KEY, RESET_KEY):
                self.target = self.robot.hold_command()
            elif key.isdigit() and 1 <= int(key) <= self.robot.action_dim:
                self.target[int(key) - 1] += self.steps[int(key) - 1]
            elif key in SHIFTED_DIGITS[:self.robot.action_dim]:
                index = SHIFTED_DIGITS.index(key)
                self.target[index] -= self.steps[index]

    def command(self, now: float) -> np.ndarray:
        assert self.target is not None, "handle() comes first"
        return self.target.copy()

    def sent(self, command: np.ndarray) -> None:
        """Nudges build on what was sent, so a clamped joint does not wind up past its limit."""
        self.target = command.copy()


def keyboard_for(robot: Robot, settings: DriveSettings) -> BaseKeyboard | ArmKeyboard:
    """The key bindings for a robot's kind."""
    if isinstance(robot, WheeledBase):
        return BaseKeyboard(robot, settings)
    if isinstance(robot, ManipulatorArm):
        return ArmKeyboard(robot, settings)
    raise ValueError(f"{robot.name}: keyboard teleop drives a WheeledBase or a ManipulatorArm, "
                     f"not a {type(robot).__name__}")


def drive(robot: Robot, keys: KeySource, controller: BaseKeyboard | ArmKeyboard, hz: float, *,
          duration_s: float = 0.0, end_keys: Sequence[str] = (),
          on_step: Callable[[dict[str, np.ndarray], np.ndarray], None] | None = None,
          echo: Callable[[str], None] = print) -> str:
    """Drive ``robot`` from ``keys`` at ``hz`` until a quit key (returns ``"quit"``), one of
    ``end_keys`` (returns it) or ``duration_s`` (returns ``"time"``; 0: no limit).

    Each tick reads the keys, reads an observation when ``on_step`` wants one, sends the
    command and hands ``on_step`` the observation with what was sent. A line is echoed
    whenever what is sent or the e-stop changes.
    """
    period = 1.0 / hz
    max_ticks = round(duration_s * hz) if duration_s else None
    deadline = time.perf_counter()
    shown: tuple[Any, ...] | None = None
    tick = 0
    while max_ticks is None or tick < max_ticks:
        pressed = keys.read()
        now = time.perf_counter()
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
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        else:
            deadline = time.perf_counter()  # late: start afresh rather than rush to catch up
    return "time"


def teleop(robot: Robot, keys: KeySource, hz: float, settings: DriveSettings,
           duration_s: float = 0.0, echo: Callable[[str], None] = print) -> list[np.ndarray]:
    """Keyboard teleop of a connected robot until Esc (or ``duration_s``); returns every
    command sent. The robot is left holding still."""
    controller = keyboard_for(robot, settings)
    echo(f"teleop {robot.name} at {hz:g} Hz: {controller.help}; space e-stop, r reset, Esc quit")
    sent: list[np.ndarray] = []
    try:
        drive(robot, keys, controller, hz, duration_s=duration_s, on_step=lambda _, command: sent.append(command),
              echo=echo)
    finally:
        robot.stop()
    return sent


@contextmanager
def keyboard_session(config: RobotConfig, port: str | None, hz: float) -> Iterator[tuple[Robot, TerminalKeys]]:
    """The robot, connected for commands at ``hz``, and the terminal's keys. However the block
    ends (Esc, Ctrl-C, SIGTERM, SIGHUP, an error) the robot is stopped and disconnected with
    torque off, and the terminal gets its settings back."""
    if not hz > 0:
        raise ValueError(f"the command rate must be > 0 Hz, got {hz}")
    robot = make_robot(config, period_s=1.0 / hz, port=port)
    with stop_signals(robot, config.estop.signal), TerminalKeys() as keys, robot:
        yield robot, keys
