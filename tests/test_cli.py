"""The `robo` command: help for every command, overrides, and one-line errors for bad input."""

import dataclasses

import pytest

from robo_policies.commands.config import CollectConfig, TaskConfig
from robo_policies.cli.main import main


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse exits for --help and usage errors
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out + out.err


def test_top_level_help_lists_every_command(capsys):
    code, text = run(capsys, "--help")
    assert code == 0
    for command in ("collect", "tasks", "dataset"):
        assert command in text


def test_collect_help_documents_every_setting(capsys):
    code, text = run(capsys, "collect", "--help")
    assert code == 0
    for item in dataclasses.fields(CollectConfig):
        if item.name not in ("defaults", "task"):
            assert f"  {item.name}=" in text, item.name
    for item in dataclasses.fields(TaskConfig):
        assert f"  task.{item.name}=" in text


@pytest.mark.parametrize("action", ["info", "validate", "convert"])
def test_dataset_help(capsys, action):
    code, text = run(capsys, "dataset", action, "--help")
    assert code == 0 and "usage: robo dataset " + action in text


def test_misspelt_override_is_an_error(capsys, tmp_path):
    code, text = run(capsys, "collect", "epsiodes=3", f"out={tmp_path}/x.zarr")
    assert code == 2 and "Could not override 'epsiodes'" in text
    assert not (tmp_path / "x.zarr").exists()


def test_unknown_task_names_the_choices(capsys, tmp_path):
    code, text = run(capsys, "collect", "task=nope", f"out={tmp_path}/x.zarr")
    assert code == 2 and "nope" in text and "diffdrive_nav" in text


def test_wrongly_typed_value_is_an_error(capsys, tmp_path):
    code, text = run(capsys, "collect", "episodes=many", f"out={tmp_path}/x.zarr")
    assert code == 2 and "episodes" in text


def test_convert_rejects_unknown_suffixes(capsys, tmp_path):
    source = tmp_path / "demos.txt"
    source.write_text("x")
    code, text = run(capsys, "dataset", "convert", str(source), str(tmp_path / "out.zarr"))
    assert code == 2 and "demos.txt" in text


def test_tasks_lists_the_builtin_tasks(capsys):
    code, text = run(capsys, "tasks")
    assert code == 0
    for name in ("diffdrive_nav", "arm_pick_place", "ogbench_cube_single"):
        assert name in text
