"""Menu commands acting on the selected slide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari_higt.slide.tissue import tissue_mask
from napari_higt.ui.layers import find_slide_layer, slide_layer_kwargs, slide_of_layer

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["add_tissue_mask"]


def add_tissue_mask(viewer: napari.viewer.Viewer, max_size: int = 2048):
    """Add the tissue mask of the selected slide as a Labels layer (label 1 = tissue).

    Shows a notification, and returns None, when no slide is open or no tissue is found.
    """
    from napari.utils.notifications import show_info, show_warning

    layer = find_slide_layer(viewer)
    if layer is None:
        show_warning("Open a slide first (File > Open, or File > Open Sample > napari HIGT).")
        return None
    slide = slide_of_layer(layer)
    tm = tissue_mask(slide, max_size=max_size)
    if not tm.mask.any():
        show_warning(f"No tissue found on {slide.slide_id}: the slide looks blank.")
    kwargs = slide_layer_kwargs(slide, tm.downsample, higt_role="tissue")
    name = f"{slide.slide_id} tissue"
    if name in viewer.layers:
        viewer.layers.remove(name)
    labels = viewer.add_labels(tm.mask.astype("uint8"), name=name, opacity=0.35, **kwargs)
    show_info(f"Tissue covers {100 * tm.fraction:.1f} % of {slide.slide_id}.")
    return labels
