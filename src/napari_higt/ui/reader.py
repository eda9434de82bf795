"""napari reader contribution for whole-slide images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari_higt.errors import SlideError
from napari_higt.slide.reader import SLIDE_EXTENSIONS, MPP_HELP, Slide
from napari_higt.ui.layers import slide_image_layer_data

__all__ = ["get_reader", "read_slide"]


def get_reader(path: str | list[str]) -> Callable | None:
    """Return a reader for ``path`` when OpenSlide can open it, else None.

    Returning None (rather than raising) lets napari try other readers, as its reader
    convention asks; for a file with a slide extension that OpenSlide refuses, a
    notification says why (corrupt, truncated, unsupported) so the user is not left guessing.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.suffix.lower() not in SLIDE_EXTENSIONS or not p.is_file():
        return None
    try:
        Slide(p).close()
    except SlideError as exc:
        from napari.utils.notifications import show_warning

        show_warning(f"napari-higt cannot open this slide: {exc}")
        return None
    return read_slide


def read_slide(path: str | list[str], mpp: float | None = None) -> list[tuple]:
    """Open a slide as a multiscale RGB layer in µm (or pixels when its scale is unknown).

    A notification says how to state the scale of a slide that does not record it.
    """
    from napari.utils.notifications import show_warning

    if isinstance(path, (list, tuple)):
        path = path[0]
    slide = Slide(path, mpp=mpp)
    data = slide_image_layer_data(slide)
    _show_scale_bar()
    if slide.mpp is None:
        show_warning(
            f"{slide.path.name} does not record its pixel size; it is shown in pixels. "
            f"To work in µm, {MPP_HELP}."
        )
    return [data]


def _show_scale_bar() -> None:
    """Turn the scale bar on; it reads µm or pixels from the layers' units."""
    import napari

    viewer = napari.current_viewer()
    if viewer is not None:
        viewer.canvas.overlays.scale_bar.visible = True
