import numpy as np
import pytest

from napari_higt.explain.rasters import node_raster


def test_tiles_paint_their_value_and_background_is_nan():
    coords = np.array([[0, 0], [512, 0], [512, 512]])
    r = node_raster(coords, 512, np.array([1.0, 2.0, 3.0]), (1536, 1024), pixels_per_tile=2)
    assert r.downsample == 256 and r.values.shape == (4, 6)
    np.testing.assert_array_equal(r.values[:2, :2], 1.0)
    np.testing.assert_array_equal(r.values[:2, 2:4], 2.0)
    np.testing.assert_array_equal(r.values[2:4, 2:4], 3.0)
    assert np.isnan(r.values[2:, :2]).all() and np.isnan(r.values[:, 4:]).all()
    assert r.finite_range == (1.0, 3.0)


def test_overlapping_tiles_average_and_nan_values_are_skipped():
    coords = np.array([[0, 0], [0, 0], [100, 0]])
    r = node_raster(coords, 100, np.array([1.0, 3.0, np.nan]), (200, 100), pixels_per_tile=1)
    assert r.values[0, 0] == 2.0 and np.isnan(r.values[0, 1])


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="2 values for 3 nodes"):
        node_raster(np.zeros((3, 2)), 10, np.zeros(2), (100, 100))
