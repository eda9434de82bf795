"""Entity graphs of many patches: a process pool and an optional on-disk cache.

Cache files are ``<sha1>.npz`` (keyed by the patch bytes, its mask and the parameters), read
with ``allow_pickle=False``; a missing or corrupt entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from napari_higt.graph.entities import entity_arrays, entity_data
from napari_higt.io import atomic_path

__all__ = ["entity_graphs"]



def _cache_key(rgb: np.ndarray, params: dict) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(rgb).tobytes())
    h.update(str(rgb.shape).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _worker(args):
    rgb, mask, params = args
    return entity_arrays(rgb, tissue_mask=mask, **params)


def _load_cached(f: Path) -> dict | None:
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in ("x", "edge_index", "pos", "centroid", "label_image")}
    except Exception:  # a missing or corrupt cache entry is recomputed
        return None


def entity_graphs(
    patches: Sequence[np.ndarray] | np.ndarray,
    tissue_masks: Sequence[np.ndarray | None] | None = None,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
    keep_label_image: bool = True,
    progress=None,
    **params,
) -> list:
    """`entity_graph` of many patches, with a process pool and an optional disk cache.

    Parameters
    ----------
    patches : sequence of (H, W, 3) uint8 arrays or a (B, H, W, 3) array
    tissue_masks : optional per-patch masks (None entries = automatic)
    n_jobs : worker processes (1 = in this process; -1 = all cores)
    cache_dir : folder for cached graphs, keyed by the patch bytes and ``params``
        (files ``<sha1>.npz``, read with ``allow_pickle=False``)
    keep_label_image : False drops ``label_image`` (saves memory when only training)
    progress : optional callable(done, total)
    **params : passed to `entity_graph`
    """
    import multiprocessing as mp

    patches = list(patches)
    masks = list(tissue_masks) if tissue_masks is not None else [None] * len(patches)
    if len(masks) != len(patches):
        raise ValueError("tissue_masks must have one entry per patch")
    out: list = [None] * len(patches)
    cache = Path(cache_dir) if cache_dir is not None else None
    keys: list[str | None] = [None] * len(patches)
    todo = []
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    for i, rgb in enumerate(patches):
        if cache is not None:
            extra = None if masks[i] is None else hashlib.sha1(
                np.ascontiguousarray(masks[i], dtype=bool).tobytes()).hexdigest()
            keys[i] = _cache_key(np.asarray(rgb), {**params, "mask": extra})
            rec = _load_cached(cache / f"{keys[i]}.npz")
            if rec is not None:
                out[i] = entity_data(rec)
                continue
        todo.append(i)
    n_done = len(patches) - len(todo)
    if progress is not None:
        progress(n_done, len(patches))
    if n_jobs < 0:
        n_jobs = os.cpu_count() or 1
    jobs = [(np.asarray(patches[i]), masks[i], params) for i in todo]
    if n_jobs > 1 and len(todo) > 1:
        # forkserver: workers never inherit the parent's torch/OpenMP thread state (a forked
        # child of a process that has run torch can hang); they only need numpy + skimage.
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods()
                             else "spawn")
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo)), mp_context=ctx) as pool:
            results = pool.map(_worker, jobs, chunksize=max(1, len(todo) // (4 * n_jobs)))
            recs = list(_progress_iter(results, n_done, len(patches), progress))
    else:
        recs = list(_progress_iter(map(_worker, jobs), n_done, len(patches), progress))
    for i, rec in zip(todo, recs):
        if cache is not None:
            with atomic_path(cache / f"{keys[i]}.npz", "the entity-graph cache") as tmp, \
                    open(tmp, "wb") as fh:
                np.savez(fh, **rec)
        out[i] = entity_data(rec)
    if not keep_label_image:
        for d in out:
            del d.label_image
    return out


def _progress_iter(it, start, total, progress):
    done = start
    for item in it:
        done += 1
        if progress is not None:
            progress(done, total)
        yield item
