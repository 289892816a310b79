"""``MotorBus`` transactions through a ROBOTIS-style vendor SDK, once for both vendors.

ROBOTIS' ``dynamixel_sdk`` and Feetech's ``scservo_sdk`` (a fork of it) have the same shape:
a ``PortHandler``, a ``PacketHandler`` with ping/read/write calls that return a result code
and the status packet's error byte, and ``GroupSyncRead``/``GroupSyncWrite``. A vendor bus
names its SDK module, its packet protocol and its port class, and adds its control table,
models and the meaning of the error byte.

Sync reads send the instruction with ``GroupSyncRead`` but read each reply with
``PacketHandler.readRx``, because ``GroupSyncRead.rxPacket`` drops the error byte, and with it
a servo's only way to say it is overloaded or overheating.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar, Mapping, Sequence

from robo_policies.robots.motors.bus import PORT_ERRORS, FailedAttempt, MotorBus, MotorBusError, Register, reply_bytes


class LatencyTimeout:
    """Mix into an SDK ``PortHandler``: the status timeout's USB latency becomes a setting
    (the SDKs fix 16 ms, the Linux FTDI default)."""

    def __init__(self, port_name: str, latency_timer_ms: float) -> None:
        super().__init__(port_name)  # type: ignore[call-arg]
        self.latency_timer_ms = latency_timer_ms

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 - the SDK's name
        self.packet_start_time = self.getCurrentTime()  # type: ignore[attr-defined]
        self.packet_timeout = self.tx_time_per_byte * packet_length + 2 * self.latency_timer_ms + 2.0  # type: ignore[attr-defined]


class SdkMotorBus(MotorBus):
    """One attempt at each transaction, through ``sdk`` (see the module docstring)."""

    sdk: ClassVar[ModuleType]
    """The vendor SDK module."""
    packet_protocol: ClassVar[float]
    """The argument of ``sdk.PacketHandler`` (Dynamixel: protocol 2.0; Feetech: byte order 0)."""
    port_class: ClassVar[type]
    """``LatencyTimeout`` mixed into ``sdk.PortHandler``."""

    def _open_port(self) -> None:
        self._port: Any = self.port_class(self.port, self.latency_timer_ms)
        self._packets: Any = self.sdk.PacketHandler(self.packet_protocol)
        try:
            opened = self._port.setBaudRate(self.baudrate)
        except PORT_ERRORS as err:
            raise MotorBusError(f"cannot open {self.port}: {err}", port=self.port, cause=str(err)) from err
        if not opened:
            raise MotorBusError(f"cannot open {self.port} at {self.baudrate} bit/s", port=self.port)

    def _close_port(self) -> None:
        self._port.closePort()

    def _discard_input(self) -> None:
        self._port.is_using = False
        self._port.ser.reset_input_buffer()

    def _check(self, result: int, motor_id: int | None) -> None:
        if result != self.sdk.COMM_SUCCESS:
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
        group = self.sdk.GroupSyncRead(self._port, self._packets, register.address, register.size)
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
        group = self.sdk.GroupSyncWrite(self._port, self._packets, register.address, register.size)
        for motor_id, data in data_by_id.items():
            group.addParam(motor_id, list(data))
        self._check(group.txPacket(), None)
