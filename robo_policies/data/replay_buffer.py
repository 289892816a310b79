"""Episodes stored as one zarr group: ``data/<key>`` concatenated over time + ``meta/episode_ends``.

This is the layout diffusion_policy users know, written in zarr format 2 so that both zarr 2
and zarr 3 readers open it. Arrays are chunked along time, so a buffer larger than RAM is
read window by window.

Crash safety comes from write order. ``add_episode`` writes every ``data/<key>`` array and
every per-episode ``meta/<name>`` array first and appends to ``meta/episode_ends`` last; zarr's
local store replaces each file atomically. An episode therefore exists only once its end
index is written, and a crash leaves at most trailing data that readers ignore (with a
warning) and the next ``add_episode`` overwrites. Appending to ``episode_ends`` is itself
two writes (the new shape, then the chunk): a crash between them leaves a trailing 0 (the
fill value), which ``open`` recognises and drops the same way.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import zarr
import zarr.storage

from robo_policies.utils.errors import DatasetError, DatasetKeyError

FORMAT_NAME = "robo_policies.replay_buffer"
FORMAT_VERSION = 2
"""2: every chunk is stored, even one holding only the fill value (zarr skips those by
default), so a missing chunk file is damage, not zeros. 1: chunks of zeros may be absent."""
CHUNK_BYTES = 2**21
"""Target size of one time chunk (2 MiB): big enough for fast reads, small enough to append."""


class ReplayBuffer:
    """A growing set of episodes, on disk (a ``.zarr`` directory) or in memory.

    Use :meth:`create` for a new buffer and :meth:`open` for an existing one. Per-step
    arrays are read through ``buffer[key]`` (a lazily read zarr array) and whole episodes
    through :meth:`episode`. Per-episode metadata (e.g. the reset seed) lives in
    ``meta/<name>`` arrays with one entry per episode.
    """

    def __init__(self, root: zarr.Group, location: str, n_episodes: int) -> None:
        self._root = root
        self.location = location
        self._n_episodes = n_episodes

    # -- construction -----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path | None = None,
        *,
        overwrite: bool = False,
        attrs: Mapping[str, Any] | None = None,
    ) -> ReplayBuffer:
        """A new, empty buffer at ``path`` (a directory), or in memory when ``path`` is None.

        Raises ``FileExistsError`` if ``path`` exists and ``overwrite`` is False, so an
        existing dataset is never replaced by accident.
        """
        if path is None:
            store: Any = zarr.storage.MemoryStore()
            location = "<memory>"
        else:
            path = Path(path)
            if path.exists() and not overwrite:
                raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
            store, location = str(path), str(path)
        root = zarr.open_group(store, mode="w", zarr_format=2)
        root.attrs.update({"format": FORMAT_NAME, "version": FORMAT_VERSION, **(attrs or {})})
        root.require_group("data")
        meta = root.require_group("meta")
        meta.create_array("episode_ends", shape=(0,), chunks=(4096,), dtype="int64", fill_value=0)
        return cls(root, location, 0)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> ReplayBuffer:
        """Open an existing buffer for reading (``mode="r"``) or appending (``mode="a"``).

        Raises :class:`DatasetError` naming the path and key when the store is missing,
        unreadable or structurally inconsistent. Trailing data from an interrupted write is
        ignored with a warning.
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        path = Path(path)
        if not path.exists():
            raise DatasetError(f"{path}: no such dataset")
        if _is_hdf5(path):
            raise DatasetError(
                f"{path}: this is an HDF5 file, not a zarr dataset; convert it with "
                f"`robo dataset convert {path} {path.with_suffix('.zarr')}`"
            )
        try:
            root = zarr.open_group(str(path), mode="r" if mode == "r" else "r+")
        except Exception as err:  # zarr raises several types for a broken store
            raise DatasetError(f"{path}: not a readable zarr group ({err})") from err
        for group in ("data", "meta"):
            if not isinstance(_member(root, group, path), zarr.Group):
                raise DatasetError(f"{path}: '{group}' is not a group")
        ends = _read(_member(root, "meta/episode_ends", path), f"{path}: meta/episode_ends")
        n_episodes = _check_episode_ends(ends, str(path))
        buffer = cls(root, str(path), n_episodes)
        buffer._check_lengths()
        return buffer

    # -- reading ------------------------------------------------------------------------

    @property
    def attrs(self) -> dict[str, Any]:
        """Dataset-level metadata (task name, env arguments, source format, ...)."""
        return dict(self._root.attrs)

    def update_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Set dataset-level metadata (a dataset opened for appending)."""
        self._root.attrs.update(dict(attrs))

    @property
    def stores_every_chunk(self) -> bool:
        """Whether a missing chunk file means damage (this library's format 2 and later; other
        writers may skip chunks that hold only the fill value)."""
        attrs = self._root.attrs
        return attrs.get("format") == FORMAT_NAME and int(attrs.get("version", 1)) >= 2

    @property
    def n_episodes(self) -> int:
        return self._n_episodes

    @property
    def episode_ends(self) -> np.ndarray:
        """Exclusive end index of each episode in the concatenated time axis."""
        return np.asarray(self._root["meta/episode_ends"][: self._n_episodes], dtype=np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_ends, prepend=0)

    @property
    def n_steps(self) -> int:
        return int(self.episode_ends[-1]) if self._n_episodes else 0

    @property
    def keys(self) -> list[str]:
        """Names of the per-step arrays under ``data/``."""
        return sorted(self._root["data"].array_keys())

    @property
    def meta_keys(self) -> list[str]:
        """Names of the per-episode arrays under ``meta/`` (besides ``episode_ends``)."""
        return sorted(k for k in self._root["meta"].array_keys() if k != "episode_ends")

    @property
    def step_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-step shape of each key (what a new episode's arrays must match)."""
        return {key: tuple(self[key].shape[1:]) for key in self.keys}

    def __contains__(self, key: str) -> bool:
        return key in self._root["data"]

    def __getitem__(self, key: str) -> zarr.Array:
        """The zarr array ``data/<key>``; rows past :attr:`n_steps` are not part of any episode."""
        if key not in self._root["data"]:
            raise DatasetKeyError(f"{self.location}: no key 'data/{key}'; keys: {', '.join(self.keys)}")
        return self._root["data"][key]

    def meta(self, name: str) -> np.ndarray:
        """The per-episode array ``meta/<name>``, one entry per episode."""
        if name == "episode_ends" or name not in self._root["meta"]:
            raise DatasetKeyError(f"{self.location}: no per-episode array 'meta/{name}'")
        return np.asarray(self._root["meta"][name][: self._n_episodes])

    def episode_slice(self, index: int) -> slice:
        """The rows of episode ``index`` in every ``data/<key>`` array."""
        if not -self._n_episodes <= index < self._n_episodes:
            raise IndexError(f"episode {index} out of range ({self._n_episodes} episodes)")
        index %= self._n_episodes
        ends = self.episode_ends
        start = int(ends[index - 1]) if index > 0 else 0
        return slice(start, int(ends[index]))

    def episode(self, index: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """All per-step arrays of one episode, read into memory."""
        rows = self.episode_slice(index)
        return {key: self[key][rows] for key in (keys or self.keys)}

    def as_numpy(self, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """Every episode's rows of ``keys`` as in-memory arrays (for datasets that fit in RAM)."""
        return {key: decoded(self.location, f"data/{key}", lambda key=key: self[key][: self.n_steps])
                for key in (keys or self.keys)}

    # -- writing ------------------------------------------------------------------------

    def add_episode(
        self, data: Mapping[str, np.ndarray], episode_meta: Mapping[str, Any] | None = None
    ) -> None:
        """Append one episode atomically: data arrays first, ``meta/episode_ends`` last.

        Args:
            data: per-step arrays with equal first dimension (the episode length, >= 1).
                The first episode fixes the keys, dtypes and per-step shapes.
            episode_meta: scalars stored in ``meta/<name>`` (one entry per episode).
        """
        episode_meta = dict(episode_meta or {})
        arrays = {key: np.asarray(value) for key, value in data.items()}
        self._check_episode(arrays, episode_meta)
        length = len(next(iter(arrays.values())))
        start = self.n_steps
        for key, value in arrays.items():
            _append_rows(self._root["data"], key, value, start)
        for name, value in episode_meta.items():
            _append_rows(self._root["meta"], name, np.asarray([value]), self._n_episodes)
        ends = self._root["meta/episode_ends"]
        ends.resize((self._n_episodes + 1,))
        ends[self._n_episodes] = start + length
        self._n_episodes += 1

    def _check_episode(self, arrays: dict[str, np.ndarray], episode_meta: dict[str, Any]) -> None:
        if not arrays:
            raise ValueError("episode has no arrays")
        lengths = {key: (value.shape[0] if value.ndim else 0) for key, value in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"episode arrays differ in length: {lengths}")
        if next(iter(lengths.values())) == 0:
            raise ValueError("episode has no steps")
        self._check_same_keys("data", set(arrays), set(self.keys))
        self._check_same_keys("meta", set(episode_meta), set(self.meta_keys))
        for key, value in arrays.items():
            if key in self._root["data"]:
                stored = self._root["data"][key]
                if value.shape[1:] != stored.shape[1:]:
                    raise ValueError(
                        f"key '{key}': per-step shape {value.shape[1:]} differs from the "
                        f"stored {stored.shape[1:]}"
                    )

    def _check_same_keys(self, group: str, given: set[str], stored: set[str]) -> None:
        if self._n_episodes and given != stored:
            raise ValueError(
                f"{group}/ keys {sorted(given)} differ from the stored keys {sorted(stored)}"
            )

    def _check_lengths(self) -> None:
        """Every array must cover every episode; rows past the last episode are ignored."""
        for group, needed in (("data", self.n_steps), ("meta", self._n_episodes)):
            for key in sorted(self._root[group].array_keys()):
                if group == "meta" and key == "episode_ends":
                    continue
                have = self._root[group][key].shape[0]
                if have < needed:
                    raise DatasetError(
                        f"{self.location}: '{group}/{key}' has {have} rows but meta/episode_ends "
                        f"needs {needed}"
                    )
                if have > needed:
                    warnings.warn(
                        f"{self.location}: ignoring {have - needed} trailing rows of "
                        f"'{group}/{key}' left by an interrupted write",
                        stacklevel=3,
                    )


def _append_rows(group: zarr.Group, key: str, value: np.ndarray, start: int) -> None:
    """Write ``value`` at rows ``start:`` of ``group[key]``, creating the array if needed.

    Writing at ``start`` rather than at the current end overwrites any trailing rows that
    an interrupted earlier write left behind.
    """
    if key not in group:
        bytes_per_row = max(1, value[0].nbytes)
        # A camera frame per chunk: a loader reading random windows decodes only their frames.
        chunk_rows = 1 if is_image(value.shape[1:], value.dtype) else int(np.clip(CHUNK_BYTES // bytes_per_row, 1, 65536))
        group.create_array(
            key,
            shape=(0, *value.shape[1:]),
            chunks=(chunk_rows, *value.shape[1:]),
            dtype=value.dtype,
            fill_value=0,
        )
    array = group[key].with_config({"write_empty_chunks": True})  # format 2: every chunk stored
    array.resize((start + len(value), *array.shape[1:]))
    array[start:] = value


def is_image(step_shape: tuple[int, ...], dtype: Any) -> bool:
    """Whether an array whose steps have ``step_shape`` and ``dtype`` holds camera images:
    (H, W, C) uint8."""
    return len(step_shape) == 3 and np.dtype(dtype) == np.uint8


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file: its signature sits at byte 0, 512, 1024, 2048, ..."""
    if not path.is_file():
        return False
    size = path.stat().st_size
    with open(path, "rb") as handle:
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            handle.seek(offset)
            if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _member(root: zarr.Group, name: str, path: Path) -> Any:
    """``root[name]``, or a DatasetError saying whether it is missing or unreadable."""
    try:
        return root[name]
    except KeyError:
        kind = "group" if name in ("data", "meta") else "array"
        raise DatasetError(f"{path}: missing {kind} '{name}{'/' if kind == 'group' else ''}'") from None
    except Exception as err:  # e.g. damaged metadata JSON
        raise DatasetError(f"{path}: '{name}' is corrupt ({err})") from err


def decoded(location: str, name: str, read: Callable[[], Any], where: str = "") -> np.ndarray:
    """Run ``read``; a chunk that fails to decode becomes a DatasetError naming the array and,
    when given, ``where`` in it (the codecs' own errors, e.g. "error during blosc
    decompression", name nothing)."""
    try:
        return np.asarray(read())
    except Exception as err:  # codecs raise many types on a damaged chunk
        raise DatasetError(f"{location}: '{name}' is corrupt or truncated{where} ({err})") from err


def _read(array: zarr.Array, name: str) -> np.ndarray:
    try:
        return np.asarray(array[:])
    except Exception as err:
        raise DatasetError(f"{name}: unreadable ({err})") from err


def _check_episode_ends(ends: np.ndarray, location: str) -> int:
    """Number of complete episodes; a trailing 0 from an interrupted append is dropped."""
    if ends.ndim != 1 or not np.issubdtype(ends.dtype, np.integer):
        raise DatasetError(
            f"{location}: meta/episode_ends must be a 1-D integer array, "
            f"got shape {ends.shape} dtype {ends.dtype}"
        )
    n = len(ends)
    if n and ends[-1] == 0:
        warnings.warn(
            f"{location}: ignoring an unfinished episode (meta/episode_ends[{n - 1}] is unset)",
            stacklevel=3,
        )
        n -= 1
    steps = np.diff(ends[:n], prepend=0)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0))
        previous = int(ends[bad - 1]) if bad else 0
        raise DatasetError(
            f"{location}: meta/episode_ends is not strictly increasing: "
            f"episode_ends[{bad}] = {int(ends[bad])} after {previous}"
        )
    return n
