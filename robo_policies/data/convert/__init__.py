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

from pathlib import Path
from typing import Any
from robo_policies.utils.errors import ConfigError

__all__ = ["SUPPORTED", "convert"]

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
    raise ConfigError(
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
