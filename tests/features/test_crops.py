"""Patches centred on point annotations (the nuclei of CRCHistoPhenotypes)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_higt.features.crops import crop_at_points


def _marked(h=100, w=120, marks=((30, 40), (5, 90), (119, 99))):
    img = np.zeros((h, w, 3), np.uint8)
    for i, (x, y) in enumerate(marks):
        img[y, x] = (255, 10 * i, 0)
    return img, np.array(marks)


@pytest.mark.parametrize("size", [64, 33])
def test_a_nucleus_lands_on_the_centre_pixel(size):
    img, xy = _marked()
    patches, kept = crop_at_points(img, xy, size)
    assert patches.shape == (3, size, size, 3) and list(kept) == [0, 1, 2]
    for i, p in enumerate(patches):
        c = size // 2
        assert tuple(p[c, c]) == (255, 10 * i, 0)  # the marked pixel, also near the border


def test_one_based_coordinates_and_skipping_the_border():
    img, xy = _marked()
    patches, kept = crop_at_points(img, xy + 1, 16, one_based=True, edge="skip")
    assert list(kept) == [0]  # the other two reach over the border
    assert tuple(patches[0, 8, 8]) == (255, 0, 0)
    outside, kept = crop_at_points(img, np.array([[500, 5], [3, 3]]), 8)
    assert list(kept) == [1] and outside.shape == (1, 8, 8, 3)
    with pytest.raises(ValueError, match="size"):
        crop_at_points(img, xy, 0)
