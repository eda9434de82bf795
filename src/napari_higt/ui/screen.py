"""What the camera's zoom decides: line widths in screen pixels, detail shown when legible.

napari draws the ``edge_width`` of Vectors and Shapes in data units, so a line 6 µm wide
covers a patch at high zoom and vanishes at low zoom. A layer registered with
`keep_screen_width` gets its width reset to ``px`` screen pixels whenever the camera zooms
(or the layer is rescaled), through the camera's public zoom event.

A layer registered with `show_from_zoom` (a graph's dots and edges) is drawn only while its
tiles are at least ``min_px`` screen pixels wide: below that tens of thousands of dots and
lines are a haze over the tissue and cost every frame (the patch grid raster still shows
every node). It reappears when zoomed in; a layer the user hid stays hidden.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from napari_higt.ui.layers import camera

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["keep_screen_width", "refresh_screen_width", "data_per_screen_px", "SCREEN_PX_KEY",
           "show_from_zoom", "DETAIL_KEY"]

#: ``layer.metadata`` key holding the width in screen pixels a layer's lines keep.
SCREEN_PX_KEY = "higt_screen_px"
#: ``layer.metadata`` key of (tile side in data units, least screen px) of `show_from_zoom`.
DETAIL_KEY = "higt_detail_from"
_HIDDEN_KEY = "higt_hidden_by_zoom"
_WATCHED: weakref.WeakSet = weakref.WeakSet()


def data_per_screen_px(viewer: napari.Viewer, layer) -> float:
    """Data units of ``layer`` spanned by one screen pixel at the current zoom."""
    zoom = float(camera(viewer).zoom)  # screen px per world unit
    scale = abs(float(layer.scale[-1])) or 1.0
    return 1.0 / (zoom * scale) if zoom > 0 else 1.0


def refresh_screen_width(viewer: napari.Viewer, layer) -> None:
    """Reset the width of a registered layer now (e.g. after adding shapes to it)."""
    px = layer.metadata.get(SCREEN_PX_KEY)
    if px is None:
        return
    width = float(px) * data_per_screen_px(viewer, layer)
    # Only on a real change: napari rebuilds a Vectors layer's mesh at every new width.
    if abs(float(layer.edge_width if _scalar(layer.edge_width) else -1.0) - width) > 1e-3 * width:
        layer.edge_width = width


def _scalar(value) -> bool:
    return isinstance(value, (int, float)) or getattr(value, "shape", None) == ()


def refresh_detail(viewer: napari.Viewer, layer) -> None:
    """Show or hide a `show_from_zoom` layer for the current zoom."""
    spec = layer.metadata.get(DETAIL_KEY)
    if spec is None:
        return
    tile, min_px = spec
    legible = tile / data_per_screen_px(viewer, layer) >= min_px
    if not legible and layer.visible:
        layer.metadata[_HIDDEN_KEY] = True
        layer.visible = False
    elif legible and layer.metadata.pop(_HIDDEN_KEY, False) and not layer.visible:
        layer.visible = True


def _update_all(viewer: napari.Viewer) -> None:
    for layer in list(viewer.layers):
        refresh_screen_width(viewer, layer)
        refresh_detail(viewer, layer)


def show_from_zoom(viewer: napari.Viewer, layer, tile: float, min_px: float) -> None:
    """Draw ``layer`` only while a ``tile`` (data units) spans ``min_px`` screen pixels."""
    layer.metadata[DETAIL_KEY] = (float(tile), float(min_px))
    _watch(viewer)
    refresh_detail(viewer, layer)


def keep_screen_width(viewer: napari.Viewer, layer, px: float) -> None:
    """Keep ``layer.edge_width`` at ``px`` screen pixels from now on (any zoom, any scale)."""
    layer.metadata[SCREEN_PX_KEY] = float(px)
    _watch(viewer)
    layer.events.scale.connect(lambda e=None, layer=layer: refresh_screen_width(viewer, layer))
    refresh_screen_width(viewer, layer)


def _watch(viewer: napari.Viewer) -> None:
    """Subscribe once per viewer to its camera's zoom and to new layers."""
    if viewer not in _WATCHED:
        _WATCHED.add(viewer)
        ref = weakref.ref(viewer)

        def on_change(event=None) -> None:
            v = ref()
            if v is not None:
                _update_all(v)

        camera(viewer).events.zoom.connect(on_change)
        viewer.layers.events.inserted.connect(on_change)
