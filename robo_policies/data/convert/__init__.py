"""Dataset converters: robomimic HDF5 <-> zarr ReplayBuffer, OGBench npz -> zarr ReplayBuffer,
LeRobotDataset directory <-> zarr ReplayBuffer.

:func:`convert` picks the converter from the file suffixes (a directory with
``meta/info.json`` counts as the kind ``lerobot``, and the option ``format=lerobot`` names the
kind of a destination without a suffix); the CLI (``robo dataset convert
SRC DST key=value ...``) calls it. Each converter registers its pair of suffixes with
:func:`register_converter`, naming the function by ``"module:function"`` so it is imported
only when used (h5py for HDF5, say); adding a format is one module plus one registration. The
built-in converters live in :mod:`~robo_policies.data.convert.robomimic_hdf5` and
:mod:`~robo_policies.data.convert.ogbench_npz`, which document their key mappings.

Every converter writes atomically: the output is built at a temporary sibling path
(``DST.tmp-XXXXXXXX``) and moved into place with ``os.replace`` only once it is complete, so
an error or a crash never leaves a half-written dataset at ``DST``. An existing ``DST`` is
replaced only with ``overwrite=True``. Options are the converter's keyword-only arguments.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

from robo_policies.data.lerobot import is_lerobot_dir
from robo_policies.utils.errors import ConfigError

__all__ = ["Converter", "converters", "convert", "register_converter"]


@dataclass(frozen=True)
class Converter:
    """One supported conversion: source and destination suffixes and the function doing it."""

    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    target: str
    """``"module:function"``; the function takes ``(src, dst, **options)`` and returns ``dst``."""
    description: str

    def function(self) -> Callable[..., Path]:
        module, name = self.target.split(":")
        return getattr(import_module(module), name)


_CONVERTERS: list[Converter] = []


def register_converter(sources: tuple[str, ...], destinations: tuple[str, ...], target: str,
                       description: str) -> Converter:
    """Make ``convert`` turn files ending in ``sources`` into ones ending in ``destinations``."""
    converter = Converter(tuple(s.lower() for s in sources), tuple(d.lower() for d in destinations),
                          target, description)
    _CONVERTERS.append(converter)
    return converter


def converters() -> list[Converter]:
    """Every registered conversion, in registration order."""
    return list(_CONVERTERS)


register_converter((".hdf5", ".h5"), (".zarr",), "robo_policies.data.convert.robomimic_hdf5:robomimic_to_zarr",
                   "robomimic HDF5 -> zarr (options filter_key, obs_keys, overwrite)")
register_converter((".zarr",), (".hdf5", ".h5"), "robo_policies.data.convert.robomimic_hdf5:zarr_to_robomimic",
                   "zarr -> robomimic HDF5 (options overwrite, compression)")
register_converter((".npz",), (".zarr",), "robo_policies.data.convert.ogbench_npz:npz_to_zarr",
                   "OGBench npz -> zarr (options overwrite, drop_trailing, obs_key)")
LEROBOT = "lerobot"
register_converter((LEROBOT,), (".zarr",), "robo_policies.data.convert.lerobot:lerobot_to_zarr",
                   "LeRobotDataset v2.1/v3.0 directory -> zarr (options keys, overwrite)")
register_converter((".zarr",), (LEROBOT,), "robo_policies.data.convert.lerobot:zarr_to_lerobot",
                   "zarr -> LeRobotDataset v3.0 directory, with format=lerobot (options codec, images, fps, overwrite)")


def convert(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Convert ``src`` to ``dst`` with the converter registered for their suffixes; returns
    ``dst``. An unsupported pair of suffixes or an option the converter does not take is a
    ``ConfigError`` naming what is supported."""
    src_path, dst_path = Path(src), Path(dst)
    src_suffix = LEROBOT if is_lerobot_dir(src_path) else src_path.suffix.lower()
    dst_suffix = str(options.pop("format")).lower() if "format" in options else dst_path.suffix.lower()
    for converter in _CONVERTERS:
        if src_suffix in converter.sources and dst_suffix in converter.destinations:
            return _call(converter.function(), src_path, dst_path, options)
    supported = "; ".join(f"{'/'.join(c.sources)} -> {'/'.join(c.destinations)} ({c.description})"
                          for c in _CONVERTERS)
    raise ConfigError(
        f"cannot convert {src} ({src_suffix or 'no suffix'}) to {dst} "
        f"({dst_suffix or 'no suffix'}); supported: {supported}"
    )


def _call(function: Callable[..., Path], src: Path, dst: Path, options: dict[str, Any]) -> Path:
    accepted = [name for name, parameter in inspect.signature(function).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{function.__name__} ({src.suffix} -> {dst.suffix}) has no option "
            f"{', '.join(repr(name) for name in unknown)}; options: {', '.join(accepted)}"
        )
    return function(src, dst, **options)
