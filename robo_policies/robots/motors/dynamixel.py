"""Dynamixel X-series servos over Protocol 2.0, through ROBOTIS' ``dynamixel_sdk``.

The SDK frames packets (header FF FF FD 00, byte stuffing, CRC-16) and times out missing
status packets. This module adds the X-series control table, the models we drive, and what
a status packet's error byte means, and hands ``MotorBus`` one attempt per transaction.

The error byte holds either an instruction error in its low 7 bits (the servo did not carry
out the instruction, e.g. an EEPROM write with torque on) or, in bit 7, an alert: a hardware
fault, whose kind the servo keeps in its Hardware Error Status register (70).

Sync reads send the instruction with ``GroupSyncRead`` but read each reply with
``PacketHandler.readRx``, because ``GroupSyncRead.rxPacket`` drops the error byte, and with it
the servo's only way to say it is overloaded or overheating.

Control table: https://emanual.robotis.com/docs/en/dxl/x/xl430-w250/#control-table
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

try:
    import dynamixel_sdk as dxl
except ModuleNotFoundError as err:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError("DynamixelMotorBus needs the dynamixel-sdk package: "
                              "pip install 'robo-policies[hardware]'", name="dynamixel_sdk") from err

from robo_policies.robots.motors.bus import (FailedAttempt, ModelSpec, MotorBus, MotorBusError, Register,
                                            reply_bytes)

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


class _Port(dxl.PortHandler):
    """The SDK's port, with the status timeout's USB latency as a setting (the SDK fixes 16 ms)."""

    def __init__(self, port_name: str, latency_timer_ms: float) -> None:
        super().__init__(port_name)
        self.latency_timer_ms = latency_timer_ms

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 - the SDK's name
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * packet_length + 2 * self.latency_timer_ms + 2.0


class DynamixelMotorBus(MotorBus):
    """Dynamixel X-series servos (Protocol 2.0) on one port; see ``MotorBus``."""

    control_table = X_SERIES_CONTROL_TABLE
    models = X_SERIES_MODELS
    operating_mode_values = {"velocity": 1, "position": 3}
    baudrate_values = {9_600: 0, 57_600: 1, 115_200: 2, 1_000_000: 3, 2_000_000: 4, 3_000_000: 5,
                       4_000_000: 6}

    def _open_port(self) -> None:
        self._port = _Port(self.port, self.latency_timer_ms)
        self._packets = dxl.PacketHandler(2.0)
        try:
            opened = self._port.setBaudRate(self.baudrate)
        except OSError as err:  # serial.SerialException is an OSError
            raise MotorBusError(f"cannot open {self.port}: {err}", port=self.port, cause=str(err)) from err
        if not opened:
            raise MotorBusError(f"cannot open {self.port} at {self.baudrate} bit/s", port=self.port)

    def _close_port(self) -> None:
        self._port.closePort()

    def _discard_input(self) -> None:
        self._port.is_using = False
        self._port.ser.reset_input_buffer()

    def _check(self, result: int, motor_id: int | None) -> None:
        if result != dxl.COMM_SUCCESS:
            raise FailedAttempt(self._packets.getTxRxResult(result), motor_id)

    def _ping_once(self, motor_id: int) -> int:
        model_number, result, _ = self._packets.ping(self._port, motor_id)
        self._check(result, motor_id)
        return model_number

    def _read_once(self, register: Register, motor_id: int) -> tuple[bytes, int]:
        data, result, error = self._packets.readTxRx(self._port, motor_id, register.address, register.size)
        self._check(result, motor_id)
        return reply_bytes(data, register, motor_id), error

    def _write_once(self, register: Register, motor_id: int, data: bytes) -> int:
        result, error = self._packets.writeTxRx(self._port, motor_id, register.address, register.size, list(data))
        self._check(result, motor_id)
        return error

    def _write_without_reply(self, register: Register, motor_id: int, data: bytes) -> None:
        result = self._packets.writeTxOnly(self._port, motor_id, register.address, register.size, list(data))
        self._check(result, motor_id)

    def _sync_read_once(self, register: Register, motor_ids: Sequence[int]) -> dict[int, tuple[bytes, int]]:
        group = dxl.GroupSyncRead(self._port, self._packets, register.address, register.size)
        for motor_id in motor_ids:
            group.addParam(motor_id)
        self._check(group.txPacket(), None)
        replies = {}
        for motor_id in motor_ids:
            data, result, error = self._packets.readRx(self._port, motor_id, register.size)
            self._check(result, motor_id)
            replies[motor_id] = (reply_bytes(data, register, motor_id), error)
        return replies

    def _sync_write_once(self, register: Register, data_by_id: Mapping[int, bytes]) -> None:
        group = dxl.GroupSyncWrite(self._port, self._packets, register.address, register.size)
        for motor_id, data in data_by_id.items():
            group.addParam(motor_id, list(data))
        self._check(group.txPacket(), None)

    def _describe_status_error(self, motor_id: int, error: int) -> tuple[str, list[str]]:
        instruction_error = error & ~ALERT_BIT
        if instruction_error:
            return INSTRUCTION_ERRORS.get(instruction_error, f"unknown error {instruction_error}"), []
        if not error & ALERT_BIT:
            return "", []
        register = self.control_table["hardware_error_status"]
        try:
            data, _ = self._read_once(register, motor_id)
        except FailedAttempt as failure:
            return "", [f"alert (Hardware Error Status unreadable: {failure.reason})"]
        bits = register.decode(data)
        return "", [name for bit, name in HARDWARE_ERROR_BITS.items() if bits & (1 << bit)] or [
            f"alert (Hardware Error Status {bits:#04x})"]

