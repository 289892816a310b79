"""robomimic HDF5 <-> zarr ReplayBuffer, read and written with h5py only.

The robomimic layout::

    data/                          attrs: env_args (JSON string), total (sum of num_samples)
        demo_N/                    attrs: num_samples
            actions, rewards, dones, states     (T, ...) per-step datasets
            obs/<key>, next_obs/<key>           (T, ...) per-step datasets
    mask/<filter_key>              demo names as bytes, e.g. b"demo_0"

Key mapping (robomimic path inside ``demo_N`` -> ReplayBuffer ``data/<key>``):

* ``obs/<key>``  -> ``<key>`` (robomimic's names are kept, e.g. ``robot0_eef_pos``);
* ``actions`` -> ``action``, ``rewards`` -> ``reward``, ``dones`` -> ``done``;
* any other dataset directly in the demo (e.g. ``states``) keeps its name;
* ``<group>/<key>`` for any other group (e.g. ``next_obs``) -> ``<group>.<key>``
  (``next_obs/agentview_image`` -> ``next_obs.agentview_image``).

Only ``obs/`` holds observations in robomimic's layout, so every other buffer key but
``action`` (``next_obs.*``, ``states``, ``reward``, ...) is listed in the attrs
``non_input_keys``: training leaves them out unless ``policy.obs_keys`` names them
(``data.observation_keys``). Camera images (``obs/agentview_image``, (T, H, W, 3) uint8) become
image arrays stored one frame per chunk, as recorded ones are, and train an image policy.

The names ``action``, ``reward`` and ``done`` are reserved: an obs key with one of those names,
or any two entries that map to the same buffer key, is an error. The exact mapping used is
stored in the buffer attrs under ``robomimic_keys`` (``{buffer key: path in demo}``), so the way
back never has to guess. Dtypes and shapes are kept exactly.

Metadata:

* ``meta/demo_index`` (int64, one per episode): the ``N`` of ``demo_N``. Episodes are in natural
  demo order (``demo_2`` before ``demo_10``).
* attrs ``env_args_json``: the ``env_args`` string exactly as stored in the file, and
  ``env_args``: the same parsed as JSON (for readers). Writing back uses ``env_args_json`` as
  long as it still parses to ``env_args``, so the string round-trips byte for byte; if only
  ``env_args`` is present (or was edited), it is written with ``json.dumps``.
* attrs ``robomimic_masks``: ``{filter_key: [N, ...]}``, the demo numbers of each
  ``mask/<filter_key>`` in the file's order, restricted to the demos converted.
* attrs ``source_format`` (``"robomimic_hdf5"``), ``source_file`` (the file name) and, when
  used, ``robomimic_filter_key``.
* the data attribute ``robo_policies`` (JSON ``{"attrs": {...}, "meta": [...]}``), written by
  the way back (below), restores the buffer attributes and the per-episode ``meta/<name>``
  arrays (stored as demo attributes) of the buffer it was written from.
* other attributes of ``data/``, of the file and of each demo (robosuite's ``model_file``, say)
  go to ``robomimic_data_attrs``, ``robomimic_file_attrs`` and ``robomimic_demo_attrs``
  (``{"N": {name: value}}``); numpy values are stored as ``{"ndarray": ..., "dtype": ...}`` so
  that they are written back with their dtype. ``total`` and ``num_samples`` are recomputed.

Going back (zarr -> HDF5) a buffer without ``robomimic_keys`` (one recorded by ``robo collect``,
say) is mapped by the rule above read backwards: ``action``/``reward``/``done`` ->
``actions``/``rewards``/``dones``, ``next_obs.<key>`` -> ``next_obs/<key>``, the buffer's
observations (``data.observation_keys``) -> ``obs/<key>`` and every other key
(``executed_action``, or ``qpos`` where ``non_input_keys`` lists it) -> a dataset of that name
in the demo, so it stays a non-input on the way back in; without ``meta/demo_index`` the demos are numbered 0..n-1.
Nothing else of the buffer is lost: each per-episode ``meta/<name>`` (seed, success,
task_index, ...) becomes an attribute of its demo, and the buffer attributes the robomimic
layout does not hold itself (``task``, ``tasks``, ``env_kwargs``, ...) go, with the meta names,
into the data attribute ``robo_policies``, so zarr -> HDF5 -> zarr gives the buffer back.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robo_policies.utils.atomic import atomic_output
from robo_policies.data.observation_keys import NON_INPUT_KEYS_ATTR, default_observation_keys
from robo_policies.data.replay_buffer import DatasetError, ReplayBuffer
from robo_policies.data.validate import first_non_finite, validate_dataset

SOURCE_FORMAT = "robomimic_hdf5"
RENAMED = {"actions": "action", "rewards": "reward", "dones": "done"}
"""robomimic per-demo datasets whose buffer key differs from their name."""
RESERVED = frozenset(RENAMED.values())
"""Buffer keys an obs key may not take."""
_DEMO_NAME = re.compile(r"demo_(\d+)")
ROBO_POLICIES_ATTR = "robo_policies"
"""Data attribute carrying what the robomimic layout has no place for (module docstring)."""
DERIVED_ATTRS = frozenset({
    "format", "version", "source_format", "source_file", "env_args", "env_args_json", "robomimic_keys",
    "robomimic_masks", "robomimic_filter_key", "robomimic_data_attrs", "robomimic_file_attrs",
    "robomimic_demo_attrs", NON_INPUT_KEYS_ATTR,
})
"""Buffer attributes that ``robomimic_to_zarr`` derives from the file, so the way back does
not carry them in ``robo_policies``."""


# -- robomimic HDF5 -> zarr ---------------------------------------------------------------


def robomimic_to_zarr(
    src: str | Path,
    dst: str | Path,
    *,
    filter_key: str | None = None,
    obs_keys: list[str] | tuple[str, ...] | str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert a robomimic HDF5 file to a zarr ReplayBuffer at ``dst`` (atomically).

    Args:
        src: the robomimic ``.hdf5`` file.
        dst: the ``.zarr`` directory to write.
        filter_key: convert only the demos listed in ``mask/<filter_key>``.
        obs_keys: keep only these observation keys (from ``obs/`` and ``next_obs/``);
            all of them by default.
        overwrite: replace an existing ``dst``.

    Raises:
        DatasetError: naming the file, the demo and the key, for a file that is not HDF5,
            a missing ``data`` group, an unknown filter key or obs key, datasets of
            different lengths in a demo, demos with different keys, and so on.
        FileExistsError: ``dst`` exists and ``overwrite`` is False.
    """
    src, dst = Path(src), Path(dst)
    if isinstance(obs_keys, str):
        obs_keys = [obs_keys]
    with _open_hdf5(src) as file:
        data = file.get("data")
        if not isinstance(data, h5py.Group):
            raise DatasetError(f"{src}: no 'data' group; not a robomimic dataset")
        demos = _demo_numbers(data, src)
        masks = _read_masks(file, src, demos)
        if filter_key is not None:
            if filter_key not in masks:
                available = ", ".join(sorted(masks)) or "none"
                raise DatasetError(
                    f"{src}: no filter key '{filter_key}' (mask/{filter_key}); "
                    f"available filter keys: {available}"
                )
            selected = set(masks[filter_key])
            demos = {name: number for name, number in demos.items() if number in selected}
        if not demos:
            which = f" in mask/{filter_key}" if filter_key is not None else ""
            raise DatasetError(f"{src}: no demos{which} to convert")
        layout = _check_demos(data, demos, src, obs_keys)

        carried = _read_carried(data, src)
        attrs: dict[str, Any] = {"source_format": SOURCE_FORMAT, "source_file": src.name}
        attrs.update(_env_args_attrs(data, src))
        attrs["robomimic_keys"] = layout
        attrs[NON_INPUT_KEYS_ATTR] = sorted(key for key, path in layout.items()
                                            if not path.startswith("obs/") and key != "action")
        kept = set(demos.values())
        attrs["robomimic_masks"] = {
            key: [number for number in numbers if number in kept] for key, numbers in masks.items()
        }
        if filter_key is not None:
            attrs["robomimic_filter_key"] = filter_key
        attrs.update(carried["attrs"])
        data_attrs = _attrs_to_json(data.attrs, f"{src}: data", skip=("env_args", "total", ROBO_POLICIES_ATTR))
        if data_attrs:
            attrs["robomimic_data_attrs"] = data_attrs
        file_attrs = _attrs_to_json(file.attrs, f"{src}: file")
        if file_attrs:
            attrs["robomimic_file_attrs"] = file_attrs
        demo_attrs = {}
        for name, number in demos.items():
            extra = _attrs_to_json(data[name].attrs, f"{src}: data/{name}",
                                   skip=("num_samples", *carried["meta"]))
            if extra:
                demo_attrs[str(number)] = extra
        if demo_attrs:
            attrs["robomimic_demo_attrs"] = demo_attrs

        with atomic_output(dst, overwrite=overwrite) as tmp:
            buffer = ReplayBuffer.create(tmp, attrs=attrs)
            for name, number in demos.items():
                group = data[name]
                episode = {key: _read_dataset(group[path], src, f"data/{name}/{path}")
                           for key, path in layout.items()}
                for key, path in layout.items():  # what `robo dataset validate` would refuse
                    _require_finite(episode[key], src, f"data/{name}/{path}")
                meta = {meta_name: _demo_meta(group, meta_name, src) for meta_name in carried["meta"]}
                buffer.add_episode(episode, {"demo_index": np.int64(number), **meta})
            validate_dataset(tmp, name=dst)  # what training would refuse never lands at dst
    return dst


