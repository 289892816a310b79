"""First contact with new hardware: which serial port the adapter is, and servo ids and baud rates.

``robo robot find-port`` names the adapter's port by listing the ports, asking the user to
unplug it, and listing them again. ``robo robot setup-motors`` gives each servo its
configured id and baud rate: servos leave the factory all with the same id (1), so they
must be set one at a time, with only that servo on the bus.

Both ask the user to act (unplug, connect a servo) through ``prompt``, ``terminal_prompt``
by default, so a test answers with a function that changes its fake bus instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from robo_policies.robots.config import RobotConfig
from robo_policies.robots.motors import Motor, MotorBus, motor_bus_class
from robo_policies.robots.motors.bus import MAX_MOTOR_ID
from robo_policies.utils.errors import ConfigError, DeviceFault

Prompt = Callable[[str], object]
"""Shows a message and returns when the user has done what it asks (``terminal_prompt``)."""

FACTORY_BAUDRATES = {"dynamixel": (57_600,), "feetech": (1_000_000,)}
"""Baud rates servos leave the factory with (Dynamixel X-series: 57600; Feetech STS: 1 Mbit/s)."""


def serial_ports() -> list[str]:
    """The serial ports present now (pyserial's list, e.g. /dev/ttyUSB0, /dev/ttyACM0)."""
    try:
        from serial.tools import list_ports
    except ImportError as err:
        raise ImportError("listing serial ports needs pyserial: pip install 'robo-policies[hardware]'") from err
    return sorted(port.device for port in list_ports.comports())


def terminal_prompt(message: str) -> str:
    """``input`` for a person at a terminal. With standard input not one (a pipe, /dev/null, a
    CI job) nobody can answer: a ConfigError says so, instead of an EOFError traceback."""
    if sys.stdin is None or not sys.stdin.isatty():
        raise ConfigError(f'standard input is not a terminal, so nobody can answer "{message.strip()}": '
                          "run this command in a terminal")
    return input(message)


def find_port(list_ports: Callable[[], list[str]] = serial_ports, prompt: Prompt = terminal_prompt) -> str:
    """The port that disappears while the user unplugs the adapter (printed and returned)."""
    before = list_ports()
    print("serial ports now:", ", ".join(before) or "none")
    if not before:
        raise DeviceFault("no serial port found: plug in the bus adapter (and check `dmesg`)")
    prompt("Unplug the USB cable of the bus adapter, then press Enter. ")
    after = list_ports()
    gone = sorted(set(before) - set(after))
    if len(gone) != 1:
        raise DeviceFault(f"expected exactly one port to disappear, {len(gone)} did "
                           f"({', '.join(gone) or 'none'}); ports now: {', '.join(after) or 'none'}")
    print(f"the adapter's port is {gone[0]}: set bus.port in the robot's robot.yaml or pass port={gone[0]}; "
          "plug the adapter back in")
    return gone[0]


def setup_motors(config: RobotConfig, port: str | None = None, prompt: Prompt = terminal_prompt,
                 latency_timer_ms: float = 16.0) -> list[tuple[str, int, int]]:
    """Give every motor of ``config`` its id and baud rate, one motor on the bus at a time.

    For each motor the user connects that servo alone; the bus is scanned at the configured
    baud rate, then at the vendor's factory default, and the one servo that answers gets
    the configured baud rate and id. Returns (motor, id found, baud rate found) per motor.
    ``latency_timer_ms``: the adapter's latency timer; a scan waits about twice this for
    each of the 253 ids.
    """
    port = port or config.bus.port
    vendor = config.bus.vendor
    bus_class = motor_bus_class(vendor)
    baudrates = list(dict.fromkeys([config.bus.baudrate, *FACTORY_BAUDRATES[vendor]]))
    found_per_motor = []
    for name, motor in config.motors.items():
        prompt(f"Connect ONLY motor {name!r} (to get id {motor.id}, {motor.model}) to the bus adapter, "
               "with power on, then press Enter. ")
        found_id, found_baudrate = _find_single_servo(bus_class, port, baudrates, latency_timer_ms, name)
        bus = bus_class(port, [Motor(name, found_id, motor.model)], baudrate=found_baudrate,
                        latency_timer_ms=latency_timer_ms)
        bus.connect()  # checks the model
        try:
            stored = int(bus.read("baud_rate")[0])
            if stored != bus_class.baudrate_values[config.bus.baudrate]:
                bus.set_baudrate(config.bus.baudrate, [found_id])
            if found_id != motor.id:
                bus.set_id(found_id, motor.id)
        finally:
            bus.disconnect(disable_torque=False)  # the servo may answer at another id by now
        print(f"motor {name!r}: id {found_id} -> {motor.id}, baud rate {found_baudrate} -> {config.bus.baudrate}")
        found_per_motor.append((name, found_id, found_baudrate))
    print(f"every motor of {config.name} is set up: daisy-chain them and run "
          f"`robo robot calibrate robot={config.name}`")
    return found_per_motor


def _find_single_servo(bus_class: type[MotorBus], port: str, baudrates: list[int],
                       latency_timer_ms: float, name: str) -> tuple[int, int]:
    """(id, baud rate) of the one servo that answers; an error when none or several do."""
    for baudrate in baudrates:
        print(f"scanning ids 0-{MAX_MOTOR_ID} on {port} at {baudrate} bit/s ...")
        bus = bus_class(port, [], baudrate=baudrate, latency_timer_ms=latency_timer_ms)
        bus.connect()
        try:
            ids = bus.scan(range(MAX_MOTOR_ID + 1))
        finally:
            bus.disconnect(disable_torque=False)
        if len(ids) > 1:
            raise DeviceFault(f"several servos answer on {port} at {baudrate} bit/s (ids {ids}): "
                               f"connect only motor {name!r}")
        if ids:
            return ids[0], baudrate
    raise DeviceFault(f"no servo answers on {port} at {' or '.join(map(str, baudrates))} bit/s: check that "
                       f"motor {name!r} is connected and powered, and the port (`robo robot find-port`)")
