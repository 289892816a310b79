"""Normalizer: ranges, constant dimensions, identity dims, torch inputs, serialisation."""

import numpy as np
import pytest
import torch

from robo_policies.data import Normalizer, ReplayBuffer


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 7, size=(500, 4)).astype(np.float32)
    x[:, 2] = 1.5  # constant dimension
    return x


def test_minmax_maps_to_unit_range_and_back(data):
    norm = Normalizer.fit({"a": data}, {"a": "minmax"})
    y = norm.normalize("a", data)
    assert np.allclose(y[:, [0, 1, 3]].min(0), -1, atol=1e-6)
    assert np.allclose(y[:, [0, 1, 3]].max(0), 1, atol=1e-6)
    assert np.all(y[:, 2] == 0)  # constant dimension centred, not divided by zero
    np.testing.assert_allclose(norm.unnormalize("a", y), data, atol=1e-5)


def test_meanstd_and_identity_dims(data):
    norm = Normalizer.fit({"a": data}, {"a": "meanstd"}, identity_dims={"a": [3]})
    y = norm.normalize("a", data)
    np.testing.assert_allclose(y[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(y[:, :2].std(0), 1, atol=1e-4)
    np.testing.assert_array_equal(y[:, 3], data[:, 3])
    assert np.all(np.isfinite(y))


def test_fit_on_selected_rows_of_a_zarr_array(tmp_path, data):
    buffer = ReplayBuffer.create(tmp_path / "d.zarr")
    buffer.add_episode({"a": data[:200]})
    buffer.add_episode({"a": data[200:]})
    rows = np.arange(200, 500)
    from_zarr = Normalizer.fit({"a": buffer["a"]}, {"a": "minmax"}, rows=rows)
    from_numpy = Normalizer.fit({"a": data[200:]}, {"a": "minmax"})
    for (s1, o1), (s2, o2) in zip(from_zarr.params.values(), from_numpy.params.values()):
        np.testing.assert_allclose(s1, s2)
        np.testing.assert_allclose(o1, o2)


def test_torch_windows_and_state_dict_round_trip(data):
    norm = Normalizer.fit({"a": data}, {"a": "minmax"})
    restored = Normalizer.from_state_dict(norm.state_dict())
    windows = torch.tensor(data[:60]).reshape(10, 6, 4)
    y = restored.normalize("a", windows)
    assert isinstance(y, torch.Tensor) and y.shape == (10, 6, 4)
    np.testing.assert_allclose(y.reshape(60, 4).numpy(), norm.normalize("a", data[:60]), atol=1e-6)
    assert set(norm.state_dict()) == {"a.scale", "a.offset"}


def test_errors_name_the_key_and_value(data):
    with pytest.raises(ValueError, match="unknown normaliser mode 'zscore'"):
        Normalizer.fit({"a": data}, {"a": "zscore"})
    with pytest.raises(KeyError, match="no key 'b'"):
        Normalizer.fit({"a": data}, {"b": "minmax"})
    norm = Normalizer.fit({"a": data}, {"a": "minmax"})
    with pytest.raises(ValueError, match=r"shape \(5, 3\) does not end in 4"):
        norm.normalize("a", np.zeros((5, 3), np.float32))