def _read_carried(data: h5py.Group, src: Path) -> dict[str, Any]:
    """``{"attrs": {...}, "meta": [...]}`` from the data attribute ``robo_policies`` (empty
    when the file was not written from a buffer that had any)."""
    raw = data.attrs.get(ROBO_POLICIES_ATTR)
    if raw is None:
        return {"attrs": {}, "meta": []}
    try:
        carried = json.loads(raw)
        return {"attrs": dict(carried["attrs"]), "meta": [str(name) for name in carried["meta"]]}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{src}: data attr {ROBO_POLICIES_ATTR} is not "
                           f'{{"attrs": {{...}}, "meta": [...]}} JSON ({err})') from err


def _demo_meta(group: h5py.Group, name: str, src: Path) -> np.ndarray:
    """The per-episode value ``meta/<name>`` stored as an attribute of demo ``group``."""
    if name not in group.attrs:
        raise DatasetError(f"{src}: {group.name} has no attr '{name}', which data attr "
                           f"{ROBO_POLICIES_ATTR} lists as per-episode meta")
    return np.asarray(group.attrs[name])


def _require_finite(array: np.ndarray, src: Path, where: str) -> None:
    """A DatasetError naming the demo's dataset and step where ``array`` holds NaN or inf."""
    found = first_non_finite(array)
    if found is not None:
        raise DatasetError(f"{src}: {where} has {found[1]} at step {found[0]}; refusing to convert non-finite data")


