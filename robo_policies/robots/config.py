"""Robot configs: one YAML per robot in ``hardware/<name>/robot.yaml``, typed here.

A config says what the robot is (``kind``), how to reach it (bus vendor, port, motor IDs),
which MuJoCo task its twin runs, and its safety chain. ``RobotConfig`` holds what every kind
has; a kind's own keys (an arm's model, a base's geometry) live in its config subclass, with
the kind (``registry.py``). ``load_robot_config`` checks a file against its kind's class, so
a misspelt key or a wrong type is an error that names the file and key.

Robots are found by name in the package's ``hardware/`` and then in a ``hardware/`` folder
next to each plugin module (``ROBO_PLUGINS``); ``robo robot list`` shows them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robo_policies.robots.cameras.registry import CameraConfig
from robo_policies.utils.errors import ConfigError, UnknownNameError
from robo_policies.utils.plugins import plugin_dirs

HARDWARE_DIR = Path(__file__).resolve().parent.parent / "hardware"


@dataclass
class MotorConfig:
    """One servo on the bus."""

    id: int = 1
    model: str = ""
    """Servo model, e.g. sts3215 (Feetech) or xl430-w250 (Dynamixel)."""


@dataclass
class BusConfig:
    """How to reach the servos."""

    vendor: str = "feetech"
    """feetech or dynamixel."""
    port: str = ""
    """Serial port, e.g. /dev/ttyACM0 (find it with `robo robot find-port`)."""
    baudrate: int = 1_000_000
    comm_watchdog_ms: Optional[float] = None
    """Servos that have a communication watchdog (Dynamixel X-series; Feetech STS have none)
    stop by themselves when no instruction reaches them for this long with torque on: the
    host crashed, froze or lost its adapter. Rounded up to the servos' unit (20 ms). null:
    three command periods, at least 100 ms; 0: not armed."""


@dataclass
class EStopConfig:
    """Sources that latch the emergency stop (only an explicit reset clears it)."""

    file: Optional[str] = "/tmp/robo.estop"
    """Latches when this file exists (`touch /tmp/robo.estop`); null: no file."""
    key: Optional[str] = "space"
    """Teleop key that latches it."""
    signal: Optional[str] = "SIGUSR1"
    """POSIX signal that latches it (`kill -USR1 <pid>`); null: none."""


@dataclass
class RobotConfig:
    """A robot: ``hardware/<name>/robot.yaml`` (the keys every kind has)."""

    name: str = ""
    kind: str = "arm"
    """A registered robot kind (``robo robot list`` shows each robot's): arm (joint targets +
    gripper), diffdrive or omni (wheel speeds), or a plugin's."""
    description: str = ""
    bus: BusConfig = field(default_factory=BusConfig)
    motors: dict[str, MotorConfig] = field(default_factory=dict)
    """Motor name -> id and model, in command order (an arm's gripper last)."""
    calibration: str = "calibration.json"
    """Calibration file, relative to the config (written by `robo robot calibrate`)."""
    sim_task: Optional[str] = None
    """The task whose MuJoCo model is this robot's twin (`robo deploy sim=true`)."""
    safety: list[Any] = field(default_factory=list)
    """Safety filters applied before every send, in order (see robots/safety.py)."""
    watchdog_s: Optional[float] = 0.5
    """Stop (wheels zero, arm holds) when no command arrives for this long; null: off."""
    estop: EStopConfig = field(default_factory=EStopConfig)
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    """Camera name -> how to reach it (``robo camera list`` finds devices, ``robo camera check``
    measures them). A camera named ``front`` is the observation key ``front_image``, as in the
    simulated image tasks."""
    camera_timeout_s: float = 0.5
    """A camera whose newest frame is older than this when the robot is read (it froze, its
    cable came out) stops the loop and puts the robot in its safe state."""
    source: str = ""
    """The file this config was read from (filled in by the loader)."""

    command: ClassVar[str] = "pos"
    """What each motor is told: ``pos`` (a position target) or ``vel`` (a speed)."""

    @property
    def directory(self) -> Path:
        return Path(self.source).parent

    @property
    def action_names(self) -> list[str]:
        """Command names, one per motor: ``<motor>.pos`` or ``<motor>.vel``."""
        return [f"{motor}.{self.command}" for motor in self.motors]


def hardware_dirs() -> list[Path]:
    """Where robots are found by name: the package's ``hardware/``, then the plugins'."""
    return [HARDWARE_DIR, *plugin_dirs("hardware")]


def robot_names() -> list[str]:
    """Every robot with a config in a ``hardware/`` folder (``hardware_dirs``)."""
    return sorted({path.parent.name for folder in hardware_dirs() for path in folder.glob("*/robot.yaml")})


def find_hardware_file(relative: str | Path) -> Path | None:
    """``relative`` in the first ``hardware/`` folder that has it (a robot's YAML, a model)."""
    return next((folder / relative for folder in hardware_dirs() if (folder / relative).is_file()), None)


def load_robot_config(name_or_path: str | Path) -> RobotConfig:
    """A robot's config by name (``hardware/<name>/robot.yaml``) or by YAML path, typed by the
    class its kind registers."""
    from robo_policies.robots.registry import robot_kind

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        found = find_hardware_file(Path(str(name_or_path)) / "robot.yaml")
        if found is None:
            raise UnknownNameError(f"no robot named {str(name_or_path)!r}; known robots: {robot_names()}")
        path = found
    if not path.is_file():
        raise ConfigError(f"{path}: no such robot config")
    try:
        raw = OmegaConf.load(path)
        if not isinstance(raw, DictConfig):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
        try:
            kind = robot_kind(str(raw.get("kind", RobotConfig.kind)))
        except UnknownNameError as err:
            raise UnknownNameError(f"{path}: {err}") from None
        merged = OmegaConf.merge(OmegaConf.structured(kind.config_class), raw)
        config: RobotConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {err.msg if hasattr(err, 'msg') else err}") from err
    if not config.motors:
        raise ConfigError(f"{path}: motors is empty")
    config.source = str(path)
    config.name = config.name or path.parent.name
    return config


def robot_table(configs: list[RobotConfig]) -> str:
    """``robo robot list``: one row per motor, the robot's columns on its first motor's row."""
    header = ("name", "kind", "bus", "twin task", "id", "motor", "model")
    rows = []
    for config in configs:
        bus = f"{config.bus.vendor} {config.bus.port} {config.bus.baudrate} bit/s"
        robot = (config.name, config.kind, bus, config.sim_task or "-")
        for index, (name, motor) in enumerate(config.motors.items()):
            rows.append((*(robot if index == 0 else ("",) * len(robot)), str(motor.id), name, motor.model))
    return text_table(header, rows)


def text_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns as wide as their widest cell: the tables `robo robot` prints."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [header, *rows])
