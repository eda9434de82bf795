"""Score colours over H&E: outside the stains' hues, opacity rising with the score."""

import colorsys

import numpy as np
import pytest

from napari_higt.explain.colours import RAMPS, colormap_table, score_rgba, unscored_rgba
from napari_higt.explain.registry import SCORES


def _hue_deg(rgb) -> float:
    return 360.0 * colorsys.rgb_to_hsv(*rgb)[0]


@pytest.mark.parametrize("name", sorted({s.colormap for s in SCORES.values()}))
def test_registry_maps_avoid_haematoxylin_and_eosin_hues(name):
    """Haematoxylin is blue-purple, eosin pink (hues ~250-350 degrees): no coloured entry of
    a score map may sit there, or a heatmap tile would read as stain."""
    assert name in RAMPS  # the project's own maps, not inferno / PiYG
    table = colormap_table(name)
    for rgb in table[:, :3]:
        sat = colorsys.rgb_to_hsv(*rgb)[1]
        if sat > 0.2:  # greys (a diverging map's centre) carry no hue
            assert not 245 <= _hue_deg(rgb) <= 355, (name, rgb)


def test_opacity_rises_with_the_score():
    seq = colormap_table("teal_yellow")[:, 3]
    assert np.all(np.diff(seq) >= 0) and seq[0] < 0.1 and seq[-1] > 0.8
    div = colormap_table("teal_amber")[:, 3]
    centre = len(div) // 2
    assert div[centre] < 0.1 and div[0] > 0.8 and div[-1] > 0.8  # 0 = no effect: see-through


def test_score_rgba_paints_the_table_and_leaves_nan_clear():
    v = np.array([[0.0, 50.0, 100.0, np.nan]])
    rgba = score_rgba(v, (0.0, 100.0), "teal_yellow")
    table = colormap_table("teal_yellow")
    np.testing.assert_allclose(rgba[0, 0] / 255, table[0], atol=1 / 255)
    np.testing.assert_allclose(rgba[0, 2] / 255, table[-1], atol=1 / 255)
    assert rgba[0, 3, 3] == 0  # no node there
    half = score_rgba(v, (0.0, 100.0), "teal_yellow", opacity=0.5)
    assert abs(int(half[0, 2, 3]) - rgba[0, 2, 3] // 2) <= 1


def test_unscored_stripes_mark_only_the_mask():
    mask = np.zeros((8, 8), bool)
    mask[:, 6:] = True
    rgba = unscored_rgba(mask)
    assert (rgba[~mask, 3] == 0).all()
    on = rgba[mask, 3] > 0
    assert 0.3 < on.mean() < 0.7  # stripes: the tissue between them stays visible
