"""Scalars of a run, written twice: to TensorBoard for browsing and to ``metrics.jsonl`` for
plots and tests to read back (one JSON object per line, keyed by the run's step counter)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from robo_policies.utils.atomic import atomic_write_text


class ScalarLog:
    """Append-only scalar log of a run directory (``tensorboard/`` and ``metrics.jsonl``).

    A run killed after its last checkpoint has logged steps that its resumed run logs again:
    whatever an earlier process logged at or after ``first_step`` is dropped (rewritten out
    of ``metrics.jsonl``, purged from TensorBoard), so every step appears once.

    Args:
        run_dir: the run directory.
        step_key: the name of the step counter in ``metrics.jsonl`` (``step``, ``env_steps``).
        first_step: the first step this process logs (0: a new run, which keeps nothing).
    """

    def __init__(self, run_dir: Path, step_key: str = "step", first_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.step_key = step_key
        _after_earlier_event_files(run_dir / "tensorboard")
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=first_step)
        path = run_dir / "metrics.jsonl"
        if path.is_file():
            kept = [line for line in path.read_text().splitlines(keepends=True)
                    if line.endswith("\n") and json.loads(line)[step_key] < first_step]  # not a torn last line
            atomic_write_text(path, "".join(kept))
        self.metrics = open(path, "a")

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


def _after_earlier_event_files(directory: Path) -> None:
    """Wait (at most a second) until this process's event file will sort after the earlier
    processes' ones. TensorBoard reads a directory's event files in name order, and the name
    starts with the creating second, then the host and process id: a run resumed within the
    second its killed predecessor started could sort first, and its purge of the steps logged
    again would then remove its own steps instead of the old ones."""
    seconds = [int(path.name.split(".")[3]) for path in directory.glob("events.out.tfevents.*")
               if path.name.split(".")[3].isdigit()]
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)
