"""Shared fixtures: the real sample slides and small slides made from real tissue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def cmu1_path() -> Path:
    """Aperio SVS, one level, 0.499 µm/px (real tissue)."""
    return SAMPLE / "cmu-1-small-region.svs"


@pytest.fixture(scope="session")
def tcga_path() -> Path:
    """Whole TCGA section, two levels, no scale in the file."""
    return SAMPLE / "tcga-cr-7395-01a-01-ts1.svs"


@pytest.fixture(scope="session")
def tissue_rgb(cmu1_path) -> np.ndarray:
    """A 1024 x 1024 crop of real H&E tissue from the CMU-1 sample."""
    from napari_higt.slide import Slide

    with Slide(cmu1_path) as s:
        return s.read_region((740, 1900), 0, (1024, 1024))


@pytest.fixture(scope="session")
def tiled_tiff(tmp_path_factory, tissue_rgb) -> Path:
    """A 3-level pyramidal tiled TIFF (2048 x 1536 px, 0.5 µm/px) of real tissue."""
    from napari_higt.slide.writer import tile_to_size, write_pyramidal_tiff

    path = tmp_path_factory.mktemp("slides") / "tissue.tif"
    rgb = tile_to_size(tissue_rgb, (1536, 2048))
    return write_pyramidal_tiff(path, rgb, mpp=0.5, tile=256, min_size=512)
