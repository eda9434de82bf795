"""Score maps painted on the slide as napari Image layers, each with its named colour bar.

The colours and the opacity ramp are `napari_higt.explain.colours`' (the figures use the
same tables), turned into a napari colormap with alpha: low scores leave the tissue
readable, high scores colour it. A map's colour bar is napari's own, titled by the layer's
name (score, level, slide, normalisation) through the layer-name overlay, and both follow
the layer's visibility. Tissue no tile covers is marked by `add_unscored_strip`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from napari_higt.explain.colours import colormap_table, unscored_rgba
from napari_higt.explain.maps import ScoreMap
from napari_higt.ui.layers import SLIDE_KEY, slide_layer_kwargs

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from napari_higt.slide import Slide
    from napari_higt.slide.tissue import TissueMask

__all__ = ["add_score_maps", "iter_score_maps", "score_layer_data", "score_layer_name", "napari_colormap",
           "add_unscored_strip", "unscored_layer_name"]


@lru_cache(maxsize=16)
def napari_colormap(name: str, diverging: bool):
    """The napari colormap (with its opacity ramp) of `explain.colours` map ``name``."""
    from napari.utils.colormaps import Colormap

    table = colormap_table(name, 64, diverging)
    return Colormap(colors=table, controls=np.linspace(0.0, 1.0, len(table)),
                    name=f"higt-{name}" + ("-diverging" if diverging else ""))


def score_layer_name(smap: ScoreMap, slide: Slide) -> str:
    """The level and score first (napari's layer list elides the middle of a name), then
    the slide, then how its values are scaled; the colour bar's title."""
    scaled = "raw" if smap.raw else "within slide"
    return f"{smap.level} {smap.spec.display_name} · {slide.slide_id} · {scaled}"


def score_layer_data(smap: ScoreMap, slide: Slide, opacity: float = 1.0) -> tuple:
    """The (data, kwargs, "image") tuple of one score map over ``slide``.

    ``opacity`` is the layer's; the colormap's own alpha already ramps with the score.
    """
    kwargs = slide_layer_kwargs(slide, smap.raster.downsample, higt_role="score",
                                score=smap.name, score_level=smap.level)
    kwargs.update(
        name=score_layer_name(smap, slide),
        colormap=napari_colormap(smap.colormap, smap.diverging),
        contrast_limits=smap.clim, opacity=opacity, blending="translucent",
        interpolation2d="nearest",
    )
    return (smap.raster.values, kwargs, "image")


def _follow_visibility(viewer, layer):
    """Colour bar and title on while the map is; the slide's graph dimmed meanwhile.

    A generator: turning a colour bar or a title on for the first time builds its visuals
    (a few hundred ms on a software renderer), so each is one step (`WorkerWidget`).
    """
    from napari_higt.ui.overlays import dim_graph

    def sync(event=None) -> None:
        for overlay in (layer.colorbar, layer.name_overlay):
            if overlay.visible != layer.visible:
                overlay.visible = layer.visible
        dim_graph(viewer, layer.metadata.get(SLIDE_KEY, ""))

    layer.events.visible.connect(sync)
    if layer.visible:
        layer.name_overlay.position = layer.colorbar.position
        layer.colorbar.visible = True
        yield
        layer.name_overlay.visible = True
        yield


def add_score_maps(viewer: napari.viewer.Viewer, maps: list[ScoreMap], slide: Slide,
                   opacity: float = 1.0, visible: set | None = None) -> list:
    """Add (or update) one Image layer per score map, each with its named colour bar.

    Only the maps named in ``visible`` (by score, or by (score, level)) start visible
    (default: the first one), so the slide is not buried under every score at once. A map
    whose layer already exists (a rerun) is updated in place and keeps the user's
    visibility and opacity: removing a napari layer runs a garbage collection.
    """
    return list(dict.fromkeys(iter_score_maps(viewer, maps, slide, opacity, visible)))


def iter_score_maps(viewer: napari.viewer.Viewer, maps: list[ScoreMap], slide: Slide,
                    opacity: float = 1.0, visible: set | None = None):
    """`add_score_maps` one step at a time: yields a layer after each change to it (a
    layer may come more than once)."""
    from napari.layers import Image

    # Colour bars stack downwards, each under its title.
    viewer.canvas.overlay_tiling.top_right = "vertical"
    for i, smap in enumerate(maps):
        data, kwargs, _ = score_layer_data(smap, slide, opacity)
        name = kwargs["name"]
        old = viewer.layers[name] if name in viewer.layers else None
        if isinstance(old, Image) and old.data.ndim == data.ndim and not old.rgb:
            _update(old, data, kwargs)
            yield old
            continue
        if old is not None:
            viewer.layers.remove(old)
        kwargs["visible"] = (i == 0 if visible is None else
                             smap.name in visible or (smap.name, smap.level) in visible)
        layer = viewer.add_image(data, **kwargs)
        yield layer
        for _ in _follow_visibility(viewer, layer):
            yield layer
    if maps:
        from napari_higt.ui.overlays import dim_graph

        dim_graph(viewer, str(slide.path))


def _update(layer, data: np.ndarray, kwargs: dict) -> None:
    """A rerun's map into its existing layer; only what changed (each set redraws)."""
    layer.data = data
    layer.metadata = kwargs["metadata"]
    for key in ("scale", "translate", "contrast_limits"):
        if not np.allclose(np.asarray(getattr(layer, key), float)[-2:],
                           np.asarray(kwargs[key], float)[-2:]):
            setattr(layer, key, kwargs[key])
    if layer.colormap.name != kwargs["colormap"].name:
        layer.colormap = kwargs["colormap"]
    if tuple(str(u) for u in layer.units) != tuple(str(u) for u in kwargs["units"]):
        layer.units = kwargs["units"]


def unscored_layer_name(slide: Slide) -> str:
    return f"tissue not scored (slide edge) · {slide.slide_id}"


def add_unscored_strip(viewer: napari.viewer.Viewer, strip: TissueMask | None,
                       slide: Slide):
    """Mark the tissue no tile covers (`slide.coverage.edge_strip_tissue`) with stripes.

    Returns the layer, or None when the strip holds no tissue (nothing is added then).
    """
    name = unscored_layer_name(slide)
    if strip is None or not strip.mask.any():
        return None
    rgba = unscored_rgba(strip.mask)
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = rgba
        return layer
    kwargs = slide_layer_kwargs(slide, strip.downsample, higt_role="unscored")
    return viewer.add_image(rgba, rgb=True, name=name, blending="translucent",
                            interpolation2d="nearest", **kwargs)
