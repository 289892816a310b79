"""Gamepad teleoperation of a wheeled base, from Linux joystick events (no extra package).

The kernel's joystick interface (``/dev/input/js*``, Documentation/input/joydev) delivers
8-byte events: time (ms, u32), value (s16), type (u8: 1 button, 2 axis, 0x80 or-ed in for the
initial state) and number (u8). ``Joystick`` reads them without blocking and keeps the latest
value of every axis and button.

``GamepadDrive`` turns them into the base's body twist: left stick forward/back, right stick
left/right to turn, left stick left/right to strafe (omni bases), each scaled by
``DriveSettings`` with a dead zone, and only while the enable button is held (a dead-man
switch, as ROS's teleop_twist_joy has: a gamepad that drops out or is put down stops the base).
The axis and button numbers are the common layout of Xbox-style pads on Linux (left stick 0/1,
right stick 3/4, LB button 4).
"""

from __future__ import annotations

import errno
import os
import struct

import numpy as np

from robo_policies.robots.keyboard import DriveSettings
from robo_policies.robots.robot import Robot
from robo_policies.robots.wheeled_base import WheeledBase
from robo_policies.utils.errors import ConfigError, DeviceFault

EVENT = struct.Struct("<IhBB")
"""One joystick event: time (ms), value, type, number."""
BUTTON, AXIS, INIT = 0x01, 0x02, 0x80
AXIS_MAX = 32767.0
LEFT_X, LEFT_Y, RIGHT_X = 0, 1, 3
ENABLE_BUTTON = 4
DEAD_ZONE = 0.1


class Joystick:
    """The latest state of a Linux joystick device, read without blocking."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            raise DeviceFault(f"gamepad {path}: cannot open it ({err.strerror}); is it plugged in? "
                              f"(ls /dev/input/js*)") from err
        self.axes: dict[int, float] = {}
        """Axis number -> value in [-1, 1]."""
        self.buttons: dict[int, bool] = {}
        self._pending = b""

    def poll(self) -> None:
        """Read every event that arrived since the last call."""
        while True:
            try:
                data = os.read(self._fd, EVENT.size * 64)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno == errno.EAGAIN:
                    return
                raise DeviceFault(f"gamepad {self.path} was lost ({err.strerror})") from err
            if not data:
                return
            data, self._pending = self._pending + data, b""
            whole = len(data) - len(data) % EVENT.size
            self._pending = data[whole:]
            for _, value, kind, number in EVENT.iter_unpack(data[:whole]):
                if kind & ~INIT == AXIS:
                    self.axes[number] = value / AXIS_MAX
                elif kind & ~INIT == BUTTON:
                    self.buttons[number] = bool(value)

    def close(self) -> None:
        os.close(self._fd)


class GamepadDrive:
    """The ``Keyboard``-shaped controller of ``teleop.drive`` that reads a gamepad (see the module docstring)."""

    def __init__(self, robot: Robot, joystick: Joystick, settings: DriveSettings) -> None:
        if not isinstance(robot, WheeledBase):
            raise ConfigError(f"{robot.name}: a gamepad drives wheeled bases; use teleop=keyboard or leader")
        self.robot, self.joystick, self.settings = robot, joystick, settings
        self.help = (f"hold LB (button {ENABLE_BUTTON}) and steer: left stick forward/back"
                     f"{', left/right strafes' if robot.holonomic else ''}, right stick turns")

    def handle(self, keys: list[str], now: float) -> None:
        """Keys do not drive here (the shared keys still work: ``teleop.drive``)."""

    def command(self, now: float) -> np.ndarray:
        self.joystick.poll()
        if not self.joystick.buttons.get(ENABLE_BUTTON, False):
            return self.robot.twist_command(0.0, 0.0, 0.0)
        forward = -_stick(self.joystick.axes.get(LEFT_Y, 0.0))  # stick up is negative
        turn = -_stick(self.joystick.axes.get(RIGHT_X, 0.0))    # stick right turns clockwise
        strafe = -_stick(self.joystick.axes.get(LEFT_X, 0.0)) if self.robot.holonomic else 0.0
        return self.robot.twist_command(forward * self.settings.speed, turn * self.settings.turn_speed,
                                        strafe * self.settings.speed)

    def sent(self, command: np.ndarray) -> None:
        """A base's next command does not build on the last one."""


def _stick(value: float) -> float:
    """A stick's value with the dead zone removed, rescaled to [-1, 1]."""
    if abs(value) < DEAD_ZONE:
        return 0.0
    return float(np.sign(value) * (abs(value) - DEAD_ZONE) / (1.0 - DEAD_ZONE))
