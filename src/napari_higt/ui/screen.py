"""What the camera's zoom decides: line widths in screen pixels, detail shown when legible.

napari draws the ``edge_width`` of Vectors and Shapes in data units, so a line 6 µm wide
covers a patch at high zoom and vanishes at low zoom. A layer registered with
`keep_screen_width` gets its width reset to ``px`` screen pixels whenever the camera zooms
(or the layer is rescaled), through the camera's public zoom event.

A layer registered with `show_from_zoom` (a graph's dots and edges) is drawn only while its
tiles are at least ``min_px`` screen pixels wide: below that tens of thousands of dots and
lines are a haze over the tissue and cost every frame (the patch grid raster still shows
every node). It reappears when zoomed in; a layer the user hid stays hidden.

A layer registered with `cull_to_view` holds only the items near the view: its owner gives
each item's position and a function that shows a subset. When the camera leaves the area
last kept, the area is recentred on the view and grown by ``margin`` views on every side,
so a drag re-selects once per view width travelled, not at every frame, and a frame draws
about (1 + 2 margin)² views' worth of lines and dots instead of the whole slide's (zooming
in by more than 2x re-selects too, so the kept area stays a few views).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from napari_higt.ui.layers import camera

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["keep_screen_width", "refresh_screen_width", "data_per_screen_px", "SCREEN_PX_KEY",
           "show_from_zoom", "DETAIL_KEY", "cull_to_view", "refresh_cull", "view_rect",
           "near_view", "culled_mask", "CULL_KEY"]

#: ``layer.metadata`` key holding the width in screen pixels a layer's lines keep.
SCREEN_PX_KEY = "higt_screen_px"
#: ``layer.metadata`` key of (tile side in data units, least screen px) of `show_from_zoom`.
DETAIL_KEY = "higt_detail_from"
_HIDDEN_KEY = "higt_hidden_by_zoom"
#: ``layer.metadata`` key of a `cull_to_view` registration (a `_Cull`).
CULL_KEY = "higt_cull"
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


def view_rect(viewer: napari.Viewer, layer) -> tuple[float, float, float, float]:
    """(row0, col0, row1, col1) of the canvas's view in ``layer``'s data coordinates."""
    cam = camera(viewer)
    zoom = float(cam.zoom) or 1.0
    h, w = viewer.canvas.size
    cy, cx = (float(c) for c in cam.center[-2:])
    sy, sx = (abs(float(v)) or 1.0 for v in layer.scale[-2:])
    ty, tx = (float(v) for v in layer.translate[-2:])
    hy, hx = h / 2 / zoom, w / 2 / zoom
    return ((cy - hy - ty) / sy, (cx - hx - tx) / sx, (cy + hy - ty) / sy, (cx + hx - tx) / sx)


class _Cull:
    """What `cull_to_view` keeps for a layer: item positions, the subset setter, the area."""

    def __init__(self, positions: np.ndarray, show: Callable[[np.ndarray], None],
                 margin: float, shown: np.ndarray | None = None):
        self.positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
        self.show = show
        self.margin = float(margin)
        self.kept: tuple[float, float, float, float] | None = None
        self.mask = (np.ones(len(self.positions), bool) if shown is None
                     else np.asarray(shown, bool))

    def update(self, view: tuple[float, float, float, float], force: bool = False) -> bool:
        r0, c0, r1, c1 = view
        k = self.kept
        grow = (1 + 2 * self.margin) ** 2
        if not force and k is not None and k[0] <= r0 and k[1] <= c0 and r1 <= k[2] and \
                c1 <= k[3] and (k[2] - k[0]) * (k[3] - k[1]) <= 4 * grow * (r1 - r0) * (c1 - c0):
            return False  # inside the kept area, and zoomed in less than 2x since
        dr, dc = (r1 - r0) * self.margin, (c1 - c0) * self.margin
        self.kept = (r0 - dr, c0 - dc, r1 + dr, c1 + dc)
        p = self.positions
        mask = ((p[:, 0] >= self.kept[0]) & (p[:, 0] <= self.kept[2])
                & (p[:, 1] >= self.kept[1]) & (p[:, 1] <= self.kept[3]))
        if force or not np.array_equal(mask, self.mask):
            self.mask = mask
            self.show(mask)
        return True


def cull_to_view(viewer: napari.Viewer, layer, positions: np.ndarray,
                 show: Callable[[np.ndarray], None], margin: float = 1.0,
                 shown: np.ndarray | None = None) -> None:
    """Keep only the items of ``layer`` near the view drawn from now on.

    Parameters
    ----------
    positions : (N, 2) array
        Each item's (row, col) in the layer's data coordinates.
    show : callable
        ``show(mask)`` makes the layer draw the items where the boolean ``mask`` is True.
    margin : float
        Views kept on each side of the view.
    shown : (N,) bool array, optional
        The items the layer was made with (`near_view`), when not all of them.
    """
    layer.metadata[CULL_KEY] = _Cull(positions, show, margin, shown)
    _watch(viewer)
    # Shown again (its eye, or the zoom) after the camera moved while it was hidden.
    ref = weakref.ref(viewer)  # the viewer holds the layer: no cycle back to it
    layer.events.visible.connect(
        lambda e=None, layer=layer: ref() is not None and refresh_cull(ref(), layer))
    refresh_cull(viewer, layer)


def near_view(viewer: napari.Viewer, placed, positions: np.ndarray, tile: float,
              min_px: float, margin: float = 1.0) -> np.ndarray:
    """Which items a `show_from_zoom` + `cull_to_view` layer placed like ``placed`` (an
    object with the layer's ``scale`` and ``translate``) will draw at the current view:
    none while a ``tile`` spans fewer than ``min_px`` screen pixels. Making a layer with
    only those spares building the visuals of items that are not drawn."""
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if tile / data_per_screen_px(viewer, placed) < min_px:
        return np.zeros(len(positions), bool)
    cull = _Cull(positions, lambda mask: None, margin)
    cull.update(view_rect(viewer, placed), force=True)
    return cull.mask


def refresh_cull(viewer: napari.Viewer, layer) -> None:
    """Re-select a `cull_to_view` layer's items for the current view."""
    cull = layer.metadata.get(CULL_KEY)
    if cull is None:
        return
    if not layer.visible:
        cull.kept = None  # a hidden layer draws nothing: select again when it shows
        return
    cull.update(view_rect(viewer, layer))


def culled_mask(layer) -> np.ndarray | None:
    """The items a `cull_to_view` layer holds now (None: not registered, all of them)."""
    cull = layer.metadata.get(CULL_KEY)
    return None if cull is None else cull.mask


def _update_all(viewer: napari.Viewer) -> None:
    for layer in list(viewer.layers):
        refresh_screen_width(viewer, layer)
        refresh_detail(viewer, layer)
        refresh_cull(viewer, layer)


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
        camera(viewer).events.center.connect(on_change)
        viewer.layers.events.inserted.connect(on_change)
