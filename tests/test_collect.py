"""Collection: counts, failure handling, noise, resume, and the config saved with the data."""

import numpy as np
import pytest
from toy_task import TOY_TASK, solvable_seeds

from robo_policies.data import ReplayBuffer
from robo_policies.data.validate import validate_dataset
from robo_policies.envs.collect import collect


def test_saves_only_successes_and_counts_attempts(tmp_path):
    result = collect(TOY_TASK, tmp_path / "d.zarr", episodes=5, seed=10, progress=False)
    buffer = ReplayBuffer.open(tmp_path / "d.zarr")
    good = solvable_seeds(range(10, 10 + result.attempts))
    assert result.saved == 5 == buffer.n_episodes == len(good)
    assert buffer.meta("seed").tolist() == good
    assert buffer.meta("success").all()
    assert result.success_rate == pytest.approx(5 / result.attempts)
    assert set(buffer.keys) == {"pos", "action", "reward"}
    assert buffer.attrs["task"] == "toy_reach"
    # The last reward of every saved episode is the success reward.
    assert np.all(buffer["reward"][:][buffer.episode_ends - 1] == 1.0)


def test_keep_failed_and_attempt_limit(tmp_path):
    result = collect(TOY_TASK, tmp_path / "d.zarr", episodes=6, keep_failed=True, progress=False)
    buffer = ReplayBuffer.open(tmp_path / "d.zarr")
    assert result.attempts == 6 and buffer.n_episodes == 6
    assert buffer.meta("seed").tolist() == list(range(6))
    assert buffer.meta("success").sum() == len(solvable_seeds(range(6)))
    with pytest.raises(RuntimeError, match=r"saved \d+/50 episodes in 3 attempts"):
        collect(TOY_TASK, tmp_path / "e.zarr", episodes=50, max_attempts=3, progress=False)


def test_action_noise_keeps_clean_labels(tmp_path):
    collect(TOY_TASK, tmp_path / "d.zarr", episodes=3, action_noise=0.2, progress=False)
    buffer = ReplayBuffer.open(tmp_path / "d.zarr")
    executed, clean = buffer["executed_action"][:], buffer["action"][:]
    assert executed.shape == clean.shape and not np.allclose(executed, clean)
    # The label is the expert's response to the observed (perturbed) state.
    np.testing.assert_allclose(clean[:, 0], np.clip(-buffer["pos"][:, 0], -1, 1), rtol=1e-6)
    assert np.all(np.abs(executed) <= 1.0)


def test_noisy_labels_store_what_was_executed(tmp_path):
    collect(TOY_TASK, tmp_path / "d.zarr", episodes=3, action_noise=0.2, noisy_labels=True, progress=False)
    buffer = ReplayBuffer.open(tmp_path / "d.zarr")
    assert "executed_action" not in buffer  # the label is what was executed
    noisy = buffer["action"][:]
    # Same seeds, same noise: the noisy labels are exactly the clean run's executed actions.
    collect(TOY_TASK, tmp_path / "c.zarr", episodes=3, action_noise=0.2, progress=False)
    np.testing.assert_array_equal(noisy, ReplayBuffer.open(tmp_path / "c.zarr")["executed_action"][:])


def test_resume_continues_and_refuses_overwrite(tmp_path):
    path = tmp_path / "d.zarr"
    first = collect(TOY_TASK, path, episodes=2, seed=0, progress=False)
    with pytest.raises(FileExistsError):
        collect(TOY_TASK, path, episodes=4, progress=False)
    collect(TOY_TASK, path, episodes=4, seed=0, resume=True, progress=False)
    resumed = ReplayBuffer.open(path).meta("seed").tolist()
    fresh = collect(TOY_TASK, tmp_path / "f.zarr", episodes=4, seed=0, progress=False)
    assert resumed == ReplayBuffer.open(tmp_path / "f.zarr").meta("seed").tolist()
    assert first.saved == 2 and fresh.saved == 4


class Crash(BaseException):
    """Stands in for a kill: nothing in the collector catches it."""


def test_a_crash_mid_write_keeps_every_finished_episode_and_resume_completes_the_run(
    tmp_path, monkeypatch
):
    """The in-process twin of test_collect_cli's SIGKILL test: the 4th episode dies after its
    first data array is written, before ``meta/episode_ends`` names it."""
    import robo_policies.data.replay_buffer as replay_buffer

    append_rows = replay_buffer._append_rows
    written = []

    def append_then_crash(group, key, value, start):
        append_rows(group, key, value, start)
        written.append(f"{group.name}/{key}")
        if written.count("/data/action") == 4:
            raise Crash

    monkeypatch.setattr(replay_buffer, "_append_rows", append_then_crash)
    path = tmp_path / "d.zarr"
    with pytest.raises(Crash):
        collect(TOY_TASK, path, episodes=6, keep_failed=True, progress=False)
    monkeypatch.undo()

    with pytest.warns(UserWarning, match="trailing rows of 'data/.*' left by an interrupted write"):
        assert validate_dataset(path).n_episodes == 3
    with pytest.warns(UserWarning, match="interrupted write"):  # and overwritten
        collect(TOY_TASK, path, episodes=6, keep_failed=True, resume=True, progress=False)
    collect(TOY_TASK, tmp_path / "fresh.zarr", episodes=6, keep_failed=True, progress=False)
    resumed, fresh = ReplayBuffer.open(path), ReplayBuffer.open(tmp_path / "fresh.zarr")
    assert resumed.meta("seed").tolist() == list(range(6))
    for key in fresh.keys:
        np.testing.assert_array_equal(resumed[key][:], fresh[key][:])
