"""Copies of the robot configs in hardware/ for tests: their own directory (calibration.json
is written next to robot.yaml), their own e-stop file, and any key changed."""

from pathlib import Path

import yaml

from robo_policies.robots.config import HARDWARE_DIR


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
