"""Fixtures shared by the test files.

Shared helpers live next to the tests as plain modules (``toy_task``, ``tiny_policies``,
``fake_servos``, ``robot_configs``; toy plugins in the ``plugins`` package) and are imported
as top-level modules, ``from toy_task import TOY_TASK``: pytest puts ``tests/`` on
``sys.path``, and a ``robo`` subprocess finds them with ``PYTHONPATH=tests``.

Tests that train for long, spawn processes, fine-tune or collect many episodes are marked
``@pytest.mark.slow``: ``make test`` leaves them out, ``make test-all`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

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
