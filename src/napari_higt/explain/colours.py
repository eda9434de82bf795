"""How scores look over H&E: colormaps outside the stain's hues, opacity rising with the score.

Haematoxylin stains nuclei blue-purple and eosin stains stroma and cytoplasm pink, so a
heatmap in purple, magenta or pink (inferno's dark end, PiYG's pink end) melts into the
tissue. The maps here keep to teal, green, yellow and amber (hues 40-190 degrees; the stains
lie around 270-350), and each colour carries an alpha that rises with the score: a
low-score tile stays readable tissue under a faint tint, a high-score tile is clearly
coloured. The viewer builds its napari colormaps from `colormap_table` and the exported
figures paint `score_rgba`, so the canvas and the figure show the same colours.

A sequential map ramps its alpha with the value; a diverging map (signed scores, 0 = no
effect) ramps it with the distance from its centre, so "no effect" is nearly transparent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ColourRamp", "RAMPS", "ALPHA_RANGE", "ALPHA_GAMMA", "colormap_table", "score_rgba",
           "UNSCORED_RGBA", "unscored_rgba", "hex_rgb"]

#: Opacity at the lowest and the highest score (the centre and the ends of a diverging map).
ALPHA_RANGE: tuple[float, float] = (0.06, 0.85)
#: Exponent of the opacity ramp: above 1, the middle of the range stays see-through (a
#: percentile map puts half the tissue above 50).
ALPHA_GAMMA = 1.5
#: Colour of tissue that no tile covers (the slide's border strips): slate grey.
UNSCORED_RGBA: tuple[int, int, int, int] = (70, 84, 96, 150)


@dataclass(frozen=True)
class ColourRamp:
    """A colormap as (position, hex colour) stops on [0, 1]."""

    name: str
    stops: tuple[tuple[float, str], ...]
    diverging: bool = False


#: The maps scores are painted with, by the names `explain.registry` gives them.
RAMPS: dict[str, ColourRamp] = {r.name: r for r in (
    # Dark teal -> teal -> green -> yellow: viridis' useful part, without its purple end.
    ColourRamp("teal_yellow", ((0.0, "#0d4f5c"), (0.33, "#0f8f8a"), (0.66, "#59c25a"),
                               (1.0, "#f5e61b"))),
    # Teal (less than usual) -> grey (as usual, transparent) -> amber (more than usual).
    ColourRamp("teal_amber", ((0.0, "#00838f"), (0.25, "#26c6da"), (0.5, "#d9d9d9"),
                              (0.75, "#ffd54f"), (1.0, "#ff8f00")), diverging=True),
)}


def hex_rgb(colour: str) -> tuple[float, float, float]:
    """``"#rrggbb"`` -> (r, g, b) in [0, 1]."""
    c = colour.lstrip("#")
    return tuple(int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


def _alpha(pos: np.ndarray, diverging: bool) -> np.ndarray:
    lo, hi = ALPHA_RANGE
    strength = np.abs(2.0 * pos - 1.0) if diverging else pos
    return lo + (hi - lo) * strength ** ALPHA_GAMMA


def colormap_table(name: str, n: int = 256, diverging: bool | None = None) -> np.ndarray:
    """The (n, 4) RGBA table, in [0, 1], of colormap ``name`` with its opacity ramp.

    Parameters
    ----------
    name : a key of `RAMPS`, or any matplotlib colormap name (given the same ramp)
    n : number of entries, from the low to the high end of the contrast limits
    diverging : ramp the opacity from the centre out; default: the ramp's own setting
        (False for matplotlib maps)
    """
    pos = np.linspace(0.0, 1.0, n)
    ramp = RAMPS.get(name)
    if ramp is not None:
        at = np.array([p for p, _ in ramp.stops])
        rgb = np.array([hex_rgb(c) for _, c in ramp.stops])
        table = np.stack([np.interp(pos, at, rgb[:, k]) for k in range(3)], axis=1)
        div = ramp.diverging if diverging is None else diverging
    else:
        import matplotlib

        table = matplotlib.colormaps[name](pos)[:, :3]
        div = bool(diverging)
    return np.concatenate([table, _alpha(pos, div)[:, None]], axis=1)


def score_rgba(values: np.ndarray, clim: tuple[float, float], name: str,
               opacity: float = 1.0, diverging: bool | None = None) -> np.ndarray:
    """Paint ``values`` with colormap ``name`` between ``clim``: (..., 4) uint8 RGBA.

    NaN (no node there) is fully transparent; ``opacity`` scales the whole ramp (1 = as
    the viewer shows it with its layer opacity at 1).
    """
    table = colormap_table(name, 256, diverging)
    v = np.asarray(values, dtype=np.float64)
    lo, hi = float(clim[0]), float(clim[1])
    t = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    finite = np.isfinite(v)
    idx = np.rint(np.where(finite, t, 0.0) * 255).astype(np.int64)
    out = table[idx]
    out[..., 3] *= float(np.clip(opacity, 0.0, 1.0))
    out[~finite] = 0.0
    return np.rint(out * 255).astype(np.uint8)


def unscored_rgba(mask: np.ndarray, stripe: int = 4) -> np.ndarray:
    """Diagonal stripes in `UNSCORED_RGBA` over the True pixels of ``mask``: (h, w, 4) uint8.

    Stripes rather than a flat tint, so the strip reads as "marked" and the tissue between
    the stripes stays visible.
    """
    mask = np.asarray(mask, bool)
    yy, xx = np.indices(mask.shape)
    on = mask & (((yy + xx) % stripe) < max(1, stripe // 2))
    out = np.zeros(mask.shape + (4,), np.uint8)
    out[on] = UNSCORED_RGBA
    return out
