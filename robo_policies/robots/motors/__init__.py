"""Motor buses: Dynamixel and Feetech servos on a serial port, by name and in SI units.

``MotorBus`` (bus.py) is the interface and ``MotorCalibration`` (calibration.py) the units.
``DynamixelMotorBus`` and ``FeetechMotorBus`` import their vendor SDK only when first used,
so importing this package never needs the optional ``hardware`` extra.
"""

from __future__ import annotations

import importlib

from robo_policies.robots.motors.bus import (
    Motor,
    MotorBus,
    MotorBusError,
    MotorCommunicationError,
    MotorHardwareError,
    MotorHardwareWarning,
    MotorMode,
    Register,
)
from robo_policies.robots.motors.calibration import (
    CalibrationError,
    MotorCalibration,
    load_calibration,
    save_calibration,
)
from robo_policies.utils.errors import ConfigError

_VENDOR_BUSES = {"dynamixel": "DynamixelMotorBus", "feetech": "FeetechMotorBus"}


def motor_bus_class(vendor: str) -> type[MotorBus]:
    """The bus class of a vendor (``dynamixel`` or ``feetech``), importing its SDK now."""
    if vendor not in _VENDOR_BUSES:
        raise ConfigError(f"unknown motor vendor {vendor!r}; known: {sorted(_VENDOR_BUSES)}")
    module = importlib.import_module(f"{__name__}.{vendor}")
    return getattr(module, _VENDOR_BUSES[vendor])


def __getattr__(name: str) -> type[MotorBus]:
    for vendor, class_name in _VENDOR_BUSES.items():
        if name == class_name:
            return motor_bus_class(vendor)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CalibrationError",
    "DynamixelMotorBus",
    "FeetechMotorBus",
    "Motor",
    "MotorBus",
    "MotorBusError",
    "MotorCalibration",
    "MotorCommunicationError",
    "MotorHardwareError",
    "MotorHardwareWarning",
    "MotorMode",
    "Register",
    "load_calibration",
    "motor_bus_class",
    "save_calibration",
]
