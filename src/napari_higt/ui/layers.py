"""Placing core objects on the napari canvas: scales, translations, slide lookup.

Every layer napari-higt adds for a slide records ``higt_slide`` (the slide's path) and
``higt_px_scale`` (its pixel size in level-0 pixels) in ``layer.metadata``, so that stating
a slide's µm scale later switches all of its layers to µm together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_higt.slide.reader import Slide

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "SLIDE_KEY",
    "camera",
    "features_folder",
    "level_transform",
    "slide_layer_kwargs",
    "slide_of_layer",
    "find_slide_layer",
    "apply_slide_scale",
    "release_slide",
]

SLIDE_KEY = "higt_slide"
PX_SCALE_KEY = "higt_px_scale"
#: Level-0 (x, y) of the corner of a layer that covers one patch (entity overlays).
ORIGIN_KEY = "higt_patch_origin"

#: Open slides by path; layers hold the path (JSON-able metadata), this holds the handle.
_OPEN_SLIDES: dict[str, Slide] = {}


def register_slide(slide: Slide) -> None:
    """Keep ``slide`` open for the layers that show it."""
    _OPEN_SLIDES[str(slide.path)] = slide


def release_slide(path: str) -> None:
    """Close a slide that no layer shows any more (its file handle and tile cache)."""
    slide = _OPEN_SLIDES.pop(str(path), None)
    if slide is not None:
        slide.close()


def unit_scale(slide: Slide) -> tuple[float, float]:
    """(y, x) world units per level-0 pixel: µm when the scale is known, else 1 (pixels)."""
    if slide.mpp is None:
        return (1.0, 1.0)
    return (slide.mpp[1], slide.mpp[0])


def level_transform(
    slide: Slide, downsample: float = 1.0
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``scale`` and ``translate`` of a raster whose pixel spans ``downsample`` level-0 px.

    napari centres pixel 0 on the layer origin; a coarse raster is shifted by half its pixel
    minus half a level-0 pixel so both cover the same tissue.
    """
    uy, ux = unit_scale(slide)
    scale = (uy * downsample, ux * downsample)
    translate = (uy * (downsample - 1) / 2, ux * (downsample - 1) / 2)
    return scale, translate


def slide_layer_kwargs(slide: Slide, downsample: float = 1.0, **metadata) -> dict:
    """Keyword arguments placing a raster of ``slide`` (``downsample`` px per pixel)."""
    register_slide(slide)
    scale, translate = level_transform(slide, downsample)
    meta = {SLIDE_KEY: str(slide.path), PX_SCALE_KEY: float(downsample), **metadata}
    return {"scale": scale, "translate": translate, "metadata": meta, "units": units(slide)}


def features_folder(text: str, slide: Slide) -> Path:
    """The features folder a user typed, else ``<slide folder>/features``."""
    text = text.strip()
    return Path(text).expanduser() if text else slide.path.parent / "features"


def camera(viewer: napari.Viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, which deprecates
    ``viewer.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def units(slide: Slide) -> tuple[str, str]:
    """Layer units (napari >= 0.6 draws the scale bar from them)."""
    return ("um", "um") if slide.mpp is not None else ("pixel", "pixel")


def slide_of_layer(layer) -> Slide | None:
    """The open `Slide` a layer shows; None for ``None`` and for layers not from a slide."""
    path = getattr(layer, "metadata", {}).get(SLIDE_KEY)
    return _OPEN_SLIDES.get(path) if path else None


def find_slide_layer(viewer: napari.Viewer):
    """The slide image layer to act on: the selected one if it is a slide, else the top one.

    Returns None when no slide is open.
    """
    active = viewer.layers.selection.active
    candidates = [active] if active is not None else []
    candidates += list(reversed(viewer.layers))
    for layer in candidates:
        if layer is None:
            continue
        if slide_of_layer(layer) is not None and layer.metadata.get("higt_role") == "slide":
            return layer
    for layer in candidates:  # an overlay of a slide leads to the slide itself
        slide = slide_of_layer(layer)
        if slide is not None:
            for other in viewer.layers:
                if other.metadata.get(SLIDE_KEY) == str(slide.path) and \
                        other.metadata.get("higt_role") == "slide":
                    return other
    return None


def apply_slide_scale(viewer: napari.Viewer, slide: Slide) -> int:
    """Re-place every layer of ``slide`` after its µm scale changed; returns the count."""
    count = 0
    for layer in viewer.layers:
        if layer.metadata.get(SLIDE_KEY) != str(slide.path):
            continue
        scale, translate = level_transform(slide, layer.metadata.get(PX_SCALE_KEY, 1.0))
        if ORIGIN_KEY in layer.metadata:  # a raster of one patch sits at its patch's corner
            uy, ux = unit_scale(slide)
            x0, y0 = layer.metadata[ORIGIN_KEY]
            translate = (translate[0] + y0 * uy, translate[1] + x0 * ux)
        ndim_extra = layer.ndim - 2
        layer.scale = (1.0,) * ndim_extra + tuple(scale)
        layer.translate = (0.0,) * ndim_extra + tuple(translate)
        layer.units = ("pixel",) * ndim_extra + units(slide)
        count += 1
    viewer.canvas.overlays.scale_bar.visible = True
    return count


class ShownLevel:
    """A pyramid level as napari draws it: a read that fails draws white instead of raising.

    napari slices layers while drawing, where an exception becomes a traceback in the
    viewer. A slide whose file goes away, is truncated or is closed while on screen
    therefore shows blank tiles, and one warning per slide says what happened and what to
    do. The core's `SlideLevelArray` keeps raising (pipelines must not paint over errors).
    """

    def __init__(self, level, warned: set):
        self._level = level
        self._warned = warned
        self.shape, self.dtype, self.ndim = level.shape, level.dtype, level.ndim

    def __getattr__(self, name):  # chunks, size, nbytes, level, to_dask ...
        return getattr(self._level, name)

    def __len__(self) -> int:
        return len(self._level)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:, :, :]
        return out.astype(dtype) if dtype is not None else out

    def __getitem__(self, key) -> np.ndarray:
        from napari_higt.slide.reader import SlideError

        try:
            return self._level[key]
        except SlideError as exc:
            if not self._warned:
                self._warned.add(str(exc))
                from napari.utils.notifications import show_warning

                show_warning(f"{exc}. The view shows blank tiles there; close the layer and "
                             "open the slide again once the file is back.")
            # The shape the read would have had, without allocating the level.
            shape = np.lib.stride_tricks.as_strided(
                np.zeros(1, np.uint8), shape=self.shape, strides=(0,) * len(self.shape))[key].shape
            return np.full(shape, 255, np.uint8)


def slide_image_layer_data(slide: Slide) -> tuple:
    """The (data, kwargs, "image") tuple napari needs to show ``slide`` as a pyramid."""
    kwargs = slide_layer_kwargs(slide, 1.0, higt_role="slide", slide_info=slide.metadata())
    kwargs.update(name=slide.slide_id, rgb=True, multiscale=True)
    warned: set = set()  # one warning per slide, shared by its levels
    return ([ShownLevel(level, warned) for level in slide.pyramid()], kwargs, "image")
