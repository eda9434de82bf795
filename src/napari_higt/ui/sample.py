"""Sample data contributions: the two real slides shipped in ``sample_data/``."""

from __future__ import annotations

from napari_higt.datasets import CMU1, TCGA, sample_path
from napari_higt.ui.reader import read_slide

__all__ = ["cmu1_small_region", "tcga_section"]


def cmu1_small_region() -> list[tuple]:
    """CMU-1 small region: an Aperio SVS with a stored scale (0.499 µm/px)."""
    return read_slide(str(sample_path(CMU1)))


def tcga_section() -> list[tuple]:
    """A whole TCGA tissue section whose file records no scale (opens in pixels)."""
    return read_slide(str(sample_path(TCGA)))
