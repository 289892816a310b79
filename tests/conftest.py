"""Fixtures shared by the test files.

Shared helpers live next to the tests as plain modules (``toy_task``, ``tiny_policies``,
``fake_servos``, ``robot_configs``; toy plugins in the ``plugins`` package) and are imported
as top-level modules, ``from toy_task import TOY_TASK``: pytest puts ``tests/`` on
``sys.path``, and a ``robo`` subprocess finds them with ``PYTHONPATH=tests``.

Tests that train for long, spawn processes, fine-tune or collect many episodes are marked
``@pytest.mark.slow``: ``make test`` leaves them out, ``make test-all`` runs them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest


class CliRun(NamedTuple):
    """What one in-process ``robo`` command did."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout and stderr together, for messages that may go to either."""
        return self.out + self.err


@pytest.fixture
def robo(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run ``robo <argv>`` in this process: ``robo("dataset", "info", path).code``.

    argparse's exits (``--help``, usage errors) become the returned code.
    """
    from robo_policies.cli.main import main

    def run(*argv: str) -> CliRun:
        capsys.readouterr()  # start from empty captures
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exit_:
            code = exit_.code
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


@pytest.fixture
def read_video() -> Callable[[Path], tuple[np.ndarray, dict[str, Any]]]:
    """``read_video(path)``: (frames stacked as (N, H, W, 3), the file's metadata)."""
    import imageio.v3 as iio

    def read(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        with warnings.catch_warnings():
            # imageio-ffmpeg leaves the pipes of an ffmpeg that already exited to the GC.
            warnings.simplefilter("ignore", ResourceWarning)
            return iio.imread(path, index=None), iio.immeta(path)

    return read
