"""Feetech STS servos (e.g. the STS3215 of SO-100/SO-101 arms and LeKiwi), through Feetech's SDK.

Why the SDK and not our own packets: the PyPI package ``feetech-servo-sdk`` (module
``scservo_sdk``) installs from its sdist with only pyserial, and its sync read works (checked
byte for byte against ``tests/fake_servos.py``). It is a fork of ROBOTIS' SDK with the same
shape (PortHandler, PacketHandler, GroupSyncRead/Write), so both vendors' transactions are
``sdk_bus.SdkMotorBus``'s. Two of its quirks are handled here instead of patched:

* its byte order is a module-wide switch set by ``PacketHandler(0)`` (0: little-endian, the
  STS order); we decode all register bytes ourselves and never depend on it;
* its ``clearPort`` flushes output, not input, so a late reply to a failed attempt could be
  read as the answer to the next one; ``MotorBus`` drops stale input before every attempt.

Packets: FF FF, id, length, instruction or error byte, parameters, checksum ~(sum) & 0xFF.
A status packet's error byte is a set of hardware fault bits (there are no instruction
errors). Negative speeds are sign-magnitude: the magnitude in bits 0-14, the sign in bit 15.

No communication watchdog: the STS/SMS memory table (Feetech's manual, as LeRobot's
``feetech/tables.py`` reproduces it) and the SCS one have no register that stops a servo when
the host goes silent (their "protection time" registers time overload and overcurrent
protection). A servo keeps its last goal until told otherwise, so the control table has no
``comm_watchdog`` and ``MotorBus`` arms none; only the host stops these servos (its watchdog,
the safe exits), and a host that dies or loses its adapter leaves a wheel turning.

Velocity unit: Goal/Present Speed count encoder steps per second (4096 steps per turn), so
one unit is 2 pi / 4096 rad/s and "50 steps/s = 0.732 rpm" (Feetech's STS3215 memory table,
addresses 0x2E and 0x3A, as reproduced in github.com/Mickael-Roger/python-st3215 README).
"""

from __future__ import annotations

import math

try:
    import scservo_sdk as scs
except ModuleNotFoundError as err:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError("FeetechMotorBus needs the feetech-servo-sdk package: "
                              "pip install 'robo-policies[hardware]'", name="scservo_sdk") from err

from robo_policies.robots.motors.bus import ModelSpec, Register
from robo_policies.robots.motors.sdk_bus import LatencyTimeout, SdkMotorBus, StatusLayout

STS_TICKS_PER_REVOLUTION = 4096
STS_VELOCITY_UNIT = 2 * math.pi / STS_TICKS_PER_REVOLUTION
"""rad/s per unit of Goal/Present Speed (one encoder step per second)."""

STS_CONTROL_TABLE: dict[str, Register] = {
    "model_number": Register(3, 2),
    "id": Register(5, 1),
    "baud_rate": Register(6, 1),
    "min_angle_limit": Register(9, 2),
    "max_angle_limit": Register(11, 2),
    "position_correction": Register(31, 2, "sign_magnitude", sign_bit=11),
    "operating_mode": Register(33, 1),
    "torque_enable": Register(40, 1),
    "acceleration": Register(41, 1),
    "goal_position": Register(42, 2, "sign_magnitude"),
    "goal_velocity": Register(46, 2, "sign_magnitude"),
    "torque_limit": Register(48, 2),
    "lock": Register(55, 1),
    "present_position": Register(56, 2, "sign_magnitude"),
    "present_velocity": Register(58, 2, "sign_magnitude"),
    "present_load": Register(60, 2, "sign_magnitude", sign_bit=10),
    "present_voltage": Register(62, 1),
    "present_temperature": Register(63, 1),
    "status": Register(65, 1),
    "moving": Register(66, 1),
    "present_current": Register(69, 2),
}

STS_MODELS: dict[str, ModelSpec] = {
    "sts3215": ModelSpec(777, ticks_per_revolution=STS_TICKS_PER_REVOLUTION, velocity_unit=STS_VELOCITY_UNIT),
}

HARDWARE_ERROR_BITS = {0: "input voltage", 1: "angle sensor", 2: "overheating", 3: "overcurrent",
                       4: "angle limit", 5: "overload"}


class _Port(LatencyTimeout, scs.PortHandler):
    """The SDK's port with the USB latency as a setting."""


class FeetechMotorBus(SdkMotorBus):
    """Feetech STS servos on one port; see ``MotorBus``."""

    control_table = STS_CONTROL_TABLE
    models = STS_MODELS
    operating_mode_values = {"position": 0, "velocity": 1}
    baudrate_values = {1_000_000: 0, 500_000: 1, 250_000: 2, 128_000: 3, 115_200: 4, 57_600: 6, 38_400: 7}
    sdk = scs
    packet_protocol = 0
    port_class = _Port
    status_layout = StatusLayout(id=2, error=4, data=5)
    """FF FF, id, length, error, data, checksum."""

    def _describe_status_error(self, motor_id: int, error: int) -> tuple[str, list[str]]:
        return "", [name for bit, name in HARDWARE_ERROR_BITS.items() if error & (1 << bit)] or [
            f"unknown fault bits {error:#04x}"]

    def _set_eeprom_lock(self, motor_id: int, locked: bool) -> None:
        """STS servos keep EEPROM writes (id, baud rate) across power cycles only while unlocked."""
        self._write_by_id("lock", motor_id, int(locked))
