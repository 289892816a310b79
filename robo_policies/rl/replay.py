"""Transition replay for online fine-tuning, and batches that mix offline demonstrations in.

RLPD's recipe, used by EXPO and PA-RL too: every update batch takes a fixed share of rows
from the offline demonstrations and the rest from the online replay, so the demonstrations
keep anchoring the critic and the policy however much online data accumulates.

Camera frames are stored once, as the uint8 the envs give (``FrameStore``): a chunk
transition's windows at s and s' show 2 To frames, and neighbouring transitions share most of
them (a demonstration takes a decision at every step, so each of its frames is in up to 2 To
windows), so storing the windows would copy each frame that often. A transition keeps the
numbers of its windows' frames (``obs_frames``, ``next_obs_frames``) and a batch gathers the
frames back into windows (``obs.<camera>``, ``next_obs.<camera>``). Every other field is
float32.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

FRAME_WINDOWS = {"obs": "obs_frames", "next_obs": "next_obs_frames"}
"""The fields holding the frame numbers (To,) of the observation window at the state and at
the next one, by the prefix of the camera windows that batches gather from them."""


class FrameStore:
    """Camera frames, numbered in the order they were added, each kept until no transition
    shows it any more.

    Args:
        shapes: each camera's frame shape, e.g. ``{"front_image": (84, 84, 3)}``.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.frames = {key: np.zeros((0, *shape), np.uint8) for key, shape in shapes.items()}
        self.first = 0
        """The number of the frame in row 0."""
        self.end = 0
        """The number the next frame added gets."""

    def add(self, frames: Mapping[str, np.ndarray], keep_from: int) -> int:
        """Append frames {camera: (m, ...)}; those numbered below ``keep_from`` may go to make
        room. Returns the number of the first frame added."""
        count = len(frames[next(iter(self.frames))])
        if self.end - self.first + count > len(next(iter(self.frames.values()))):
            kept = slice(keep_from - self.first, self.end - self.first)
            rows = 2 * (self.end - keep_from + count)  # room to grow before the next copy
            for key, store in self.frames.items():
                grown = np.zeros((rows, *store.shape[1:]), np.uint8)
                grown[: self.end - keep_from] = store[kept]
                self.frames[key] = grown
            self.first = keep_from
        for key, store in self.frames.items():
            store[self.end - self.first: self.end - self.first + count] = frames[key]
        self.end += count
        return self.end - count

    def get(self, numbers: np.ndarray) -> dict[str, np.ndarray]:
        """The frames numbered ``numbers`` (any shape), per camera: (*numbers.shape, ...)."""
        return {key: store[numbers - self.first] for key, store in self.frames.items()}

    def state_dict(self, keep_from: int) -> dict[str, np.ndarray]:
        """Frames from number ``keep_from`` on (the older ones no transition shows)."""
        kept = slice(keep_from - self.first, self.end - self.first)
        return {**{f"frames.{key}": store[kept] for key, store in self.frames.items()},
                "_frames": np.array([keep_from, self.end])}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self.first, self.end = (int(v) for v in state["_frames"])
        for key in self.frames:
            self.frames[key] = np.array(state[f"frames.{key}"], np.uint8)


