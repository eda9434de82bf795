"""Sample data contributions: the two real slides shipped in ``sample_data/``."""

from __future__ import annotations

from pathlib import Path

from napari_higt.ui.reader import read_slide

__all__ = ["sample_path", "cmu1_small_region", "tcga_section"]

CMU1 = "cmu-1-small-region.svs"
TCGA = "tcga-cr-7395-01a-01-ts1.svs"


def sample_path(name: str = CMU1) -> Path:
    """Path of a shipped sample slide (the repository's ``sample_data/``).

    Raises
    ------
    FileNotFoundError
        When the package runs outside its source tree without the sample folder.
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "sample_data" / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"sample slide {name} not found; it ships in the repository's sample_data/ folder"
    )


def cmu1_small_region() -> list[tuple]:
    """CMU-1 small region: an Aperio SVS with a stored scale (0.499 µm/px)."""
    return read_slide(str(sample_path(CMU1)))


def tcga_section() -> list[tuple]:
    """A whole TCGA tissue section whose file records no scale (opens in pixels)."""
    return read_slide(str(sample_path(TCGA)))
