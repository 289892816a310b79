"""What every `robo` command promises: light start-up, one-line input errors, tracebacks for bugs."""

import subprocess
import sys

import numpy as np
import pytest

from robo_policies.cli import main as cli
from robo_policies.data import ReplayBuffer

HEAVY = ("torch", "diffusers")


def modules_after(argv: list[str]) -> set[str]:
    """Which heavy modules are imported after `robo <argv>` runs in a fresh interpreter."""
    probe = (
        "import sys\n"
        "from robo_policies.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    last = done.stdout.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("HEAVY="), done.stdout + done.stderr
    return set(filter(None, last.removeprefix("HEAVY=").split(",")))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.zarr"
    buffer = ReplayBuffer.create(path)
    buffer.add_episode({"state": np.zeros((4, 3), np.float32), "action": np.ones((4, 2), np.float32)})
    return path


@pytest.mark.parametrize("argv", [["--help"], ["robot", "list"], ["dataset", "info", "DATASET"],
                                  ["dataset", "validate", "DATASET"], ["tasks"], ["collect", "--help"]])
def test_light_commands_import_neither_torch_nor_diffusers(argv, tiny_dataset):
    argv = [str(tiny_dataset) if part == "DATASET" else part for part in argv]
    assert modules_after(argv) == set()


def test_the_probe_sees_torch_when_a_command_imports_it():
    # `robo train --help` lists every head's settings, which live with the heads (torch).
    assert "torch" in modules_after(["train", "--help"])


def test_train_help_lists_each_heads_own_settings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    assert "policy.head of flow:\n  policy.head.inference_steps=5" in text
    assert "  policy.head.solver=euler  ODE solver" in text
    assert "policy.head of mlp_bc: no settings of its own" in text


def test_bad_input_prints_one_line_and_exits_2(capsys, tmp_path):
    code = cli.main(["eval", f"checkpoint={tmp_path / 'nothing'}"])
    err = capsys.readouterr().err
    assert code == cli.INPUT_ERROR == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "nothing" in err


def test_a_missing_required_setting_names_it(capsys):
    code = cli.main(["eval"])
    assert code == 2 and "checkpoint=<dir> is required" in capsys.readouterr().err


def test_an_internal_error_keeps_its_traceback(monkeypatch, tiny_dataset):
    def broken(path):
        raise RuntimeError("deliberate bug in a test hook")

    monkeypatch.setattr("robo_policies.data.validate.summarize_dataset", broken)
    with pytest.raises(RuntimeError, match="deliberate bug"):
        cli.main(["dataset", "info", str(tiny_dataset)])


def test_an_internal_error_prints_a_traceback_from_the_console_script(tmp_path):
    probe = ("import robo_policies.data.validate as v\n"
             "def broken(path):\n"
             "    raise KeyError('deliberate')\n"
             "v.summarize_dataset = broken\n"
             "from robo_policies.cli.main import main\n"
             f"main(['dataset', 'info', {str(tmp_path)!r}])\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 1  # Python's own status for an uncaught exception
    assert "Traceback (most recent call last)" in done.stderr and "KeyError: 'deliberate'" in done.stderr


def test_a_failed_check_exits_1_not_2(capsys, tmp_path):
    path = tmp_path / "bad.zarr"
    buffer = ReplayBuffer.create(path)
    buffer.add_episode({"state": np.zeros((3, 1), np.float32), "action": np.full((3, 1), np.nan, np.float32)})
    assert cli.main(["dataset", "validate", str(path)]) == 1
    assert "INVALID" in capsys.readouterr().err
