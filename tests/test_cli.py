"""The `robo` command: help for every command, overrides, and one-line errors for bad input."""

import dataclasses
import re

import pytest

from robo_policies.commands.config import CollectConfig, TaskConfig
from robo_policies.envs import get_task, task_names


def test_every_listed_command_has_its_own_help(robo):
    result = robo("--help")
    assert result.code == 0
    listed = re.findall(r"^    (\w+) ", result.out, flags=re.MULTILINE)
    assert {"collect", "train", "eval", "tasks", "dataset"} <= set(listed)
    for command in listed:
        run = robo(command, "--help")
        assert run.code == 0 and f"usage: robo {command}" in run.out, command


def test_collect_help_documents_every_setting(robo):
    result = robo("collect", "--help")
    assert result.code == 0
    for item in dataclasses.fields(CollectConfig):
        if item.name not in ("defaults", "task"):
            assert f"  {item.name}=" in result.out, item.name
    for item in dataclasses.fields(TaskConfig):
        assert f"  task.{item.name}=" in result.out


@pytest.mark.parametrize("action", ["info", "validate", "convert"])
def test_dataset_help(robo, action):
    result = robo("dataset", action, "--help")
    assert result.code == 0 and "usage: robo dataset " + action in result.out


def test_misspelt_override_is_an_error(robo, tmp_path):
    result = robo("collect", "epsiodes=3", f"out={tmp_path}/x.zarr")
    assert result.code == 2 and "Could not override 'epsiodes'" in result.text
    assert not (tmp_path / "x.zarr").exists()


def test_unknown_task_names_the_choices(robo, tmp_path):
    result = robo("collect", "task=nope", f"out={tmp_path}/x.zarr")
    assert result.code == 2 and "nope" in result.text and "diffdrive_nav" in result.text


def test_wrongly_typed_value_is_an_error(robo, tmp_path):
    result = robo("collect", "episodes=many", f"out={tmp_path}/x.zarr")
    assert result.code == 2 and "episodes" in result.text and "many" in result.text


def test_convert_rejects_unknown_suffixes(robo, tmp_path):
    source = tmp_path / "demos.txt"
    source.write_text("x")
    result = robo("dataset", "convert", source, tmp_path / "out.zarr")
    assert result.code == 2 and "demos.txt" in result.text
    assert not (tmp_path / "out.zarr").exists()


def test_tasks_lists_every_registered_task_with_its_horizon(robo):
    result = robo("tasks")
    assert result.code == 0
    rows = {line.split()[0]: line for line in result.out.splitlines() if line.strip()}
    assert sorted(rows) == sorted(task_names())
    for name, line in rows.items():
        assert f"horizon {get_task(name).horizon}" in line, line
