"""OGBench-style npz -> zarr ReplayBuffer.

OGBench (and D4RL-style) datasets are flat arrays over all steps: ``observations`` (N, obs_dim),
``actions`` (N, act_dim) and ``terminals`` (N,), where ``terminals == 1`` marks the last step of
each episode; ``rewards``, ``masks``, ``qpos``, ``qvel``, ``next_observations`` and other
per-step arrays are optional. Episodes are split after every terminal.

Key mapping (npz key -> ReplayBuffer ``data/<key>``)::

    observations -> state        next_observations -> next_state
    actions      -> action       rewards           -> reward
    terminals    -> terminal     masks             -> mask
    any other per-step array keeps its name (qpos, qvel, button_states, ...)

``state`` is what the ``ogbench_cube_single`` task observes (OGBench's state vector), so a
policy trained on a converted state dataset runs there as it is. Pixel datasets, whose
observations are (H, W, 3) uint8 frames, store them as ``image`` (``next_image``); the
``obs_key`` option names the observation otherwise.

Only the observation is a policy input: every other array is stored but listed in the attrs
``non_input_keys`` (``data.observation_keys``), so training leaves ``qpos``, ``qvel`` and
the next-step copy out unless ``policy.obs_keys`` names them.

Dtypes and shapes are kept exactly. ``terminal`` is kept although ``meta/episode_ends`` holds
the same information, so no array of the source is lost. The attrs record
``source_format = "ogbench_npz"``, ``source_file`` and ``npz_keys`` (``{buffer key: npz key}``).

Steps after the last terminal belong to no complete episode. That is an error by default
(the file is truncated or its terminals are wrong, and guessing an episode end would
invent data); ``drop_trailing=True`` drops them with a warning instead.

Arrays are streamed from the archive episode by episode, so a dataset larger than memory
(OGBench's pixel datasets) converts in bounded memory.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from robo_policies.utils.atomic import atomic_output
from robo_policies.data.observation_keys import NEXT_STEP_PREFIX, NON_INPUT_KEYS_ATTR
from robo_policies.data.replay_buffer import DatasetError, ReplayBuffer, is_image
from robo_policies.data.validate import validate_dataset

SOURCE_FORMAT = "ogbench_npz"
STATE_KEY, IMAGE_KEY = "state", "image"
"""Default names of OGBench's ``observations``: a state vector, or camera frames."""
NPZ_KEYS = {
    "actions": "action",
    "rewards": "reward",
    "terminals": "terminal",
    "masks": "mask",
}
"""npz keys renamed in the buffer; other keys keep their names."""
REQUIRED = ("observations", "actions", "terminals")


