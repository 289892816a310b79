"""Per-key affine normalisation, fitted on the training split and saved with the policy.

Each key gets ``y = x * scale + offset`` per dimension. Modes:

* ``minmax``: maps the data range to [-1, 1] (diffusion heads expect bounded actions);
* ``meanstd``: zero mean, unit variance;
* ``identity``: left alone.

Dimensions listed in ``identity_dims`` stay untouched whatever the key's mode (e.g. a gripper
command that is already in [0, 1]). A constant dimension cannot be scaled, so it is shifted
to 0 with scale 1 instead of dividing by zero. Statistics are gathered in chunks, so a
zarr-backed dataset larger than RAM can be fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from robo_policies.utils.errors import ConfigError, DatasetKeyError

MODES = ("minmax", "meanstd", "identity")
EPS = 1e-6
"""Ranges or standard deviations below this count as constant."""


@dataclass
class KeyStats:
    """Per-dimension statistics of one key, flattened over all but the first axis."""

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def compute_stats(array: Any, rows: np.ndarray | None = None, chunk: int = 65536) -> KeyStats:
    """Min, max, mean and std per dimension over ``array[rows]`` (default: all rows)."""
    rows = np.arange(len(array)) if rows is None else np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("cannot fit normaliser statistics on zero rows")
    total = np.float64(0)
    sums = sq_sums = lo = hi = None
    for begin in range(0, len(rows), chunk):
        part = rows[begin : begin + chunk]
        lo_row, hi_row = int(part.min()), int(part.max()) + 1
        block = np.asarray(array[lo_row:hi_row])[part - lo_row]
        block = block.reshape(len(part), -1).astype(np.float64)
        if sums is None:
            sums, sq_sums = np.zeros(block.shape[1]), np.zeros(block.shape[1])
            lo, hi = block.min(0), block.max(0)
        sums += block.sum(0)
        sq_sums += (block**2).sum(0)
        lo, hi = np.minimum(lo, block.min(0)), np.maximum(hi, block.max(0))
        total += len(part)
    mean = sums / total
    std = np.sqrt(np.maximum(sq_sums / total - mean**2, 0.0))
    return KeyStats(lo, hi, mean, std)


def affine_from_stats(
    stats: KeyStats, mode: str, identity_dims: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) for ``mode``; constant dimensions are centred with scale 1."""
    if mode not in MODES:
        raise ConfigError(f"unknown normaliser mode {mode!r}; choose from {MODES}")
    dims = len(stats.min)
    scale, offset = np.ones(dims), np.zeros(dims)
    if mode == "minmax":
        spread = stats.max - stats.min
        constant = spread < EPS
        scale = np.where(constant, 1.0, 2.0 / np.where(constant, 1.0, spread))
        offset = np.where(constant, -stats.min, -1.0 - stats.min * scale)
    elif mode == "meanstd":
        constant = stats.std < EPS
        scale = np.where(constant, 1.0, 1.0 / np.where(constant, 1.0, stats.std))
        offset = -stats.mean * scale
    for dim in identity_dims:
        if not -dims <= dim < dims:
            raise ValueError(f"identity dim {dim} out of range for {dims} dimensions")
        scale[dim], offset[dim] = 1.0, 0.0
    return scale.astype(np.float32), offset.astype(np.float32)


class Normalizer:
    """A set of per-key affine maps; works on numpy arrays and torch tensors alike.

    The last axes of an input must flatten to the fitted dimension count, so ``(B, T, D)``
    windows and ``(D,)`` single observations both work.
    """

    def __init__(self, params: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.params = {
            key: (np.asarray(scale, np.float32), np.asarray(offset, np.float32))
            for key, (scale, offset) in params.items()
        }

    @classmethod
    def fit(
        cls,
        arrays: Mapping[str, Any],
        modes: Mapping[str, str],
        rows: np.ndarray | None = None,
        identity_dims: Mapping[str, Sequence[int]] | None = None,
    ) -> Normalizer:
        """Fit one map per key in ``modes`` on ``arrays[key][rows]``.

        Args:
            arrays: per-step arrays (numpy or zarr).
            modes: key -> ``minmax`` | ``meanstd`` | ``identity``.
            rows: the rows to fit on (the training split); default all.
            identity_dims: key -> dimensions to leave unscaled.
        """
        identity_dims = identity_dims or {}
        params = {}
        for key, mode in modes.items():
            if key not in arrays:
                raise DatasetKeyError(f"cannot fit normaliser: no key '{key}' in {sorted(arrays)}")
            stats = compute_stats(arrays[key], rows)
            params[key] = affine_from_stats(stats, mode, identity_dims.get(key, ()))
        return cls(params)

    @property
    def keys(self) -> list[str]:
        return sorted(self.params)

    def normalize(self, key: str, x: Any) -> Any:
        return apply_affine(x, *self._affine(key, x))

    def unnormalize(self, key: str, y: Any) -> Any:
        return invert_affine(y, *self._affine(key, y))

    def _affine(self, key: str, x: Any) -> tuple[Any, Any]:
        if key not in self.params:
            raise KeyError(f"normaliser has no key '{key}'; keys: {self.keys}")
        scale, offset = self.params[key]
        if isinstance(x, np.ndarray):
            return scale.astype(x.dtype, copy=False), offset.astype(x.dtype, copy=False)
        import torch  # torch tensors: move the parameters to the input's device and dtype

        as_tensor = lambda a: torch.as_tensor(a, device=x.device, dtype=x.dtype)  # noqa: E731
        return as_tensor(scale), as_tensor(offset)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{"<key>.scale": ..., "<key>.offset": ...}``, ready for safetensors."""
        out = {}
        for key, (scale, offset) in self.params.items():
            out[f"{key}.scale"], out[f"{key}.offset"] = scale, offset
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> Normalizer:
        keys = {name.rsplit(".", 1)[0] for name in state}
        try:
            return cls({key: (state[f"{key}.scale"], state[f"{key}.offset"]) for key in keys})
        except KeyError as err:
            raise KeyError(f"normaliser state is missing {err}") from err


def apply_affine(x: Any, scale: Any, offset: Any) -> Any:
    """``x * scale + offset`` over the trailing dimensions (numpy arrays or torch tensors)."""
    if _ends_in(x, scale):  # broadcast: the same arithmetic without reshapes (policy calls)
        return x * scale + offset
    return (_flat(x, len(scale)) * scale + offset).reshape(x.shape)


def invert_affine(y: Any, scale: Any, offset: Any) -> Any:
    """The inverse of :func:`apply_affine`."""
    if _ends_in(y, scale):
        return (y - offset) / scale
    return ((_flat(y, len(scale)) - offset) / scale).reshape(y.shape)


def _ends_in(x: Any, scale: Any) -> bool:
    """Whether ``x``'s last axis is the per-dimension axis of ``scale``."""
    return len(x.shape) > 0 and tuple(x.shape[-1:]) == tuple(scale.shape)


def _flat(x: Any, dims: int) -> Any:
    """View ``x`` as (rows, dims), checking that its trailing axes hold ``dims`` values."""
    size = int(np.prod(x.shape)) if len(x.shape) else 1
    if dims == 0 or size % dims:
        raise ValueError(f"input of shape {tuple(x.shape)} does not end in {dims} dimensions")
    return x.reshape(-1, dims)
