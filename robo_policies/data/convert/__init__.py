"""Dataset converters: robomimic HDF5 <-> zarr ReplayBuffer, OGBench npz -> zarr ReplayBuffer.

:func:`convert` picks the direction from the file suffixes; the CLI (``robo dataset convert
SRC DST key=value ...``) calls it. The converters themselves live in
:mod:`~robo_policies.data.convert.robomimic_hdf5` and
:mod:`~robo_policies.data.convert.ogbench_npz`, which document their key mappings.

Every converter writes atomically: the output is built at a temporary sibling path
(``DST.tmp-XXXXXXXX``) and moved into place with ``os.replace`` only once it is complete, so
an error or a crash never leaves a half-written dataset at ``DST``. An existing ``DST`` is
replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["SUPPORTED", "atomic_output", "convert"]

SUPPORTED = (
    (".hdf5/.h5", ".zarr", "robomimic HDF5 -> zarr"),
    (".zarr", ".hdf5/.h5", "zarr -> robomimic HDF5"),
    (".npz", ".zarr", "OGBench npz -> zarr"),
)
"""(source suffixes, destination suffixes, what) for each supported conversion."""

_HDF5_SUFFIXES = (".hdf5", ".h5")


def convert(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Convert ``src`` to ``dst``; the direction follows the suffixes.

    * ``.hdf5``/``.h5`` -> ``.zarr``: :func:`robomimic_hdf5.robomimic_to_zarr`
      (options ``filter_key``, ``obs_keys``, ``overwrite``);
    * ``.zarr`` -> ``.hdf5``/``.h5``: :func:`robomimic_hdf5.zarr_to_robomimic`
      (options ``overwrite``, ``compression``);
    * ``.npz`` -> ``.zarr``: :func:`ogbench_npz.npz_to_zarr`
      (options ``overwrite``, ``drop_trailing``).

    Returns the destination path. Raises ``ValueError`` for any other pair of suffixes and
    ``TypeError`` for an option the chosen converter does not take.
    """
    src_path, dst_path = Path(src), Path(dst)
    src_suffix, dst_suffix = src_path.suffix.lower(), dst_path.suffix.lower()
    if src_suffix in _HDF5_SUFFIXES and dst_suffix == ".zarr":
        from robo_policies.data.convert.robomimic_hdf5 import robomimic_to_zarr

        return _call(robomimic_to_zarr, src_path, dst_path, options)
    if src_suffix == ".zarr" and dst_suffix in _HDF5_SUFFIXES:
        from robo_policies.data.convert.robomimic_hdf5 import zarr_to_robomimic

        return _call(zarr_to_robomimic, src_path, dst_path, options)
    if src_suffix == ".npz" and dst_suffix == ".zarr":
        from robo_policies.data.convert.ogbench_npz import npz_to_zarr

        return _call(npz_to_zarr, src_path, dst_path, options)
    supported = "; ".join(f"{a} -> {b} ({what})" for a, b, what in SUPPORTED)
    raise ValueError(
        f"cannot convert {src} ({src_suffix or 'no suffix'}) to {dst} "
        f"({dst_suffix or 'no suffix'}); supported: {supported}"
    )


def _call(function: Any, src: Path, dst: Path, options: dict[str, Any]) -> Path:
    import inspect

    accepted = [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"{function.__name__} ({src.suffix} -> {dst.suffix}) has no option "
            f"{', '.join(repr(name) for name in unknown)}; options: {', '.join(accepted)}"
        )
    return function(src, dst, **options)


@contextmanager
def atomic_output(dst: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write; move it to ``dst`` when the block succeeds.

    The temporary path (``DST.tmp-XXXXXXXX``) does not exist yet: the caller creates a file
    or a directory there. On success it replaces ``dst`` (an existing ``dst`` is moved aside
    first and deleted only after the new one is in place); on any exception, including
    KeyboardInterrupt, the temporary output is deleted and ``dst`` is left as it was.

    Raises ``FileExistsError`` up front if ``dst`` exists and ``overwrite`` is False.
    """
    dst = Path(dst)
    if _exists(dst) and not overwrite:
        raise FileExistsError(f"{dst} already exists; pass overwrite=True to replace it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.name}.tmp-{secrets.token_hex(4)}")
    try:
        yield tmp
        if not _exists(tmp):
            raise RuntimeError(f"nothing was written at {tmp}")
        _move_into_place(tmp, dst, overwrite)
    except BaseException:
        _remove(tmp)
        raise


def _move_into_place(tmp: Path, dst: Path, overwrite: bool) -> None:
    if not _exists(dst):
        os.replace(tmp, dst)
        return
    if not overwrite:  # dst appeared while we were writing
        raise FileExistsError(f"{dst} already exists; pass overwrite=True to replace it")
    if tmp.is_file() and dst.is_file() and not dst.is_symlink():
        os.replace(tmp, dst)  # atomic replacement of one file by another
        return
    # A directory cannot be replaced in one step: move the old one aside, move the new one
    # in, and only then delete the old one (restoring it if the second move fails).
    aside = dst.with_name(f"{dst.name}.old-{secrets.token_hex(4)}")
    os.replace(dst, aside)
    try:
        os.replace(tmp, dst)
    except BaseException:
        os.replace(aside, dst)
        raise
    _remove(aside)


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif _exists(path):
        path.unlink(missing_ok=True)
