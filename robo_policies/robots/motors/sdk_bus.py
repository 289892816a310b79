"""``MotorBus`` transactions through a ROBOTIS-style vendor SDK, once for both vendors.

ROBOTIS' ``dynamixel_sdk`` and Feetech's ``scservo_sdk`` (a fork of it) have the same shape:
a ``PortHandler``, a ``PacketHandler`` with ping/read/write calls that return a result code
and the status packet's error byte, and ``GroupSyncRead``/``GroupSyncWrite``. A vendor bus
names its SDK module, its packet protocol and its port class, and adds its control table,
models and the meaning of the error byte.

Sync reads send the instruction with ``GroupSyncRead`` and take the status packets as they
come (``PacketHandler.rxPacket``), each matched to its motor by the id it carries:
``GroupSyncRead.rxPacket`` drops the error byte, and with it a servo's only way to say it is
overloaded or overheating, and ``readRx`` skips the later motors' packets while it waits for
one that was lost. Servos answer in the order they were asked, so the last one's packet ends
the wait; ``MotorBus`` then asks again only the motors whose packet was missing or corrupt.

The wait for a status packet sleeps (``LatencyTimeout``): the SDKs poll the port until their
timeout without sleeping, a busy loop that at real-time priority keeps the CPU from the very
work that delivers the reply (the kernel's USB and tty handling, a fake bus's thread).

The SDKs index a status packet's bytes without checking its length, so a garbled or partial
reply can raise inside them (``scservo_sdk``'s ping reads two bytes of a model-number reply
that has none: IndexError). Such an exception is a failed attempt like a corrupt packet:
retried, then reported as a ``MotorCommunicationError`` naming the port and motors.
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, ClassVar, Mapping, Sequence, TypeVar

from robo_policies.robots.motors.bus import PORT_ERRORS, FailedAttempt, MotorBus, MotorBusError, Register, reply_bytes

T = TypeVar("T")
SDK_REPLY_ERRORS: tuple[type[Exception], ...] = (IndexError, TypeError, ValueError)
"""What an SDK raises on a reply it cannot parse (see the module docstring); only when raised
inside the SDK: the same exception from our own code is a bug and keeps its traceback."""


class LatencyTimeout:
    """Mix into an SDK ``PortHandler``: the status timeout's USB latency becomes a setting
    (the SDKs fix 16 ms, the Linux FTDI default), and the wait for status bytes sleeps.

    The SDKs' reply loops call ``readPort`` (pyserial with ``timeout=0``) again and again until
    the packet timeout. Here it blocks in ``select`` until a byte arrives or the timeout
    passes; bytes already waiting are returned at once, so a reply is not read any later.
    """

    def __init__(self, port_name: str, latency_timer_ms: float) -> None:
        super().__init__(port_name)  # type: ignore[call-arg]
        self.latency_timer_ms = latency_timer_ms

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 - the SDK's name
        self.packet_start_time = self.getCurrentTime()  # type: ignore[attr-defined]
        self.packet_timeout = self.tx_time_per_byte * packet_length + 2 * self.latency_timer_ms + 2.0  # type: ignore[attr-defined]

    def readPort(self, length: int) -> bytes:  # noqa: N802 - the SDK's name
        time_left_ms = self.packet_timeout - self.getTimeSinceStart()  # type: ignore[attr-defined]
        if length > 0 and time_left_ms > 0:
            select.select([self.ser.fileno()], [], [], time_left_ms / 1000.0)  # type: ignore[attr-defined]
        return self.ser.read(length)  # type: ignore[attr-defined]


def _raised_inside(err: BaseException, package: ModuleType) -> bool:
    """Whether the innermost frame of ``err``'s traceback is in ``package``'s code."""
    traceback = err.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback is not None and traceback.tb_frame.f_code.co_filename.startswith(
        os.path.dirname(package.__file__ or ""))


@dataclass(frozen=True)
class StatusLayout:
    """Where a status packet, as the SDK's ``rxPacket`` returns it, holds its fields (the
    indices the SDK's ``readRx`` uses)."""

    id: int
    error: int
    data: int
    """The first register byte."""


