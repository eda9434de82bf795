"""napari-higt: HIGT hierarchical graph-transformer for whole-slide images, in napari.

The core (``slide``, ``features``, ``graph``, ``models``, ``training``, ``explain``,
``export``) imports no Qt; ``ui`` holds the napari layer builders and dock widgets.
"""

from __future__ import annotations

__version__ = "0.1.0"

from napari_higt.slide.reader import Slide, SlideError

__all__ = ["Slide", "SlideError", "__version__"]
