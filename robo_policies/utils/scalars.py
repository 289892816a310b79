"""Scalars of a run, written twice: to TensorBoard for browsing and to ``metrics.jsonl`` for
plots and tests to read back (one JSON object per line, keyed by the run's step counter)."""

from __future__ import annotations

import json
from pathlib import Path


class ScalarLog:
    """Append-only scalar log of a run directory (``tensorboard/`` and ``metrics.jsonl``).

    Args:
        run_dir: the run directory.
        step_key: the name of the step counter in ``metrics.jsonl`` (``step``, ``env_steps``).
    """

    def __init__(self, run_dir: Path, step_key: str = "step") -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.step_key = step_key
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.metrics = open(run_dir / "metrics.jsonl", "a")

    def log(self, step: int, **values: float | None) -> None:
        """Record the given values (None: skipped) at ``step``."""
        present = {k: v for k, v in values.items() if v is not None}
        for name, value in present.items():
            self.writer.add_scalar(name, value, step)
        self.metrics.write(json.dumps({self.step_key: step, **present}) + "\n")
        self.metrics.flush()

    def close(self) -> None:
        self.writer.close()
        self.metrics.close()
