"""The lazy pyramid of a slide: a shared tile cache, the decoding threads, and one level
as a numpy-like array napari can show (`SlideLevelArray`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = ["TileCache", "PyramidLevel", "SlideLevelArray", "tile_pool"]


class TileCache:
    """A thread-safe LRU cache of decoded tiles bounded by total bytes.

    Parameters
    ----------
    max_bytes : int
        Upper bound of the summed ``nbytes`` of the cached arrays.
    """

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: tuple, count: bool = True) -> np.ndarray | None:
        """The cached value or None; ``count=False`` peeks without touching the statistics."""
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += count
                return None
            self._data.move_to_end(key)
            self.hits += count
            return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._data[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


_POOL = None
_POOL_LOCK = threading.Lock()


def tile_pool():
    """Threads shared by all slides for decoding tiles (OpenSlide releases the GIL)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2),
                                       thread_name_prefix="napari-higt-tiles")
        return _POOL


@dataclass(frozen=True)
class PyramidLevel:
    """One level of `Slide.pyramid`.

    ``file_level`` is the OpenSlide level the pixels come from and ``factor`` the extra
    integer block-averaging applied on top (1 for levels stored in the file).
    """

    shape: tuple[int, int]  # (height, width)
    downsample: float  # level-0 px per level px
    file_level: int
    factor: int
    tile: tuple[int, int]  # (tile_h, tile_w) = dask chunk size


class SlideLevelArray:
    """One pyramid level as a lazy, read-only, numpy-like array (H, W, 3) uint8.

    napari shows a list of these as a multiscale image: slicing reads only the file tiles
    the slice touches, through the slide's tile cache, decoding missing tiles in parallel
    (OpenSlide releases the GIL). `to_dask` gives the same level as a dask array whose
    chunks are the file's tiles, for computations.
    """

    def __init__(self, slide: Slide, level: PyramidLevel):
        self._slide = slide
        self.level = level
        self.shape = (level.shape[0], level.shape[1], 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """The file's tile grid, in dask's notation."""
        (th, tw), (h, w) = self.level.tile, self.level.shape
        return (
            tuple(min(th, h - i) for i in range(0, h, th)),
            tuple(min(tw, w - j) for j in range(0, w, tw)),
            (3,),
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<SlideLevelArray {self.shape} x{self.level.downsample:g} of {self._slide.path.name}>"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:, :, :]
        return out.astype(dtype) if dtype is not None else out

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(n for n, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (3 - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (3 - len(key))
        ys, xs, cs = key
        squeeze = []
        if isinstance(ys, (int, np.integer)):
            ys, squeeze = slice(int(ys), int(ys) + 1), squeeze + [0]
        if isinstance(xs, (int, np.integer)):
            xs, squeeze = slice(int(xs), int(xs) + 1), squeeze + [1]
        if not (isinstance(ys, slice) and isinstance(xs, slice)):
            raise TypeError("slide levels support integer and slice indexing only")
        y0, y1, ystep = ys.indices(self.shape[0])
        x0, x1, xstep = xs.indices(self.shape[1])
        out = self._read(y0, max(y0, y1), x0, max(x0, x1))[::ystep, ::xstep, cs]
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out

    def _read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        if out.size == 0:
            return out
        th, tw = self.level.tile
        cells = [(cy, cx) for cy in range(y0 // th, (y1 - 1) // th + 1)
                 for cx in range(x0 // tw, (x1 - 1) // tw + 1)]
        for (cy, cx), tile in zip(cells, self._slide._tiles(self.level, cells)):
            ty0, tx0 = cy * th, cx * tw
            sy0, sy1 = max(y0, ty0), min(y1, ty0 + tile.shape[0])
            sx0, sx1 = max(x0, tx0), min(x1, tx0 + tile.shape[1])
            out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = tile[sy0 - ty0:sy1 - ty0,
                                                             sx0 - tx0:sx1 - tx0]
        return out

    def to_dask(self):
        """This level as a dask array with one chunk per file tile."""
        import dask.array as da

        lvl = self.level
        token = f"{self._slide.path.resolve()}-{lvl.file_level}-{lvl.factor}"

        def block(block_info=None):
            cy, cx, _ = block_info[None]["chunk-location"]
            return self._slide._chunk(lvl.file_level, lvl.factor, cy, cx, lvl.tile, lvl.shape)

        return da.map_blocks(block, chunks=self.chunks, dtype=np.uint8,
                             meta=np.empty((0, 0, 3), np.uint8),
                             name=f"slide-{abs(hash(token))}")
