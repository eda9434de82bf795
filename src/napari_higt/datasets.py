"""The real sample data shipped in the repository's ``sample_data/`` (see its SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["sample_path", "CMU1", "TCGA"]

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
