"""Whole-slide images over OpenSlide, with a lazy multiscale pyramid for napari.

`Slide` wraps ``openslide.OpenSlide`` and adds what a viewer and a tiling pipeline need:
the physical scale (µm per pixel) from the file or from the user, RGB reads composited on
white, a bounded LRU cache of decoded tiles shared by every reader thread, and
`Slide.pyramid`, a list of lazy numpy-like arrays (finest first) that read only the file
tiles in view (each convertible to a tile-chunked dask array).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_higt.errors import SlideError
from napari_higt.slide.pyramid import PyramidLevel, SlideLevelArray, TileCache, tile_pool

__all__ = ["Slide", "SlideError", "SLIDE_EXTENSIONS", "MPP_HELP", "MPP_RANGE"]

#: File name patterns offered to napari's reader and the file dialogs.
SLIDE_EXTENSIONS = (
    ".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide",
)

#: The coarsest pyramid level keeps at least this many pixels on its long side.
_MIN_LEVEL_SIZE = 512
#: Consecutive pyramid levels differ by at most this factor; larger gaps get lazy levels.
_MAX_LEVEL_GAP = 2.5

MPP_HELP = (
    "state the scale in µm per pixel: Slide(path, mpp=0.25) in Python, the 'Pixel size' "
    "field of the Slide widget in napari, or --mpp on the command line"
)

#: µm per pixel a slide can have (x100 oil objective ~0.1 to a coarse overview scan); a value
#: outside (500 for 0.5) would make millions of tiles: refused from the user or the file.
MPP_RANGE = (0.05, 50.0)
_RANGE_TEXT = f"{MPP_RANGE[0]:g}-{MPP_RANGE[1]:g} µm per pixel"


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 -> RGB uint8 with transparent pixels shown as white (as glass looks)."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    # OpenSlide returns premultiplied colour, so white shows through as (255 - alpha).
    out = rgb.astype(np.uint16) + (255 - alpha.astype(np.uint16))
    return np.minimum(out, 255).astype(np.uint8)


def _parse_mpp(mpp: float | Sequence[float] | None, path: Path) -> tuple[float, float] | None:
    if mpp is None:
        return None
    if isinstance(mpp, (int, float)):
        values = (float(mpp), float(mpp))
    else:
        values = tuple(float(v) for v in mpp)
        if len(values) != 2:
            raise SlideError(path, f"mpp must be one number or (x, y), got {mpp!r}")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise SlideError(path, f"mpp must be a positive number of µm per pixel, got {mpp!r}")
    if not all(_in_range(v) for v in values):
        raise SlideError(path, f"mpp {mpp!r} is outside {_RANGE_TEXT}; give the pixel size "
                               "in µm (e.g. 0.25 at x40, 0.5 at x20)")
    return values  # type: ignore[return-value]


def _in_range(v: float) -> bool:
    return MPP_RANGE[0] <= v <= MPP_RANGE[1]


class Slide:
    """A whole-slide image opened with OpenSlide.

    Parameters
    ----------
    path : str or Path
        Slide file (any format OpenSlide reads: SVS, tiled TIFF, NDPI, MRXS, SCN, ...).
    mpp : float or (float, float), optional
        Microns per pixel at level 0, (x, y). Overrides the file's value; needed for files
        that do not record their scale.
    cache_bytes : int
        Size bound of the decoded-tile cache used by `pyramid` and `read_region`.

    Raises
    ------
    SlideError
        When the file is missing, not a slide OpenSlide can read, corrupt, or has an empty
        level. The message says what was wrong.

    Examples
    --------
    >>> with Slide("sample_data/cmu-1-small-region.svs") as s:  # doctest: +SKIP
    ...     s.mpp, s.level_dimensions
    ((0.499, 0.499), ((2220, 2967),))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        mpp: float | Sequence[float] | None = None,
        cache_bytes: int = 256 * 2**20,
    ):
        import openslide

        self.path = Path(path)
        if not self.path.exists():
            raise SlideError(self.path, "file not found")
        if self.path.is_dir():
            raise SlideError(self.path, "is a folder, not a slide file")
        try:
            self._osr = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError:
            raise SlideError(
                self.path,
                "not a whole-slide image OpenSlide can read (supported: Aperio SVS, tiled "
                "TIFF, Hamamatsu, MIRAX, Leica, Ventana, ...). Plain images must be "
                "converted to a tiled pyramidal TIFF first, e.g. with "
                "`vips tiffsave in.png out.tif --tile --pyramid --compression jpeg`",
            ) from None
        except Exception as exc:  # openslide.OpenSlideError and OS errors from the C side
            raise SlideError(self.path, f"the file is corrupt or truncated ({exc})") from None
        self._lock = threading.RLock()
        self._closed = False
        self.cache = TileCache(cache_bytes)
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(
            (int(w), int(h)) for w, h in self._osr.level_dimensions
        )
        if not self.level_dimensions or any(w <= 0 or h <= 0 for w, h in self.level_dimensions):
            self._osr.close()
            raise SlideError(self.path, f"has an empty level: {self.level_dimensions}")
        self.level_downsamples: tuple[float, ...] = tuple(
            float(d) for d in self._osr.level_downsamples
        )
        self.properties: dict[str, str] = dict(self._osr.properties)
        self.vendor: str | None = self.properties.get("openslide.vendor")
        self.mpp = _parse_mpp(mpp, self.path) or self._file_mpp()
        self.mpp_from_file = mpp is None and self.mpp is not None
        self._pyramid_levels: list[PyramidLevel] | None = None

    # -- metadata -------------------------------------------------------------------------
    def _file_mpp(self) -> tuple[float, float] | None:
        try:
            x = float(self.properties["openslide.mpp-x"])
            y = float(self.properties.get("openslide.mpp-y", x))
        except (KeyError, ValueError):
            return None
        if not (math.isfinite(x) and math.isfinite(y) and _in_range(x) and _in_range(y)):
            return None  # unusable (0, negative, 500 ...): require_mpp asks for the scale
        return (x, y)

    @property
    def slide_id(self) -> str:
        """The file name without its extension; names the slide's feature file."""
        return self.path.stem

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0 in pixels."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def objective_power(self) -> float | None:
        """Scanning objective magnification from the file, or None."""
        try:
            value = float(self.properties["openslide.objective-power"])
        except (KeyError, ValueError):
            return None
        return value if value > 0 else None

    def set_mpp(self, mpp: float | Sequence[float]) -> None:
        """State the level-0 scale (µm per pixel) of a slide, e.g. one whose file lacks it."""
        self.mpp = _parse_mpp(mpp, self.path)
        self.mpp_from_file = False

    def require_mpp(self) -> tuple[float, float]:
        """The level-0 scale in µm per pixel, or a `SlideError` that says how to state it.

        Falls back to the objective power (x40 = 0.25 µm/px, x20 = 0.5, ...) when the file
        states only that.
        """
        if self.mpp is not None:
            return self.mpp
        power = self.objective_power
        if power is not None and _in_range(10.0 / power):
            return (10.0 / power, 10.0 / power)
        raise SlideError(
            self.path, "the file records neither a usable pixel size nor its magnification "
            f"(a scale within {_RANGE_TEXT}); {MPP_HELP}"
        )

    def best_level_for_downsample(self, downsample: float) -> int:
        """The finest-detail file level whose downsample is <= ``downsample`` (+1 % slack)."""
        best = 0
        for i, d in enumerate(self.level_downsamples):
            if d <= downsample * 1.01:
                best = i
        return best

    def metadata(self) -> dict:
        """A JSON-able summary for ``layer.metadata`` and reports."""
        return {
            "path": str(self.path),
            "slide_id": self.slide_id,
            "vendor": self.vendor,
            "dimensions": list(self.dimensions),
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "mpp": list(self.mpp) if self.mpp else None,
            "mpp_from_file": self.mpp_from_file,
            "objective_power": self.objective_power,
        }

    # -- pixels ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SlideError(self.path, "the slide was closed")

    def _read_rgba(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        self._check_open()
        try:
            img = self._osr.read_region((int(location[0]), int(location[1])), int(level),
                                        (int(size[0]), int(size[1])))
        except Exception as exc:
            raise SlideError(
                self.path, f"reading pixels failed; the file may have changed or vanished ({exc})"
            ) from None
        return np.asarray(img)

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read pixels of one file level.

        Parameters
        ----------
        location : (int, int)
            Top-left (x, y) in level-0 pixels.
        level : int
            File level to read.
        size : (int, int)
            (width, height) in pixels of that level.

        Returns
        -------
        np.ndarray
            (height, width, 3) uint8 RGB; outside the slide and transparent areas are white.
        """
        if not 0 <= level < self.level_count:
            raise SlideError(self.path, f"level {level} does not exist (0..{self.level_count - 1})")
        if size[0] <= 0 or size[1] <= 0:
            raise SlideError(self.path, f"cannot read a region of size {tuple(size)}: both sides "
                                        "must be positive")
        return _composite_on_white(self._read_rgba(location, level, size))

    def _file_tile_size(self, level: int) -> tuple[int, int]:
        p = self.properties
        try:
            return (int(p[f"openslide.level[{level}].tile-height"]),
                    int(p[f"openslide.level[{level}].tile-width"]))
        except (KeyError, ValueError):
            return (512, 512)

    def _chunk(self, level: int, factor: int, cy: int, cx: int, tile: tuple[int, int],
               shape: tuple[int, int]) -> np.ndarray:
        """One pyramid chunk (cached): file tile (factor 1) or a block-averaged area."""
        key = (level, factor, cy, cx)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        th, tw = tile
        h = min(th, shape[0] - cy * th)
        w = min(tw, shape[1] - cx * tw)
        ds = self.level_downsamples[level]
        x0 = int(round(cx * tw * factor * ds))
        y0 = int(round(cy * th * factor * ds))
        pix = self.read_region((x0, y0), level, (w * factor, h * factor))
        if factor > 1:
            # Block mean = area-weighted antialiasing for integer factors.
            pix = pix.reshape(h, factor, w, factor, 3).mean(axis=(1, 3))
            pix = np.round(pix).astype(np.uint8)
        self.cache.put(key, pix)
        return pix

    def pyramid_levels(self) -> list[PyramidLevel]:
        """The levels `pyramid` exposes: the file's levels plus lazy block-averaged ones.

        Gaps larger than 2.5x between file levels, and the range below the coarsest file
        level down to about 512 px, are filled with levels computed on the fly by integer
        block averaging of the nearest finer file level, so napari always gets a real
        multiscale pyramid, even from a single-level file.
        """
        if self._pyramid_levels is not None:
            return self._pyramid_levels
        levels: list[PyramidLevel] = []
        w0, h0 = self.dimensions
        for i, (w, h) in enumerate(self.level_dimensions):
            ds = self.level_downsamples[i]
            if levels:
                # Fill a gap to this file level with synthetic levels from the previous one.
                prev = levels[-1]
                while ds / prev.downsample > _MAX_LEVEL_GAP:
                    prev = self._synthetic(prev)
                    levels.append(prev)
            levels.append(PyramidLevel((h, w), ds, i, 1, self._file_tile_size(i)))
        while max(levels[-1].shape) > _MIN_LEVEL_SIZE * 2:
            levels.append(self._synthetic(levels[-1]))
        self._pyramid_levels = levels
        return levels

    def _synthetic(self, prev: PyramidLevel) -> PyramidLevel:
        factor = prev.factor * 2
        base = prev.file_level
        bw, bh = self.level_dimensions[base]
        shape = (max(1, bh // factor), max(1, bw // factor))
        tile = self._file_tile_size(base)
        return PyramidLevel(shape, self.level_downsamples[base] * factor, base, factor, tile)

    def pyramid(self) -> list[SlideLevelArray]:
        """Lazy multiscale arrays for napari, finest first.

        Returns
        -------
        list of SlideLevelArray
            (height, width, 3) uint8 RGB per level; slicing reads (and caches) only the
            file tiles in the slice. ``level.to_dask()`` gives a tile-chunked dask array.

        Notes
        -----
        Plain dask arrays cost about 9 ms of graph handling per viewport read even when every
        tile is cached (`benchmarks/bench_reader.py`), more than decoding the tiles; napari
        reads any numpy-like array, so the pyramid is served without that layer.
        """
        return [SlideLevelArray(self, lvl) for lvl in self.pyramid_levels()]

    def _tiles(self, level: PyramidLevel, cells: list[tuple[int, int]]) -> list[np.ndarray]:
        """Tiles (cy, cx) of a pyramid level; misses are decoded in parallel."""
        get = self._chunk
        args = (level.file_level, level.factor)
        if len(cells) > 1:
            missing = [c for c in cells
                       if self.cache.get((*args, *c), count=False) is None]
            if len(missing) > 1:
                list(tile_pool().map(lambda c: get(*args, c[0], c[1], level.tile, level.shape),
                                 missing))
        return [get(*args, cy, cx, level.tile, level.shape) for cy, cx in cells]

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """An RGB overview whose long side is at most ``max_size`` pixels.

        Read from the coarsest pyramid level that still has at least ``max_size`` pixels on
        its long side, then resized with antialiasing.
        """
        from PIL import Image

        levels = self.pyramid_levels()
        choice = 0
        for i, lvl in enumerate(levels):
            if max(lvl.shape) >= max_size:
                choice = i
        arr = self.pyramid()[choice][:, :, :]
        h, w = arr.shape[:2]
        scale = max_size / max(h, w)
        if scale >= 1:
            return arr
        out_size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # Pillow's box-filtered reduce then Lanczos: antialiased and ~50x faster than skimage.
        img = Image.fromarray(arr).resize(out_size, Image.Resampling.LANCZOS, reducing_gap=2.0)
        return np.asarray(img)

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._osr.close()
                self.cache.clear()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        mpp = f"{self.mpp[0]:.3f} µm/px" if self.mpp else "unknown scale"
        return f"Slide({self.path.name!r}, {self.dimensions[0]}x{self.dimensions[1]}, " \
               f"{self.level_count} level(s), {mpp})"