class TransitionBuffer:
    """A fixed-capacity ring buffer of transitions with named fields (the oldest are
    overwritten once it is full).

    Args:
        shapes: each field's per-transition shape, e.g. ``{"reward": (), "obs": (10,)}``.
        capacity: transitions kept.
        frame_shapes: each camera's frame shape; with cameras, ``shapes`` holds the
            ``FRAME_WINDOWS`` fields and ``extend`` takes the frames they refer to.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], capacity: int,
                 frame_shapes: Mapping[str, tuple[int, ...]] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.data = {key: np.zeros((capacity, *shape), np.int64 if key in FRAME_WINDOWS.values() else np.float32)
                     for key, shape in shapes.items()}
        self.frames = FrameStore(frame_shapes) if frame_shapes else None
        self.size = 0
        self._next = 0

    def __len__(self) -> int:
        return self.size

    def add(self, transition: Mapping[str, np.ndarray | float | bool]) -> None:
        """Store one transition (a value for every field; no cameras)."""
        self.extend({key: np.asarray(value, np.float32)[None] for key, value in transition.items()})

    def extend(self, transitions: Mapping[str, np.ndarray],
               frames: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Store a batch of transitions: every field as an array with a leading count. With
        cameras, ``frames`` holds an episode's frames {camera: (T, ...)} and the
        ``FRAME_WINDOWS`` fields index its rows; only the frames they show are stored.
        Returns the slots written."""
        missing = [key for key in self.data if key not in transitions]
        if missing:
            raise KeyError(f"transition is missing {missing}; needs {list(self.data)}")
        count = len(transitions[next(iter(self.data))])
        if count > self.capacity:
            raise ValueError(f"{count} transitions do not fit a buffer of {self.capacity}")
        for key, store in self.data.items():
            value = np.asarray(transitions[key])
            if value.shape != (count, *store.shape[1:]):
                raise ValueError(f"transition[{key!r}] has shape {value.shape[1:]}, expected "
                                 f"{store.shape[1:]}")
        if self.frames is not None:
            transitions = {**transitions, **self._store_frames(transitions, frames, count)}
        slots = (self._next + np.arange(count)) % self.capacity
        for key, store in self.data.items():
            store[slots] = transitions[key]
        self._next = int((self._next + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)
        return slots

    def _store_frames(self, transitions: Mapping[str, np.ndarray], frames: Mapping[str, np.ndarray] | None,
                      count: int) -> dict[str, np.ndarray]:
        """Add the frames the new transitions show; their frame fields renumbered to the store's."""
        if frames is None:
            raise ValueError(f"transitions with cameras need their frames ({list(self.frames.frames)})")
        shown = np.unique(np.concatenate([transitions[field].ravel() for field in FRAME_WINDOWS.values()]))
        survivors = min(self.size, self.capacity - count)  # old transitions this batch leaves in place
        slots = (self._next - survivors + np.arange(survivors)) % self.capacity
        first = self.frames.add({key: np.asarray(value)[shown] for key, value in frames.items()},
                                keep_from=self._first_frame_shown(slots))
        return {field: first + np.searchsorted(shown, transitions[field]) for field in FRAME_WINDOWS.values()}

    def _first_frame_shown(self, slots: np.ndarray) -> int:
        """The lowest frame number the transitions in ``slots`` show (every frame is newer
        when there are none)."""
        if not len(slots):
            return self.frames.end
        return int(min(self.data[field][slots].min() for field in FRAME_WINDOWS.values()))

    def rows(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        """The transitions in ``slots``, with their camera windows gathered from the frames."""
        rows = {key: value[slots] for key, value in self.data.items()}
        if self.frames is not None:
            for prefix, field in FRAME_WINDOWS.items():
                for key, window in self.frames.get(rows.pop(field)).items():
                    rows[f"{prefix}.{key}"] = window
        return rows

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        return self.rows(rng.integers(0, self.size, size=n))

    def state_dict(self) -> dict[str, np.ndarray]:
        """What ``load_state_dict`` needs to restore the buffer (for resuming a run)."""
        state = {**{key: value[: self.size] for key, value in self.data.items()},
                 "_cursor": np.array([self._next, self.size])}
        if self.frames is not None:
            state.update(self.frames.state_dict(self._first_frame_shown(np.arange(self.size))))
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        cursor, size = (int(v) for v in state["_cursor"])
        for key, store in self.data.items():
            store[:size] = state[key]
        if self.frames is not None:
            self.frames.load_state_dict(state)
        self._next, self.size = cursor, size


def mixed_batch(offline: TransitionBuffer, online: TransitionBuffer, batch_size: int,
                offline_ratio: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``round(batch_size * offline_ratio)`` offline rows, then the rest from ``online``;
    the field ``offline`` marks which rows are demonstrations (1) or online data (0).

    While the online buffer is still empty the whole batch is offline.
    """
    if not 0.0 <= offline_ratio <= 1.0:
        raise ValueError(f"offline_ratio must be in [0, 1], got {offline_ratio}")
    n_offline = batch_size if len(online) == 0 else round(batch_size * offline_ratio)
    parts = [buffer.sample(n, rng) for buffer, n in ((offline, n_offline), (online, batch_size - n_offline)) if n]
    batch = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    batch["offline"] = (np.arange(batch_size) < n_offline).astype(np.float32)
    return batch
