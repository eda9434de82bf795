"""Glyphs drawn ahead of need through the canvas's text overlay, which is left as it was."""

import numpy as np

from napari_higt.ui.glyphs import warm_glyphs


def _state(overlay) -> dict:
    return {"visible": overlay.visible, "text": overlay.text,
            "color": np.asarray(overlay.color, dtype=object).tolist(), "box": overlay.box}


def test_warm_glyphs_draws_each_batch_then_restores(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    overlay = viewer.canvas.overlays["text"]
    overlay.text = "kept"  # a hidden overlay with the user's text and colour
    overlay.color = (1.0, 0.0, 0.0, 1.0)
    before = _state(overlay)
    seen = []
    overlay.events.text.connect(lambda e: seen.append(overlay.text))
    assert warm_glyphs(viewer, "abcdefg", per_turn=3)
    assert overlay.visible and overlay.box is False
    assert np.asarray(overlay.color)[3] == 0.0  # transparent: nothing shows on the canvas
    qtbot.waitUntil(lambda: not overlay.visible, timeout=5_000)
    assert ["abc", "def", "g"] == [t for t in seen if t not in ("", "kept")]
    assert _state(overlay) == before


def test_warm_glyphs_leaves_a_shown_or_rewritten_overlay(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    overlay = viewer.canvas.overlays["text"]
    overlay.text, overlay.visible = "the user's note", True
    assert not warm_glyphs(viewer, "abc")
    assert overlay.visible and overlay.text == "the user's note"

    overlay.visible = False
    assert warm_glyphs(viewer, "abcdefghij", per_turn=1)
    qtbot.waitUntil(lambda: overlay.text == "b", timeout=5_000)
    overlay.text = "written meanwhile"  # the user takes the overlay over: warming stops
    qtbot.wait(300)
    assert overlay.text == "written meanwhile"
