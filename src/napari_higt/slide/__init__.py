"""Slides: reading pyramids, tissue detection and tiling (no Qt)."""

from napari_higt.slide.reader import SLIDE_EXTENSIONS, Slide, SlideError
from napari_higt.slide.tissue import TissueMask, tissue_mask

__all__ = ["SLIDE_EXTENSIONS", "Slide", "SlideError", "TissueMask", "tissue_mask"]
