"""torch threads: the default leaves a core to the rest of the machine (utils/threads.py)."""

import os

import pytest
import torch

from robo_policies.utils import threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, expected", [({0}, 1), ({0, 1}, 1), ({0, 1, 2, 3}, 3), (set(range(16)), 15)])
def test_the_default_is_every_core_the_process_may_use_but_one(monkeypatch, restore_threads, cores, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cores)
    assert threads.available_cores() == len(cores)
    assert threads.use_threads(0) == expected and torch.get_num_threads() == expected


def test_an_explicit_count_is_used_and_a_negative_one_refused(restore_threads):
    assert threads.use_threads(3) == 3 and torch.get_num_threads() == 3
    with pytest.raises(ValueError, match=r"threads must be >= 0 \(0: all available cores but one\), got -1"):
        threads.use_threads(-1)
