"""Line widths in screen pixels: outlines and edges that stay thin at every zoom.

napari draws the ``edge_width`` of Vectors and Shapes in data units, so a line 6 µm wide
covers a patch at high zoom and vanishes at low zoom. A layer registered with
`keep_screen_width` gets its width reset to ``px`` screen pixels whenever the camera zooms
(or the layer is rescaled), through the camera's public zoom event.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from napari_higt.ui.layers import camera

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["keep_screen_width", "refresh_screen_width", "data_per_screen_px", "SCREEN_PX_KEY"]

#: ``layer.metadata`` key holding the width in screen pixels a layer's lines keep.
SCREEN_PX_KEY = "higt_screen_px"
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
    return getattr(value, "ndim", 0) == 0


def _update_all(viewer: napari.Viewer) -> None:
    for layer in list(viewer.layers):
        refresh_screen_width(viewer, layer)


def keep_screen_width(viewer: napari.Viewer, layer, px: float) -> None:
    """Keep ``layer.edge_width`` at ``px`` screen pixels from now on (any zoom, any scale)."""
    layer.metadata[SCREEN_PX_KEY] = float(px)
    if viewer not in _WATCHED:
        _WATCHED.add(viewer)
        ref = weakref.ref(viewer)

        def on_change(event=None) -> None:
            v = ref()
            if v is not None:
                _update_all(v)

        camera(viewer).events.zoom.connect(on_change)
        viewer.layers.events.inserted.connect(on_change)
    layer.events.scale.connect(lambda e=None, layer=layer: refresh_screen_width(viewer, layer))
    refresh_screen_width(viewer, layer)
