"""Fake Dynamixel (Protocol 2.0) and Feetech (STS) servo buses on a pseudo-terminal.

The driver under test opens ``fake.port`` (the slave side of a pty, in raw mode) as it would
a USB adapter, so the real driver and vendor SDK run down to the serial port. A thread on the
master side parses instruction packets byte for byte (Dynamixel: header FF FF FD 00, byte
stuffing, CRC-16; Feetech: header FF FF, checksum), keeps a control table per servo id and
answers with byte-exact status packets. It supports ping, read, write, sync read and sync
write, and rejects packets whose CRC or checksum is wrong, as a servo does.

Knobs for tests: ``drop_next_status(n)``, ``drop_every(n)`` (a lossy link: every nth status
packet), ``corrupt_next_status(n)`` (bad CRC/checksum), ``truncate_reads(register, n)``
(replies without their data, checksum valid),
``set_hardware_error(id, bits)``, and motion: with torque on, the present position moves
toward the goal (position mode) or at the goal velocity (velocity mode) by the time passed
on ``clock`` (give it a test's ``FakeClock.now`` and the servos move only when it does).

The register layout here is written from the vendors' documentation independently of the
driver's control tables, so a wrong address in either shows up as a failing test.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

TABLE_SIZE = 256

PING, READ, WRITE, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
BROADCAST_ID = 0xFE


@dataclass
class Instruction:
    motor_id: int
    code: int
    params: bytes


def to_bytes(value: int, size: int, encoding: str) -> bytes:
    """``value`` in a register's encoding: unsigned, twos_complement or sign_magnitude (bit 15)."""
    if encoding == "sign_magnitude":
        value = abs(value) | (0x8000 if value < 0 else 0)
    return (value % 2 ** (8 * size)).to_bytes(size, "little")


def from_bytes(data: bytes, encoding: str) -> int:
    raw = int.from_bytes(data, "little")
    if encoding == "twos_complement" and raw >= 2 ** (8 * len(data) - 1):
        return raw - 2 ** (8 * len(data))
    if encoding == "sign_magnitude":
        return -(raw & 0x7FFF) if raw & 0x8000 else raw
    return raw


def crc16_dynamixel(data: bytes) -> int:
    """Protocol 2.0's CRC-16: polynomial 0x8005, initial value 0, not reflected, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Protocol 2.0 byte stuffing: FD after every FF FF FD, so no header appears in a body."""
    out = bytearray()
    for byte in body:
        out.append(byte)
        if out[-3:] == b"\xff\xff\xfd":
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    out = bytearray()
    index = 0
    while index < len(body):
        out.append(body[index])
        if out[-3:] == b"\xff\xff\xfd" and index + 1 < len(body) and body[index + 1] == 0xFD:
            index += 1  # the stuffing byte
        index += 1
    return bytes(out)