def npz_to_zarr(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    drop_trailing: bool = False,
    obs_key: str = "",
) -> Path:
    """Convert an OGBench-style ``.npz`` to a zarr ReplayBuffer at ``dst`` (atomically).

    Args:
        src: the ``.npz`` file.
        dst: the ``.zarr`` directory to write.
        overwrite: replace an existing ``dst``.
        drop_trailing: drop (with a warning) steps after the last terminal instead of
            raising.
        obs_key: the buffer key of ``observations`` (``next_<obs_key>`` for
            ``next_observations``); empty: ``state``, or ``image`` for camera frames.

    Raises:
        DatasetError: naming the file and key, for a file that is not an npz archive, a
            missing ``observations``/``actions``/``terminals``, an array whose length differs
            from ``terminals``, terminals other than 0/1, or trailing steps without a terminal.
        FileExistsError: ``dst`` exists and ``overwrite`` is False.
    """
    src, dst = Path(src), Path(dst)
    with _NpzArchive(src) as npz:
        keys = npz.keys
        for key in REQUIRED:
            if key not in keys:
                raise DatasetError(
                    f"{src}: missing key '{key}'; keys: {', '.join(keys) or 'none'}"
                )
        terminals = npz.read("terminals")
        if terminals.ndim != 1:
            raise DatasetError(f"{src}: 'terminals' has shape {terminals.shape}, expected (N,)")
        steps = len(terminals)
        if steps == 0:
            raise DatasetError(f"{src}: 'terminals' is empty; no steps to convert")
        bad = ~np.isin(terminals, (0, 1))
        if bad.any():
            row = int(np.argmax(bad))
            raise DatasetError(
                f"{src}: 'terminals' must hold 0 or 1, got {terminals[row]!r} at row {row}"
            )
        for key in keys:
            shape, dtype = npz.header(key)
            if not shape or shape[0] != steps:
                rows = shape[0] if shape else "no"
                raise DatasetError(f"{src}: '{key}' has {rows} rows but 'terminals' has {steps}")
            if dtype.hasobject:
                raise DatasetError(f"{src}: '{key}' holds Python objects (dtype {dtype})")

        ends = np.flatnonzero(terminals) + 1
        last = int(ends[-1]) if len(ends) else 0
        if last != steps:
            message = (
                f"{src}: the last {steps - last} steps (rows {last}..{steps - 1}) have no "
                "terminal, so they end no episode"
            )
            if not drop_trailing:
                raise DatasetError(f"{message}; pass drop_trailing=True to drop them")
            if not len(ends):
                raise DatasetError(f"{src}: 'terminals' has no 1; no complete episode")
            warnings.warn(f"{message}; dropped", stacklevel=2)

        obs_shape, obs_dtype = npz.header("observations")
        obs_key = obs_key or (IMAGE_KEY if is_image(obs_shape[1:], obs_dtype) else STATE_KEY)
        renamed = {**NPZ_KEYS, "observations": obs_key, "next_observations": NEXT_STEP_PREFIX + obs_key}
        mapping: dict[str, str] = {}
        for key in keys:
            name = renamed.get(key, key)
            if name in mapping:
                raise DatasetError(
                    f"{src}: '{key}' and '{mapping[name]}' would both be stored as data/{name}"
                )
            mapping[name] = key

        attrs: dict[str, Any] = {
            "source_format": SOURCE_FORMAT,
            "source_file": src.name,
            "npz_keys": mapping,
            NON_INPUT_KEYS_ATTR: sorted(name for name in mapping if name not in (obs_key, "action")),
        }
        with atomic_output(dst, overwrite=overwrite) as tmp:
            buffer = ReplayBuffer.create(tmp, attrs=attrs)
            readers = {name: npz.rows(key) for name, key in mapping.items()}
            try:
                start = 0
                for end in ends:
                    length = int(end) - start
                    buffer.add_episode({name: rows.read(length) for name, rows in readers.items()})
                    start = int(end)
            finally:
                for rows in readers.values():
                    rows.close()
            validate_dataset(tmp, name=dst)  # what training would refuse never lands at dst
    return dst


class _NpzArchive:
    """An ``.npz`` file whose arrays can be read whole or row block by row block."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise DatasetError(f"{path}: no such file")
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise DatasetError(f"{path}: not an npz archive ({err})") from err
        self.keys = [
            name[: -len(".npy")] for name in self._zip.namelist() if name.endswith(".npy")
        ]

    def __enter__(self) -> _NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        with self._zip.open(f"{key}.npy") as fp:
            shape, _, dtype = self._read_header(fp, key)
        return shape, dtype

    def read(self, key: str) -> np.ndarray:
        with self._zip.open(f"{key}.npy") as fp:
            try:
                return np.lib.format.read_array(fp, allow_pickle=False)
            except Exception as err:
                raise DatasetError(f"{self.path}: '{key}': unreadable ({err})") from err

    def rows(self, key: str) -> _Rows:
        return _Rows(self, key)

    def _read_header(self, fp: Any, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                return np.lib.format.read_array_header_1_0(fp)
            if version == (2, 0):
                return np.lib.format.read_array_header_2_0(fp)
        except Exception as err:
            raise DatasetError(f"{self.path}: '{key}': not a .npy array ({err})") from err
        raise DatasetError(f"{self.path}: '{key}': unsupported .npy format version {version}")


class _Rows:
    """Sequential reader of consecutive rows of one array in the archive."""

    def __init__(self, archive: _NpzArchive, key: str) -> None:
        self._archive, self._key = archive, key
        self._fp = archive._zip.open(f"{key}.npy")
        shape, fortran_order, dtype = archive._read_header(self._fp, key)
        self._row_shape, self._dtype = shape[1:], dtype
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self._whole: np.ndarray | None = None
        if fortran_order:  # rows are not contiguous on disk: read the array once
            self._fp.close()
            self._whole = archive.read(key)
        self._next = 0

    def close(self) -> None:
        self._fp.close()

    def read(self, count: int) -> np.ndarray:
        start, self._next = self._next, self._next + count
        if self._whole is not None:
            return self._whole[start : start + count]
        wanted = count * self._row_bytes
        chunks, got = [], 0
        while got < wanted:
            chunk = self._fp.read(wanted - got)
            if not chunk:
                row = start + got // max(self._row_bytes, 1)
                raise DatasetError(f"{self._archive.path}: '{self._key}' ends early at row {row}")
            chunks.append(chunk)
            got += len(chunk)
        return np.frombuffer(b"".join(chunks), dtype=self._dtype).reshape(
            (count, *self._row_shape)
        )