def _open_hdf5(path: Path) -> h5py.File:
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if path.is_dir() or not h5py.is_hdf5(str(path)):
        raise DatasetError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path}: unreadable HDF5 file ({err})") from err


def _demo_numbers(data: h5py.Group, src: Path) -> dict[str, int]:
    """``{"demo_N": N}`` for every demo group, in natural order of N."""
    demos: dict[str, int] = {}
    seen: dict[int, str] = {}
    for name, item in data.items():
        match = _DEMO_NAME.fullmatch(name)
        if not isinstance(item, h5py.Group) or match is None:
            warnings.warn(f"{src}: skipping data/{name}: not a demo_N group", stacklevel=3)
            continue
        number = int(match.group(1))
        if number in seen:
            raise DatasetError(f"{src}: data/{seen[number]} and data/{name} have the same number")
        seen[number] = name
        demos[name] = number
    return dict(sorted(demos.items(), key=lambda item: item[1]))


def _read_masks(file: h5py.File, src: Path, demos: dict[str, int]) -> dict[str, list[int]]:
    """``{filter_key: [N, ...]}`` from ``mask/<filter_key>`` (demo names as bytes)."""
    group = file.get("mask")
    if group is None:
        return {}
    if not isinstance(group, h5py.Group):
        raise DatasetError(f"{src}: 'mask' is not a group")
    masks: dict[str, list[int]] = {}
    for key, dataset in group.items():
        if not isinstance(dataset, h5py.Dataset):
            raise DatasetError(f"{src}: mask/{key} is not a dataset")
        numbers = []
        for value in np.atleast_1d(dataset[()]):
            name = value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)
            if name not in demos:
                raise DatasetError(f"{src}: mask/{key} lists '{name}', which is not in data/")
            numbers.append(demos[name])
        masks[key] = numbers
    return masks


