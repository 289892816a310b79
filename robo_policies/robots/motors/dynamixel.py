"""Dynamixel X-series servos over Protocol 2.0, through ROBOTIS' ``dynamixel_sdk``.

The SDK frames packets (header FF FF FD 00, byte stuffing, CRC-16) and times out missing
status packets. This module adds the X-series control table, the models we drive, and what
a status packet's error byte means, and hands ``MotorBus`` one attempt per transaction.

The error byte holds either an instruction error in its low 7 bits (the servo did not carry
out the instruction, e.g. an EEPROM write with torque on) or, in bit 7, an alert: a hardware
fault, whose kind the servo keeps in its Hardware Error Status register (70).

Bus Watchdog (98, ``comm_watchdog``): with torque on, a servo that receives no instruction
packet for longer than its value x 20 ms (1..127) stops by itself, the register reads -1 and
goal writes are refused (data range error) until 0 is written. ``MotorBus`` arms it with
torque and clears a tripped one. It needs firmware 38 or later. On 330-size servos (XL330,
XC330) ROBOTIS reproduced a firmware bug in which the watchdog trips (the register reads -1)
but the motor keeps turning (forum.robotis.com, "Watchdog of XC330-T288-T does not stop
motor"): check yours; the host's own watchdog and safe exits do not depend on it.

The transactions themselves are ``sdk_bus.SdkMotorBus``'s, shared with Feetech's fork of the SDK.

Control table: https://emanual.robotis.com/docs/en/dxl/x/xl430-w250/#control-table
"""

from __future__ import annotations

import math

try:
    import dynamixel_sdk as dxl
except ModuleNotFoundError as err:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError("DynamixelMotorBus needs the dynamixel-sdk package: "
                              "pip install 'robo-policies[hardware]'", name="dynamixel_sdk") from err

from robo_policies.robots.motors.bus import FailedAttempt, ModelSpec, Register
from robo_policies.robots.motors.sdk_bus import LatencyTimeout, SdkMotorBus, StatusLayout

RAD_PER_S_PER_RPM = 2 * math.pi / 60
X_SERIES_VELOCITY_UNIT = 0.229 * RAD_PER_S_PER_RPM
"""rad/s per unit of Goal/Present Velocity (0.229 rpm on every X-series model)."""

X_SERIES_CONTROL_TABLE: dict[str, Register] = {
    "model_number": Register(0, 2),
    "id": Register(7, 1),
    "baud_rate": Register(8, 1),
    "operating_mode": Register(11, 1),
    "homing_offset": Register(20, 4, "twos_complement"),
    "velocity_limit": Register(44, 4),
    "max_position_limit": Register(48, 4),
    "min_position_limit": Register(52, 4),
    "torque_enable": Register(64, 1),
    "hardware_error_status": Register(70, 1),
    "comm_watchdog": Register(98, 1, "twos_complement"),
    "goal_velocity": Register(104, 4, "twos_complement"),
    "profile_velocity": Register(112, 4),
    "goal_position": Register(116, 4, "twos_complement"),
    "moving": Register(122, 1),
    "present_load": Register(126, 2, "twos_complement"),
    "present_velocity": Register(128, 4, "twos_complement"),
    "present_position": Register(132, 4, "twos_complement"),
    "present_input_voltage": Register(144, 2),
    "present_temperature": Register(146, 1),
}

X_SERIES_MODELS: dict[str, ModelSpec] = {
    model: ModelSpec(model_number, ticks_per_revolution=4096, velocity_unit=X_SERIES_VELOCITY_UNIT)
    for model, model_number in {"xl330-m077": 1190, "xl330-m288": 1200, "xl430-w250": 1060,
                                "xc430-w150": 1070, "xm430-w350": 1020}.items()
}

INSTRUCTION_ERRORS = {
    1: "result fail (the instruction could not be processed)",
    2: "instruction error (unknown instruction, or Action without Reg Write)",
    3: "CRC error",
    4: "data range error (value outside the register's range)",
    5: "data length error",
    6: "data limit error (value beyond a limit register)",
    7: "access error (EEPROM write with torque on, or a read-only register)",
}
ALERT_BIT = 0x80
HARDWARE_ERROR_BITS = {0: "input voltage", 2: "overheating", 3: "motor encoder", 4: "electrical shock",
                       5: "overload"}


class _Port(LatencyTimeout, dxl.PortHandler):
    """The SDK's port with the USB latency as a setting."""


class DynamixelMotorBus(SdkMotorBus):
    """Dynamixel X-series servos (Protocol 2.0) on one port; see ``MotorBus``."""

    control_table = X_SERIES_CONTROL_TABLE
    models = X_SERIES_MODELS
    operating_mode_values = {"velocity": 1, "position": 3}
    baudrate_values = {9_600: 0, 57_600: 1, 115_200: 2, 1_000_000: 3, 2_000_000: 4, 3_000_000: 5,
                       4_000_000: 6}
    comm_watchdog_unit_ms = 20.0
    sdk = dxl
    packet_protocol = 2.0
    port_class = _Port
    status_layout = StatusLayout(id=4, error=8, data=9)
    """FF FF FD 00, id, length (2 bytes), instruction 0x55, error, data, CRC (2 bytes)."""

    def _receive_status(self) -> tuple[list[int], int]:
        return self._packets.rxPacket(self._port, False)  # False: not a Fast Sync Read reply

    def _describe_status_error(self, motor_id: int, error: int) -> tuple[str, list[str]]:
        instruction_error = error & ~ALERT_BIT
        if instruction_error:
            return INSTRUCTION_ERRORS.get(instruction_error, f"unknown error {instruction_error}"), []
        if not error & ALERT_BIT:
            return "", []
        register = self.control_table["hardware_error_status"]
        try:
            with self._sdk_parsing():
                data, _ = self._read_once(register, motor_id)
        except FailedAttempt as failure:
            return "", [f"alert (Hardware Error Status unreadable: {failure.reason})"]
        bits = register.decode(data)
        return "", [name for bit, name in HARDWARE_ERROR_BITS.items() if bits & (1 << bit)] or [
            f"alert (Hardware Error Status {bits:#04x})"]