class FakeServoBus(ABC):
    """Servos on a pty (see the module docstring); subclasses speak one vendor's protocol.

    Args:
        model_numbers: servo id -> the model number it reports when pinged.
        speed_ticks_per_s: how fast a servo moves to its goal position.
        clock: seconds the motion follows (default: the wall clock).
    """

    registers: dict[str, tuple[int, int, str]]
    """Register name -> (address, size, encoding)."""
    address_size: int
    """Bytes of an address or a length in READ / SYNC_READ parameters."""
    velocity_mode: int
    """The operating mode value of velocity control."""
    ticks_per_s_per_velocity_unit: float

    def __init__(self, model_numbers: dict[int, int], speed_ticks_per_s: float = 4096.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.speed_ticks_per_s = speed_ticks_per_s
        self.clock = clock
        self.tables = {motor_id: self._initial_table(motor_id, model) for motor_id, model in model_numbers.items()}
        self.instructions: list[Instruction] = []
        """Every valid instruction received, in order."""
        self.rejected_packets = 0
        """Instruction packets with a bad CRC or checksum (ignored, as a servo does)."""
        self._drop = 0
        self._drop_period = 0
        self._statuses = 0
        """Status packets due since ``drop_every`` was called (sent or not)."""
        self.dropped = 0
        """Status packets not sent because a knob dropped them."""
        self._corrupt = 0
        self._truncate: tuple[int, int, int] = (-1, 0, 0)
        """(address, reads still answered whole, reads to answer without data)."""
        self.truncated = 0
        """Read replies sent without their data by ``truncate_reads``."""
        self._fraction: dict[int, float] = {}
        """Sub-tick part of each moving servo's position."""
        self._last_motion = clock()
        self._lock = threading.Lock()
        self._handled = threading.Condition(self._lock)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"fake-servos {self.port}", daemon=True)
        self._thread.start()

    # -- knobs and inspection ----------------------------------------------------------------

    def drop_next_status(self, count: int = 1) -> None:
        """Send nothing instead of the next ``count`` status packets (0 cancels)."""
        with self._lock:
            self._drop = count

    def drop_every(self, period: int) -> None:
        """From now on send nothing instead of every ``period``-th status packet (0 stops)."""
        with self._lock:
            self._drop_period, self._statuses = period, 0

    def corrupt_next_status(self, count: int = 1) -> None:
        """Send the next ``count`` status packets with a wrong CRC / checksum (0 cancels)."""
        with self._lock:
            self._corrupt = count

    def truncate_reads(self, register: str, count: int = 1, after: int = 0) -> None:
        """Answer ``count`` reads of ``register``, after ``after`` more answered whole, with a
        status packet carrying no data: a partial reply whose checksum is valid, which an SDK
        may index past."""
        with self._lock:
            self._truncate = (self.registers[register][0], after, count)

    @abstractmethod
    def set_hardware_error(self, motor_id: int, bits: int) -> None:
        """Raise hardware fault bits on a servo (0 clears them)."""

    def value(self, motor_id: int, name: str) -> int:
        address, size, encoding = self.registers[name]
        return from_bytes(self.bytes_at(motor_id, address, size), encoding)

    def set_value(self, motor_id: int, name: str, value: int) -> None:
        address, size, encoding = self.registers[name]
        with self._lock:
            self.tables[motor_id][address:address + size] = to_bytes(value, size, encoding)
            self._fraction.pop(motor_id, None)

    def bytes_at(self, motor_id: int, address: int, size: int) -> bytes:
        with self._lock:
            return bytes(self.tables[motor_id][address:address + size])

    @contextmanager
    def handled(self, code: int, count: int = 1, timeout: float = 2.0) -> Iterator[None]:
        """Wait at the end of the block until ``count`` more instructions of kind ``code`` were
        handled: a sync write gets no reply, so a test waits here before looking at registers."""
        expected = self.count(code) + count
        yield
        with self._handled:
            if not self._handled.wait_for(lambda: self._count(code) >= expected, timeout):
                raise TimeoutError(f"{self.port}: {count} instruction(s) {code:#04x} not handled in {timeout} s")

    def writes(self, register: str) -> list[tuple[int, int, int]]:
        """(index in ``instructions``, motor id, value) of every single write to ``register``."""
        address, size, encoding = self.registers[register]
        n = self.address_size
        return [(index, instruction.motor_id, from_bytes(instruction.params[n:n + size], encoding))
                for index, instruction in enumerate(self.instructions)
                if instruction.code == WRITE and int.from_bytes(instruction.params[:n], "little") == address]

    def count(self, code: int) -> int:
        """How many instructions of one kind (PING, READ, ...) were handled."""
        with self._lock:
            return self._count(code)

    def _count(self, code: int) -> int:
        return sum(1 for instruction in self.instructions if instruction.code == code)

    def close(self) -> None:
        """Stop serving and close the pty: to the driver, the adapter was unplugged. Closing
        again does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self) -> FakeServoBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what a vendor provides ------------------------------------------------------------------

    @abstractmethod
    def _initial_table(self, motor_id: int, model_number: int) -> bytearray:
        """A servo's control table at power-on."""

    @abstractmethod
    def _parse(self, buffer: bytearray) -> tuple[Instruction | None, int]:
        """(the instruction at the start of ``buffer`` or None, bytes consumed); 0 consumed:
        wait for more bytes."""

    @abstractmethod
    def status_packet(self, motor_id: int, error: int, params: bytes) -> bytes:
        """A byte-exact status packet."""

    @abstractmethod
    def _ping_params(self, motor_id: int) -> bytes:
        """The parameters of a ping's status packet."""

    @abstractmethod
    def _status_error(self, motor_id: int) -> int:
        """The hardware fault part of the servo's status error byte."""

    def _write_error(self, motor_id: int, address: int) -> int:
        """The instruction error of a write (0: the write is carried out)."""
        return 0

    # -- the servos ----------------------------------------------------------------------------------

    def _serve(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.02)
            if not readable:
                continue
            buffer += os.read(self._master, 4096)
            while True:
                instruction, consumed = self._parse(buffer)
                if not consumed:
                    break
                del buffer[:consumed]
                if instruction is not None:
                    self._send(self._handle(instruction))

    def _handle(self, instruction: Instruction) -> list[bytes]:
        with self._handled:
            replies = self._execute(instruction)
            self.instructions.append(instruction)
            self._handled.notify_all()
            return replies

    def _execute(self, instruction: Instruction) -> list[bytes]:
        """Carry out one instruction on the control tables; the status packets to send."""
        self._move(self.clock())
        params, n = instruction.params, self.address_size
        if instruction.code == SYNC_READ:
            address, size = int.from_bytes(params[:n], "little"), int.from_bytes(params[n:2 * n], "little")
            return [self._reply(motor_id, bytes(self.tables[motor_id][address:address + size]))
                    for motor_id in params[2 * n:] if motor_id in self.tables]
        if instruction.code == SYNC_WRITE:
            address, size = int.from_bytes(params[:n], "little"), int.from_bytes(params[n:2 * n], "little")
            entries = params[2 * n:]
            for start in range(0, len(entries), size + 1):
                motor_id, data = entries[start], entries[start + 1:start + 1 + size]
                if motor_id in self.tables and not self._write_error(motor_id, address):
                    self._store(motor_id, address, data)
            return []
        motor_id = instruction.motor_id
        if motor_id not in self.tables:
            return []
        if instruction.code == PING:
            return [self._reply(motor_id, self._ping_params(motor_id))]
        if instruction.code == READ:
            address, size = int.from_bytes(params[:n], "little"), int.from_bytes(params[n:2 * n], "little")
            data = b"" if self._truncating(address) else bytes(self.tables[motor_id][address:address + size])
            return [self._reply(motor_id, data)]
        if instruction.code == WRITE:
            address = int.from_bytes(params[:n], "little")
            error = self._write_error(motor_id, address)
            reply = self._reply(motor_id, b"", error)
            if not error:
                self._store(motor_id, address, params[n:])
            return [reply]
        return [self._reply(motor_id, b"", 2)]  # instruction error

    def _truncating(self, address: int) -> bool:
        """Whether ``truncate_reads`` takes the data out of this reply to a read at ``address``."""
        truncated_address, after, count = self._truncate
        if address != truncated_address or not count:
            return False
        if after:
            self._truncate = (address, after - 1, count)
            return False
        self._truncate = (address, 0, count - 1)
        self.truncated += 1
        return True

    def _reply(self, motor_id: int, params: bytes, error: int = 0) -> bytes:
        return self.status_packet(motor_id, error | self._status_error(motor_id), params)

    def _store(self, motor_id: int, address: int, data: bytes) -> None:
        self.tables[motor_id][address:address + len(data)] = data
        id_address = self.registers["id"][0]
        new_id = self.tables[motor_id][id_address]
        if new_id != motor_id:
            self.tables[new_id] = self.tables.pop(motor_id)

    def _send(self, packets: list[bytes]) -> None:
        with self._lock:
            out = bytearray()
            for packet in packets:
                if self._dropping():
                    self.dropped += 1
                    continue
                if self._corrupt:
                    self._corrupt -= 1
                    packet = packet[:-1] + bytes([packet[-1] ^ 0xFF])
                out += packet
        view = memoryview(bytes(out))
        while view:
            view = view[os.write(self._master, view):]

    def _dropping(self) -> bool:
        """Whether the knobs drop the status packet about to be sent (asked once per packet)."""
        self._statuses += 1
        if self._drop:
            self._drop -= 1
            return True
        return bool(self._drop_period) and self._statuses % self._drop_period == 0

    def _move(self, now: float) -> None:
        """Advance every servo that drives to its goal by the time since the last instruction."""
        dt, self._last_motion = now - self._last_motion, now
        for motor_id in self.tables:
            if not self._drives(motor_id):
                continue
            position = self._get(motor_id, "present_position") + self._fraction.get(motor_id, 0.0)
            if self._get(motor_id, "operating_mode") == self.velocity_mode:
                velocity_units = self._get(motor_id, "goal_velocity")
                position += velocity_units * self.ticks_per_s_per_velocity_unit * dt
            else:
                goal = self._get(motor_id, "goal_position")
                step = min(abs(goal - position), self.speed_ticks_per_s * dt) * (1 if goal > position else -1)
                position += step
                velocity_units = round(step / dt / self.ticks_per_s_per_velocity_unit) if dt > 0 else 0
            whole = int(position // 1)
            self._fraction[motor_id] = position - whole
            self._put(motor_id, "present_position", self._wrap(whole))
            self._put(motor_id, "present_velocity", velocity_units)

    def _drives(self, motor_id: int) -> bool:
        """Whether the servo drives to its goal (torque on)."""
        return bool(self._get(motor_id, "torque_enable"))

    def _wrap(self, ticks: int) -> int:
        return ticks

    def _get(self, motor_id: int, name: str) -> int:
        address, size, encoding = self.registers[name]
        return from_bytes(bytes(self.tables[motor_id][address:address + size]), encoding)

    def _put(self, motor_id: int, name: str, value: int) -> None:
        address, size, encoding = self.registers[name]
        self.tables[motor_id][address:address + size] = to_bytes(value, size, encoding)


class FakeDynamixelBus(FakeServoBus):
    """X-series servos speaking Protocol 2.0 (https://emanual.robotis.com/docs/en/dxl/protocol2/).

    Their Bus Watchdog (98) is emulated: armed (1..127, in 20 ms) with torque on, a servo that
    receives no instruction for longer than its window stops at that moment (a wheel at speed
    0, a joint where it is), the register reads -1 and goal writes are refused with a data
    range error until a write to the register clears it.
    """

    registers = {
        "model_number": (0, 2, "unsigned"),
        "id": (7, 1, "unsigned"),
        "baud_rate": (8, 1, "unsigned"),
        "operating_mode": (11, 1, "unsigned"),
        "torque_enable": (64, 1, "unsigned"),
        "hardware_error_status": (70, 1, "unsigned"),
        "comm_watchdog": (98, 1, "twos_complement"),
        "goal_velocity": (104, 4, "twos_complement"),
        "goal_position": (116, 4, "twos_complement"),
        "present_velocity": (128, 4, "twos_complement"),
        "present_position": (132, 4, "twos_complement"),
    }
    address_size = 2
    velocity_mode = 1
    ticks_per_s_per_velocity_unit = 0.229 * 4096 / 60
    HEADER = b"\xff\xff\xfd\x00"
    EEPROM_END = 64
    """Addresses below this are EEPROM: writable only with torque off."""
    WATCHDOG_UNIT_S = 0.020
    WATCHDOG_TRIPPED = -1
    ACCESS_ERROR, DATA_RANGE_ERROR = 7, 4

    def __init__(self, *args, **kwargs) -> None:
        self._heard_at: dict[int, float] = {}
        """Servo id -> ``clock()`` when it last received an instruction (its watchdog counts from there)."""
        super().__init__(*args, **kwargs)

    def set_hardware_error(self, motor_id: int, bits: int) -> None:
        self.set_value(motor_id, "hardware_error_status", bits)

    def _execute(self, instruction: Instruction) -> list[bytes]:
        now = self.clock()
        self._trip_watchdogs(now)
        replies = super()._execute(instruction)
        for motor_id in self.tables:
            if instruction.motor_id in (motor_id, BROADCAST_ID):
                self._heard_at[motor_id] = now
        return replies

    def _trip_watchdogs(self, now: float) -> None:
        """Stop each servo whose watchdog ran out before ``now``, at the moment it ran out."""
        due = sorted((deadline, motor_id) for motor_id in self.tables
                     if (deadline := self._watchdog_deadline(motor_id)) is not None and deadline < now)
        for deadline, motor_id in due:
            self._move(deadline)  # the motion until then still happened
            self._put(motor_id, "comm_watchdog", self.WATCHDOG_TRIPPED)
            self._put(motor_id, "present_velocity", 0)

    def _watchdog_deadline(self, motor_id: int) -> float | None:
        """When an armed watchdog of a servo with torque on runs out; None: it is not watching."""
        window = self._get(motor_id, "comm_watchdog")
        if window <= 0 or not self._get(motor_id, "torque_enable") or motor_id not in self._heard_at:
            return None
        return self._heard_at[motor_id] + window * self.WATCHDOG_UNIT_S

    def _drives(self, motor_id: int) -> bool:
        return super()._drives(motor_id) and self._get(motor_id, "comm_watchdog") != self.WATCHDOG_TRIPPED

    def _initial_table(self, motor_id: int, model_number: int) -> bytearray:
        table = bytearray(TABLE_SIZE)
        table[0:2] = model_number.to_bytes(2, "little")
        table[6] = 52  # firmware version
        table[7] = motor_id
        table[8] = 3  # 1 Mbps
        table[11] = 3  # position control
        table[48:52] = (4095).to_bytes(4, "little")  # max position limit
        table[116:120] = table[132:136] = (2048).to_bytes(4, "little")
        return table

    def _parse(self, buffer: bytearray) -> tuple[Instruction | None, int]:
        start = buffer.find(self.HEADER)
        if start < 0:
            return None, max(len(buffer) - 3, 0)  # keep what may be the start of a header
        if start > 0:
            return None, start
        if len(buffer) < 7:
            return None, 0
        total = 7 + int.from_bytes(buffer[5:7], "little")
        if len(buffer) < total:
            return None, 0
        packet = bytes(buffer[:total])
        if crc16_dynamixel(packet[:-2]) != int.from_bytes(packet[-2:], "little"):
            self.rejected_packets += 1
            return None, total
        body = unstuff(packet[7:-2])
        return Instruction(packet[4], body[0], body[1:]), total

    def status_packet(self, motor_id: int, error: int, params: bytes) -> bytes:
        body = stuff(bytes([0x55, error]) + params)
        head = self.HEADER + bytes([motor_id]) + (len(body) + 2).to_bytes(2, "little")
        return head + body + crc16_dynamixel(head + body).to_bytes(2, "little")

    def _ping_params(self, motor_id: int) -> bytes:
        return bytes(self.tables[motor_id][0:2]) + bytes([self.tables[motor_id][6]])

    def _status_error(self, motor_id: int) -> int:
        return 0x80 if self.tables[motor_id][70] else 0  # the alert bit

    def _write_error(self, motor_id: int, address: int) -> int:
        if address < self.EEPROM_END and self._get(motor_id, "torque_enable"):
            return self.ACCESS_ERROR
        goals = (self.registers["goal_velocity"][0], self.registers["goal_position"][0])
        if address in goals and self._get(motor_id, "comm_watchdog") == self.WATCHDOG_TRIPPED:
            return self.DATA_RANGE_ERROR  # read-only until the watchdog is cleared
        return 0


class FakeFeetechBus(FakeServoBus):
    """STS servos (STS3215 memory table): little-endian, sign-magnitude speeds (bit 15)."""

    registers = {
        "model_number": (3, 2, "unsigned"),
        "id": (5, 1, "unsigned"),
        "baud_rate": (6, 1, "unsigned"),
        "operating_mode": (33, 1, "unsigned"),
        "torque_enable": (40, 1, "unsigned"),
        "goal_position": (42, 2, "sign_magnitude"),
        "goal_velocity": (46, 2, "sign_magnitude"),
        "lock": (55, 1, "unsigned"),
        "present_position": (56, 2, "sign_magnitude"),
        "present_velocity": (58, 2, "sign_magnitude"),
        "status": (65, 1, "unsigned"),
    }
    address_size = 1
    velocity_mode = 1
    ticks_per_s_per_velocity_unit = 1.0

    def set_hardware_error(self, motor_id: int, bits: int) -> None:
        self.set_value(motor_id, "status", bits)

    def _initial_table(self, motor_id: int, model_number: int) -> bytearray:
        table = bytearray(TABLE_SIZE)
        table[3:5] = model_number.to_bytes(2, "little")
        table[5] = motor_id
        table[11:13] = (4095).to_bytes(2, "little")  # max angle limit
        table[42:44] = table[56:58] = (2048).to_bytes(2, "little")
        table[55] = 1  # locked
        return table

    def _parse(self, buffer: bytearray) -> tuple[Instruction | None, int]:
        start = buffer.find(b"\xff\xff")
        if start < 0:
            return None, max(len(buffer) - 1, 0)
        if start > 0:
            return None, start
        if len(buffer) < 4:
            return None, 0
        if buffer[2] == 0xFF:  # FF FF FF: the header starts one byte later
            return None, 1
        total = 4 + buffer[3]
        if len(buffer) < total:
            return None, 0
        packet = bytes(buffer[:total])
        if ~sum(packet[2:-1]) & 0xFF != packet[-1]:
            self.rejected_packets += 1
            return None, total
        return Instruction(packet[2], packet[4], packet[5:-1]), total

    def status_packet(self, motor_id: int, error: int, params: bytes) -> bytes:
        body = bytes([motor_id, len(params) + 2, error]) + params
        return b"\xff\xff" + body + bytes([~sum(body) & 0xFF])

    def _ping_params(self, motor_id: int) -> bytes:
        return b""

    def _status_error(self, motor_id: int) -> int:
        return self.tables[motor_id][65]

    def _wrap(self, ticks: int) -> int:
        return ticks % 4096  # one turn of the magnetic encoder