def _demo_layout(group: h5py.Group, where: str, obs_keys: list[str] | None) -> dict[str, str]:
    """``{buffer key: path inside the demo}`` for one demo (see the module docstring)."""
    layout: dict[str, str] = {}

    def add(key: str, path: str) -> None:
        if key in layout:
            raise DatasetError(
                f"{where}: '{path}' and '{layout[key]}' would both be stored as data/{key}"
            )
        layout[key] = path

    groups = []
    for name, item in group.items():
        if isinstance(item, h5py.Dataset):
            add(RENAMED.get(name, name), name)
        else:
            groups.append((name, item))
    for name, item in sorted(groups, key=lambda pair: pair[0] != "obs"):
        for key, dataset in item.items():
            if not isinstance(dataset, h5py.Dataset):
                raise DatasetError(f"{where}: {name}/{key} is a group; expected a dataset")
            if name in ("obs", "next_obs") and obs_keys is not None and key not in obs_keys:
                continue
            if name == "obs":
                if key in RESERVED:
                    raise DatasetError(
                        f"{where}: obs key '{key}' collides with data/{key}, reserved for the "
                        f"robomimic '{key}s' dataset; rename the obs key"
                    )
                add(key, f"obs/{key}")
            else:
                add(f"{name}.{key}", f"{name}/{key}")
    if obs_keys is not None:
        available = sorted(item for item in group.get("obs", {}))
        for key in obs_keys:
            if f"obs/{key}" not in layout.values():
                raise DatasetError(
                    f"{where}: no obs key '{key}'; available obs keys: "
                    f"{', '.join(available) or 'none'}"
                )
    return layout


def _check_demos(
    data: h5py.Group, demos: dict[str, int], src: Path, obs_keys: list[str] | None
) -> dict[str, str]:
    """Check every demo before anything is written; return the shared key layout."""
    layout: dict[str, str] | None = None
    signature: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for name in demos:
        group = data[name]
        where = f"{src}: data/{name}"
        demo_layout = _demo_layout(group, where, obs_keys)
        if "action" not in demo_layout:
            raise DatasetError(f"{where}: no 'actions' dataset")
        if layout is None:
            layout = demo_layout
        elif demo_layout != layout:
            first = next(iter(demos))
            missing = sorted(set(layout.values()) - set(demo_layout.values()))
            extra = sorted(set(demo_layout.values()) - set(layout.values()))
            raise DatasetError(
                f"{where}: datasets differ from data/{first}: missing {missing}, extra {extra}"
            )
        steps = group["actions"].shape[0] if group["actions"].ndim else 0
        if steps == 0:
            raise DatasetError(f"{where}: 'actions' has no steps")
        for key, path in demo_layout.items():
            dataset = group[path]
            if dataset.ndim == 0:
                raise DatasetError(f"{where}/{path}: a scalar, expected one row per step")
            if dataset.shape[0] != steps:
                raise DatasetError(
                    f"{where}: '{path}' has {dataset.shape[0]} steps but 'actions' has {steps}"
                )
            if dataset.dtype.kind not in "biufcSUV" or dataset.dtype.hasobject:
                raise DatasetError(f"{where}/{path}: unsupported dtype {dataset.dtype}")
            shape_dtype = (dataset.shape[1:], dataset.dtype)
            if key in signature and signature[key] != shape_dtype:
                raise DatasetError(
                    f"{where}/{path}: per-step shape {dataset.shape[1:]} dtype {dataset.dtype} "
                    f"differs from the first demo's {signature[key][0]} {signature[key][1]}"
                )
            signature[key] = shape_dtype
        num_samples = group.attrs.get("num_samples")
        if num_samples is not None and int(num_samples) != steps:
            raise DatasetError(
                f"{where}: attr num_samples = {int(num_samples)} but 'actions' has {steps} steps"
            )
    assert layout is not None
    return layout


