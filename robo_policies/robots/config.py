"""Robot configs: one YAML per robot in ``hardware/<name>/robot.yaml``, typed here.

A config says what the robot is (``kind``), how to reach it (bus vendor, port, motor IDs),
which MuJoCo task its twin runs, and its safety chain. ``robo robot list`` shows them;
``load_robot_config`` checks a file against ``RobotConfig`` so a misspelt key or a wrong type
is an error that names the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

HARDWARE_DIR = Path(__file__).resolve().parent.parent / "hardware"
KINDS = ("arm", "diffdrive", "omni")


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


@dataclass
class BaseGeometry:
    """Wheeled bases: what kinematics and odometry need."""

    wheel_radius: float = 0.0
    """m."""
    wheel_separation: float = 0.0
    """m between the wheels' contact points (differential drive)."""
    base_radius: float = 0.0
    """m from the centre to each wheel (omni)."""
    wheel_angles_deg: list[float] = field(default_factory=lambda: [90.0, 210.0, 330.0])
    """Omni: the wheels' mounting angles."""
    max_wheel_speed: float = 0.0
    """rad/s; commands are scaled together to respect it."""


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
    """A robot: ``hardware/<name>/robot.yaml``."""

    name: str = ""
    kind: str = "arm"
    """arm (joint targets + gripper), diffdrive or omni (wheel speeds)."""
    description: str = ""
    bus: BusConfig = field(default_factory=BusConfig)
    motors: dict[str, MotorConfig] = field(default_factory=dict)
    """Motor name -> id and model, in command order (an arm's gripper last)."""
    calibration: str = "calibration.json"
    """Calibration file, relative to the config (written by `robo robot calibrate`)."""
    sim_task: Optional[str] = None
    """The task whose MuJoCo model is this robot's twin (`robo deploy sim=true`)."""
    geometry: BaseGeometry = field(default_factory=BaseGeometry)
    arm_model: Optional[str] = None
    """Arms: the MJCF model (relative to hardware/) whose forward kinematics a workspace_box
    filter uses; its joints are named like the motors (all but the gripper)."""
    tool_site: str = "tcp"
    """Arms: the model's site that the workspace box bounds."""
    safety: list[Any] = field(default_factory=list)
    """Safety filters applied before every send, in order (see robots/safety.py)."""
    watchdog_s: Optional[float] = 0.5
    """Stop (wheels zero, arm holds) when no command arrives for this long; null: off."""
    estop: EStopConfig = field(default_factory=EStopConfig)
    source: str = ""
    """The file this config was read from (filled in by the loader)."""

    @property
    def directory(self) -> Path:
        return Path(self.source).parent

    @property
    def action_names(self) -> list[str]:
        """Command names: ``<motor>.pos`` for an arm, ``<wheel>.vel`` for a base."""
        suffix = "pos" if self.kind == "arm" else "vel"
        return [f"{motor}.{suffix}" for motor in self.motors]


def robot_names() -> list[str]:
    """Every robot with a config in ``hardware/``."""
    return sorted(path.parent.name for path in HARDWARE_DIR.glob("*/robot.yaml"))


def load_robot_config(name_or_path: str | Path) -> RobotConfig:
    """A robot's config by name (``hardware/<name>/robot.yaml``) or by YAML path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = HARDWARE_DIR / str(name_or_path) / "robot.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"no robot named {str(name_or_path)!r}; known robots: {robot_names()}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RobotConfig), OmegaConf.load(path))
        config: RobotConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as err:
        raise ValueError(f"{path}: {err.msg if hasattr(err, 'msg') else err}") from err
    if config.kind not in KINDS:
        raise ValueError(f"{path}: kind must be one of {KINDS}, got {config.kind!r}")
    if not config.motors:
        raise ValueError(f"{path}: motors is empty")
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