class SdkMotorBus(MotorBus):
    """One attempt at each transaction, through ``sdk`` (see the module docstring)."""

    sdk: ClassVar[ModuleType]
    """The vendor SDK module."""
    packet_protocol: ClassVar[float]
    """The argument of ``sdk.PacketHandler`` (Dynamixel: protocol 2.0; Feetech: byte order 0)."""
    port_class: ClassVar[type]
    """``LatencyTimeout`` mixed into ``sdk.PortHandler``."""
    status_layout: ClassVar[StatusLayout]
    """Where the vendor's status packets hold the servo's id, error byte and data."""

    def _retrying(self, action: str, register: str | None, motor_ids: Sequence[int],
                  attempt: Callable[[], T], retries: int | None = None) -> T:
        def parsed() -> T:
            with self._sdk_parsing():
                return attempt()

        return super()._retrying(action, register, motor_ids, parsed, retries)

    @contextmanager
    def _sdk_parsing(self) -> Iterator[None]:
        """An exception the SDK raises on a reply it cannot parse becomes a ``FailedAttempt``."""
        try:
            yield
        except SDK_REPLY_ERRORS as err:
            if not _raised_inside(err, self.sdk):
                raise
            raise FailedAttempt(f"garbled status packet ({type(err).__name__} in {self.sdk.__name__}: "
                                f"{err})") from err

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

    def _check(self, result: int, motor_ids: Sequence[int] = ()) -> None:
        if result != self.sdk.COMM_SUCCESS:
            raise FailedAttempt(self._packets.getTxRxResult(result), motor_ids)

    def _receive_status(self) -> tuple[list[int], int]:
        """The next status packet on the port and the SDK's result code."""
        return self._packets.rxPacket(self._port)

    def _ping_once(self, motor_id: int) -> int:
        model_number, result, _ = self._packets.ping(self._port, motor_id)
        self._check(result, [motor_id])
        return model_number

    def _read_once(self, register: Register, motor_id: int) -> tuple[bytes, int]:
        data, result, error = self._packets.readTxRx(self._port, motor_id, register.address, register.size)
        self._check(result, [motor_id])
        return reply_bytes(data, register, motor_id), error

    def _write_once(self, register: Register, motor_id: int, data: bytes) -> int:
        result, error = self._packets.writeTxRx(self._port, motor_id, register.address, register.size, list(data))
        self._check(result, [motor_id])
        return error

    def _write_without_reply(self, register: Register, motor_id: int, data: bytes) -> None:
        result = self._packets.writeTxOnly(self._port, motor_id, register.address, register.size, list(data))
        self._check(result, [motor_id])

    def _sync_read_once(self, register: Register, motor_ids: Sequence[int]) -> dict[int, tuple[bytes, int]]:
        group = self.sdk.GroupSyncRead(self._port, self._packets, register.address, register.size)
        for motor_id in motor_ids:
            group.addParam(motor_id)
        self._check(group.txPacket())
        replies: dict[int, tuple[bytes, int]] = {}
        problems: dict[str, None] = {}
        """What went wrong with the packets that failed, each said once, in order."""
        while motor_ids[-1] not in replies:
            packet, result = self._receive_status()
            if result != self.sdk.COMM_SUCCESS:
                problems[self._packets.getTxRxResult(result)] = None
                if result == self.sdk.COMM_RX_TIMEOUT:
                    break
                continue  # a corrupt packet: the next motors' may still come
            layout = self.status_layout
            motor_id = packet[layout.id]
            if motor_id not in motor_ids:
                continue
            try:
                data = packet[layout.data:layout.data + register.size]
                replies[motor_id] = (reply_bytes(data, register, motor_id), packet[layout.error])
            except FailedAttempt as failure:
                problems[failure.reason] = None
        missing = [motor_id for motor_id in motor_ids if motor_id not in replies]
        if missing:
            no_packet = self._packets.getTxRxResult(self.sdk.COMM_RX_TIMEOUT)
            raise FailedAttempt("; ".join(problems) or no_packet, missing, replies)
        return replies

    def _sync_write_once(self, register: Register, data_by_id: Mapping[int, bytes]) -> None:
        group = self.sdk.GroupSyncWrite(self._port, self._packets, register.address, register.size)
        for motor_id, data in data_by_id.items():
            group.addParam(motor_id, list(data))
        self._check(group.txPacket())