def _read_dataset(dataset: h5py.Dataset, src: Path, path: str) -> np.ndarray:
    try:
        return dataset[()]
    except Exception as err:  # h5py raises OSError/RuntimeError for corrupt chunks
        raise DatasetError(f"{src}: {path}: unreadable ({err})") from err


def _env_args_attrs(data: h5py.Group, src: Path) -> dict[str, Any]:
    raw = data.attrs.get("env_args")
    if raw is None:
        return {}
    if isinstance(raw, (bytes, np.bytes_)):
        raw = bytes(raw).decode()
    raw = str(raw)
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as err:
        warnings.warn(
            f"{src}: data attr env_args is not valid JSON ({err}); kept only as env_args_json",
            stacklevel=3,
        )
        return {"env_args_json": raw}
    return {"env_args": parsed, "env_args_json": raw}


def _attrs_to_json(attrs: h5py.AttributeManager, where: str, skip: tuple[str, ...] = ()) -> dict:
    out = {}
    for name in attrs:
        if name in skip:
            continue
        try:
            value = _to_json(attrs[name])
        except (TypeError, OSError) as err:
            warnings.warn(f"{where}: attr '{name}' not kept ({err})", stacklevel=4)
            continue
        out[name] = value
    return out


def _to_json(value: Any) -> Any:
    """An HDF5 attribute value as JSON that :func:`_from_json` turns back into the same value."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, np.bytes_)):
        return {"bytes": bytes(value).decode("latin-1")}
    array = np.asarray(value)
    if array.dtype.kind in "biuf":
        return {"ndarray": array.tolist(), "dtype": array.dtype.str}
    raise TypeError(f"unsupported attribute type {type(value).__name__} dtype {array.dtype}")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "ndarray" in value:
        return np.asarray(value["ndarray"], dtype=value["dtype"])
    if isinstance(value, dict) and "bytes" in value:
        return np.bytes_(value["bytes"].encode("latin-1"))
    return value


# -- zarr -> robomimic HDF5 ---------------------------------------------------------------


def default_layout(key: str, observations: set[str]) -> str:
    """Where a buffer key without a stored mapping goes in a robomimic demo; ``observations``
    are the buffer's input keys (``data.observation_keys``)."""
    reverse = {value: key for key, value in RENAMED.items()}
    if key in reverse:
        return reverse[key]
    if key.startswith("next_obs."):
        return f"next_obs/{key[len('next_obs.'):]}"
    return f"obs/{key}" if key in observations else key


