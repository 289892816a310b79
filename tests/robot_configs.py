"""Copies of the robot configs in hardware/ for tests: their own directory (calibration.json
is written next to robot.yaml), their own e-stop file, and any key changed."""

from pathlib import Path

import yaml

from robo_policies.robots.config import HARDWARE_DIR, load_robot_config
from robo_policies.robots.motors import MotorCalibration, save_calibration


def robot_yaml(tmp_path: Path, name: str, **changes) -> Path:
    """``hardware/<name>/robot.yaml`` copied to ``tmp_path/<name>/``, with the e-stop file in
    ``tmp_path`` and top-level keys replaced by ``changes``."""
    config = yaml.safe_load((HARDWARE_DIR / name / "robot.yaml").read_text())
    config["estop"]["file"] = str(tmp_path / "estop")
    config.update(changes)
    path = tmp_path / name / "robot.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # motor order is command order
    return path


def calibrated_arm(tmp_path: Path) -> Path:
    """so101_arm's config with a calibration: every joint's zero at tick 2048, the gripper
    open at 2048 and closed at 3000."""
    path = robot_yaml(tmp_path, "so101_arm")
    calibration = {name: MotorCalibration(2048, 1024, 3072) for name in load_robot_config(path).motors}
    calibration["gripper"] = MotorCalibration(2048, 2048, 3000)
    save_calibration(path.parent / "calibration.json", calibration)
    return path
