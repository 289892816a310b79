"""How many CPU threads torch computes with: never more than the machine can give.

torch's CPU kernels run on an OpenMP pool whose threads spin while they wait for each other.
When another process holds a core, a spinning thread waits for a descheduled partner and one
step can take ten times as long as with fewer threads: measured on a 2-core machine with one
core kept busy, an MLP training step ran at 3.4 steps/s with 2 threads and 48 with 1
(scripts/bench_threads.py, README "Threads"). Users train next to simulators, viewers and
recorders, so the default leaves one core to them: ``threads=0`` means every core this process
may run on (``os.sched_getaffinity``, which respects ``taskset`` and container cpusets) but one.
"""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Every available core but one (at least 1): see the module docstring."""
    return max(1, available_cores() - 1)


def use_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads to ``threads`` (0: ``default_threads()``); returns the count."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0: all available cores but one), got {threads}")
    count = threads or default_threads()
    torch.set_num_threads(count)
    return count
