"""Argument types shared by the subcommands: every value is checked while the command line
is parsed, before any heavy import or work, and a bad one ends in one line naming the option.

Each function is an ``argparse`` ``type=``: it returns the parsed value or raises
``argparse.ArgumentTypeError`` with what is allowed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from napari_higt.slide.reader import MPP_RANGE

__all__ = ["number", "mpp", "fraction", "opacity", "positive_int", "fold_count", "region",
           "existing_file", "existing_dir", "existing_path", "formats"]

Bad = argparse.ArgumentTypeError


def number(cast: type = float, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False,
           unit: str = "") -> Callable[[str], float]:
    """A ``type=`` parsing ``cast`` (int or float) within ``[low, high]``.

    ``low_open`` / ``high_open`` exclude the bound itself. ``unit`` is shown in messages.
    """
    kind = "a whole number" if cast is int else "a number"
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    rule = f"{kind} {lo}{' and ' if lo and hi else ''}{hi}".strip() + (f" {unit}" if unit else "")

    def parse(text: str) -> float:
        try:
            v = cast(text)
        except ValueError:
            raise Bad(f"must be {rule}, got {text!r}") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise Bad(f"must be {rule}, got {text!r}")
        if low is not None and (v < low or (low_open and v == low)):
            raise Bad(f"must be {rule}, got {text!r}")
        if high is not None and (v > high or (high_open and v == high)):
            raise Bad(f"must be {rule}, got {text!r}")
        return v

    parse.__name__ = cast.__name__  # argparse names the type in some messages
    return parse


#: Pixel size in µm per pixel, within what a microscope (or a thumbnail) can give.
mpp = number(float, *MPP_RANGE, unit="µm per pixel (a microscope slide scanned at x40 has "
                                     "about 0.25, at x20 about 0.5)")
#: A fraction in [0, 1) (tissue thresholds).
fraction = number(float, 0.0, 1.0, high_open=True)
#: Overlay opacity in [0, 1].
opacity = number(float, 0.0, 1.0)
positive_int = number(int, 1)
#: Number of cross-validation folds.
fold_count = number(int, 2)


def region(text: str) -> tuple[int, int, int, int]:
    """``x0,y0,x1,y1`` in level-0 pixels, with ``x0 < x1`` and ``y0 < y1``."""
    try:
        v = tuple(int(float(p)) for p in text.split(","))
    except ValueError:
        v = ()
    if len(v) != 4:
        raise Bad(f"must be x0,y0,x1,y1 (four whole numbers of level-0 px), got {text!r}")
    x0, y0, x1, y1 = v
    if x1 <= x0 or y1 <= y0 or min(v) < 0:
        raise Bad(f"must be x0,y0,x1,y1 with 0 <= x0 < x1 and 0 <= y0 < y1, got {text!r}")
    return v  # type: ignore[return-value]


def existing_path(text: str) -> Path:
    """A path that exists (file or folder)."""
    p = Path(text).expanduser()
    if not p.exists():
        raise Bad(f"{text}: no such file or folder")
    return p


def existing_file(text: str) -> Path:
    """A path to an existing file."""
    p = Path(text).expanduser()
    if p.is_dir():
        raise Bad(f"{text} is a folder, not a file")
    if not p.is_file():
        raise Bad(f"{text}: no such file")
    return p


def existing_dir(text: str) -> Path:
    """A path to an existing folder."""
    p = Path(text).expanduser()
    if not p.is_dir():
        raise Bad(f"{text}: no such folder" + (" (it is a file)" if p.is_file() else ""))
    return p


def formats(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """A comma list of ``allowed`` names (case-insensitive), at least one."""
    def parse(text: str) -> list[str]:
        out = [f.strip().lower() for f in text.split(",") if f.strip()]
        bad = [f for f in out if f not in allowed]
        if bad or not out:
            raise Bad(f"must be a comma list of {', '.join(allowed)}, got {text!r}")
        return out

    parse.__name__ = "formats"
    return parse