def zarr_to_robomimic(
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    compression: str | None = None,
) -> Path:
    """Write a zarr ReplayBuffer as a robomimic HDF5 file at ``dst`` (atomically).

    A buffer converted from robomimic is written back with the same layout, dtypes, demo
    names, ``env_args`` string, ``total``, ``num_samples`` and masks (see the module
    docstring). ``compression`` (e.g. ``"gzip"``) applies to every dataset.

    Raises:
        DatasetError: naming the file and key, for an unreadable buffer, a buffer without
            ``data/action``, duplicate demo numbers or a mask naming a missing demo.
        FileExistsError: ``dst`` exists and ``overwrite`` is False.
    """
    src, dst = Path(src), Path(dst)
    buffer = ReplayBuffer.open(src)
    attrs = buffer.attrs
    stored = attrs.get("robomimic_keys") or {}
    observations = set(default_observation_keys(buffer.keys, attrs))
    layout = {key: stored.get(key, default_layout(key, observations)) for key in buffer.keys}
    _check_layout(layout, src)
    if buffer.n_episodes == 0:
        raise DatasetError(f"{src}: no episodes to write")

    if "demo_index" in buffer.meta_keys:
        numbers = [int(n) for n in buffer.meta("demo_index")]
    else:
        numbers = list(range(buffer.n_episodes))
    if len(set(numbers)) != len(numbers) or min(numbers) < 0:
        raise DatasetError(f"{src}: meta/demo_index has duplicate or negative entries: {numbers}")
    masks = attrs.get("robomimic_masks") or {}
    for key, mask in masks.items():
        missing = sorted(set(mask) - set(numbers))
        if missing:
            raise DatasetError(
                f"{src}: attr robomimic_masks['{key}'] lists demos {missing} that are not "
                "in meta/demo_index"
            )
    demo_attrs = attrs.get("robomimic_demo_attrs") or {}
    meta_names = [name for name in buffer.meta_keys if name != "demo_index"]
    meta = {name: buffer.meta(name) for name in meta_names}
    carried = {"attrs": {name: value for name, value in attrs.items() if name not in DERIVED_ATTRS},
               "meta": meta_names}

    with atomic_output(dst, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w-") as file:
            for name, value in (attrs.get("robomimic_file_attrs") or {}).items():
                file.attrs[name] = _from_json(value)
            data = file.create_group("data")
            total = 0
            for index, number in enumerate(numbers):
                group = data.create_group(f"demo_{number}")
                episode = buffer.episode(index)
                for key, value in episode.items():
                    group.create_dataset(layout[key], data=value, compression=compression)
                for name, value in demo_attrs.get(str(number), {}).items():
                    group.attrs[name] = _from_json(value)
                for name, values in meta.items():
                    group.attrs[name] = values[index]
                steps = len(episode["action"])
                group.attrs["num_samples"] = np.int64(steps)
                total += steps
            data.attrs["total"] = np.int64(total)
            env_args = _env_args_string(attrs)
            if env_args is not None:
                data.attrs["env_args"] = env_args
            for name, value in (attrs.get("robomimic_data_attrs") or {}).items():
                data.attrs[name] = _from_json(value)
            if carried["attrs"] or carried["meta"]:
                data.attrs[ROBO_POLICIES_ATTR] = json.dumps(carried)
            for key, mask in masks.items():
                names = [f"demo_{number}" for number in mask]
                file.create_dataset(f"mask/{key}", data=np.array(names, dtype="S"))
    return dst


def _check_layout(layout: dict[str, str], src: Path) -> None:
    if "action" not in layout:
        raise DatasetError(f"{src}: no data/action; robomimic demos need 'actions'")
    targets: dict[str, str] = {}
    for key, path in layout.items():
        parts = path.split("/")
        if len(parts) > 2 or not all(parts):
            raise DatasetError(f"{src}: data/{key} maps to '{path}', not 'name' or 'group/name'")
        if path in targets:
            raise DatasetError(f"{src}: data/{key} and data/{targets[path]} both map to '{path}'")
        targets[path] = key
    for path, key in targets.items():
        if "/" not in path and any(other.startswith(f"{path}/") for other in targets):
            raise DatasetError(f"{src}: data/{key} maps to '{path}', also used as a group")
    if layout["action"] != "actions":
        raise DatasetError(f"{src}: data/action maps to '{layout['action']}', not 'actions'")


def _env_args_string(attrs: dict[str, Any]) -> str | None:
    raw = attrs.get("env_args_json")
    parsed = attrs.get("env_args")
    if raw is not None:
        try:
            unchanged = parsed is None or json.loads(raw) == parsed
        except json.JSONDecodeError:
            unchanged = parsed is None
        if unchanged:
            return str(raw)
    if parsed is not None:
        return json.dumps(parsed)
    return None
