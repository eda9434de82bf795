"""Which slide a feature file belongs to: hashes of the slide file, and the check that a
feature file (and the scores cached in it) is used with its own slide.

A feature file records ``slide_id`` (the slide's file name without extension),
``source_hash`` (size, mtime and first MiB: changes when the file is touched, so a rerun
recomputes) and ``content_hash`` (size and first MiB: survives a copy). `check_same_slide`
compares them with a slide before its results are painted, exported or reused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_higt.errors import FeatureError

__all__ = ["source_hash", "content_hash", "check_same_slide"]

_HEAD = 1 << 20


def _hash(p: Path, head: str, nbytes: int) -> str:
    h = hashlib.sha1(head.encode())
    with open(p, "rb") as fh:
        h.update(fh.read(nbytes))
    return h.hexdigest()[:16]


def source_hash(slide_path: str | os.PathLike, nbytes: int = _HEAD) -> str:
    """Hash of a slide file's size, mtime and first ``nbytes`` bytes (up-to-date checks)."""
    st = Path(slide_path).stat()
    return _hash(Path(slide_path), f"{st.st_size}:{st.st_mtime_ns}:", nbytes)


def content_hash(slide_path: str | os.PathLike, nbytes: int = _HEAD) -> str:
    """Hash of a slide file's size and first ``nbytes`` bytes: the same for a copy."""
    return _hash(Path(slide_path), f"{Path(slide_path).stat().st_size}:", nbytes)


def check_same_slide(feature_path: str | os.PathLike, attrs: Mapping[str, Any],
                     slide_path: str | os.PathLike, force: bool = False,
                     override: str | None = "--force") -> str | None:
    """Refuse a feature file made from another slide (or another version of it).

    Parameters
    ----------
    feature_path : the feature file, for messages
    attrs : its root attributes (`FeatureStore.read_attrs`)
    slide_path : the slide it is about to be used with
    force : use it anyway; the mismatch comes back as a note
    override : how the user says ``force`` (named in the message); None when they cannot

    Returns
    -------
    str or None
        None when the file belongs to the slide (or records nothing to compare), else,
        with ``force``, a note saying what differs.

    Raises
    ------
    FeatureError
        The file records another slide id, or a hash that does not match the slide file.
    """
    feature_path, slide_path = Path(feature_path), Path(slide_path)
    sid = str(attrs.get("slide_id") or feature_path.stem)
    problem = None
    if sid != slide_path.stem:
        problem = (f"{feature_path.name} holds the features of slide '{sid}', not of "
                   f"{slide_path.name}")
    else:
        try:
            if "content_hash" in attrs:
                same = attrs["content_hash"] == content_hash(slide_path)
            elif "source_hash" in attrs:
                same = attrs["source_hash"] == source_hash(slide_path)
            else:
                same = True  # a file from another tool: nothing recorded to compare
        except OSError as exc:
            raise FeatureError(f"cannot read the slide {slide_path}: {exc.strerror}") from None
        if not same:
            problem = (f"{feature_path.name} was computed from another version of "
                       f"{slide_path.name} (the slide file differs from the one its features "
                       "were made from)")
    if problem is None:
        return None
    if force:
        return f"{problem}; used anyway"
    fix = "; give the slide's own feature file or recompute it (napari-higt preprocess)"
    raise FeatureError(problem + fix + (f", or pass {override} to use it anyway"
                                        if override else ""))
