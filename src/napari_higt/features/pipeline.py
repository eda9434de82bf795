"""Slide -> feature file: the Qt-free core the CLI, the viewer widget and the demo share.

``preprocess_slide(slide_path, out_dir, extractor)`` opens the slide, finds the tissue,
tiles it at x5 and x10 (``napari_higt.slide.tiling``), reads the tiles in batches (a small
thread pool reads the next batch while the extractor works on the current one), runs the
extractor on every batch and on the whole-slide thumbnail, and writes
``<out_dir>/<slide_id>.h5`` atomically (``FeatureStore``).

Work already done is skipped: the file records a content hash of the slide (size, mtime,
first MiB) and a hash of the extractor config plus the tiling settings; a rerun over the
same inputs returns at once, and an interrupted run (killed, cancelled, disk full) left no
file behind, so rerunning the command resumes the cohort where it stopped. The unit of
resumption is the slide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import Cancelled, FeatureError, SlideError
from napari_higt.features.base import FeatureExtractor, config_hash, get_extractor
from napari_higt.features.provenance import content_hash
from napari_higt.features.store import FeatureStore, source_hash
from napari_higt.levels import PATCH, PATCH_SIZE, THUMBNAIL, TILED_LEVELS, tile_size0

__all__ = [
    "preprocess_slide", "run_slide", "extract_grid", "PreprocessResult",
]

TILING_VERSION = 1
LAYOUTS = ("higt", "trident")
ProgressFn = Callable[[int, int], Any]


@dataclass
class PreprocessResult:
    """Outcome of one slide."""

    slide_id: str
    path: Path
    status: str  # "done" or "skipped" (already up to date)
    counts: dict[str, int] = field(default_factory=dict)
    dim: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def _resolve_extractor(extractor: str | FeatureExtractor,
                       config: Mapping[str, Any] | None) -> FeatureExtractor:
    if isinstance(extractor, str):
        return get_extractor(extractor, **dict(config or {}))
    return extractor


def _extract(ext: FeatureExtractor, batch: np.ndarray) -> np.ndarray:
    out = np.asarray(ext(batch))
    if out.shape != (len(batch), ext.dim):
        raise FeatureError(
            f"extractor '{ext.name}' returned features of shape {out.shape} for {len(batch)} "
            f"tiles, but declares dim={ext.dim}"
        )
    return out.astype(np.float32, copy=False)


def extract_grid(slide, grid, ext: FeatureExtractor, batch_size: int, ahead, pool,
                 tick: Callable[[int], Any] | None = None) -> np.ndarray:
    """Features (N, dim) of every tile of ``grid``, one batch read ahead of the extractor.

    ``ahead`` is a one-thread executor that prepares the next batch while ``ext`` works on
    the current one, ``pool`` the executor whose threads read the tiles of a batch.
    """
    from napari_higt.slide.tiling import read_tiles

    n = len(grid)
    starts = list(range(0, n, batch_size))
    if not starts:
        return np.zeros((0, ext.dim), np.float32)

    def submit(i: int):
        idx = np.arange(starts[i], min(starts[i] + batch_size, n))
        return ahead.submit(read_tiles, slide, grid, idx, pool)

    parts = []
    pending = submit(0)
    for i in range(len(starts)):
        batch = pending.result()
        pending = submit(i + 1) if i + 1 < len(starts) else None
        parts.append(_extract(ext, batch))
        if tick is not None:
            tick(len(batch))
    return np.concatenate(parts)


def run_slide(
    slide_path: str | Path,
    out_dir: str | Path,
    extractor: str | FeatureExtractor = "handcrafted",
    mpp: float | None = None,
    *,
    extractor_config: Mapping[str, Any] | None = None,
    default_mpp: float | None = None,
    tissue_threshold: float = 0.25,
    patch_size: int = PATCH_SIZE,
    batch_size: int = 32,
    num_threads: int = 2,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
    stain: str | None = None,
    stain_reference: str | Path | None = None,
    layout: str = "higt",
) -> PreprocessResult:
    """Like :func:`preprocess_slide` but returns a :class:`PreprocessResult`."""
    from napari_higt.slide.reader import Slide
    from napari_higt.slide.tiling import thumbnail_tile, tile_slide
    from napari_higt.slide.tissue import mask_size_for, tissue_mask

    t0 = time.perf_counter()
    slide_path = Path(slide_path)
    out_dir = Path(out_dir)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    from napari_higt.features.stain import pass_through_note, with_stain

    ext = with_stain(_resolve_extractor(extractor, extractor_config), stain, stain_reference)
    norm = getattr(ext, "normalizer", None)
    norm_counts = (norm.seen, norm.passed) if norm is not None else None

    with Slide(slide_path, mpp=mpp) as slide:
        if default_mpp is not None and slide.mpp is None and slide.objective_power is None:
            slide.set_mpp(default_mpp)
        slide_mpp = float(np.mean(slide.require_mpp()))
        out = out_dir / f"{slide.slide_id}.h5"
        src = source_hash(slide_path)
        # the layout joins the hash only when it is not the default, so older files stay done
        cfg = config_hash(ext, patch_size=patch_size, tissue_threshold=float(tissue_threshold),
                          mpp=round(slide_mpp, 6), tiling=TILING_VERSION,
                          **({"layout": layout} if layout != "higt" else {}))
        if out.exists() and not overwrite:
            attrs = FeatureStore.read_attrs(out)
            if attrs is not None and attrs.get("extractor") not in (None, ext.name):
                raise FeatureError(
                    f"{out} was written by the '{attrs.get('extractor')}' extractor, not "
                    f"'{ext.name}'; choose another --out folder or pass --overwrite"
                )
            if FeatureStore.is_done(out, src, cfg):
                data = FeatureStore.read(out, extractor=ext.name, dim=ext.dim)
                return PreprocessResult(slide.slide_id, out, "skipped", data.counts(), ext.dim,
                                        time.perf_counter() - t0)
        FeatureStore.remove_stale_tmp(out)

        w, h = slide.dimensions
        size10 = tile_size0(PATCH, slide_mpp, patch_size)
        mask = tissue_mask(slide, max_size=mask_size_for((w, h), size10))
        tiling = tile_slide(slide, mask, mpp=None, patch_size=patch_size,
                            tissue_threshold=tissue_threshold)
        g10 = tiling.levels[PATCH]
        if w < g10.size0 or h < g10.size0:
            raise SlideError(
                slide_path,
                f"the slide is {w} x {h} px, smaller than one {patch_size}-px x10 patch "
                f"({g10.size0:.0f} px at {slide_mpp:.3g} µm/px); check the slide's scale (--mpp)",
            )
        if len(g10) == 0:
            raise SlideError(
                slide_path,
                f"no tissue found: no x10 patch has a tissue fraction above {tissue_threshold} "
                f"(tissue covers {mask.fraction:.1%} of the slide); an empty graph cannot be "
                "used. Lower --tissue-threshold or check the slide",
            )

        levels = (PATCH,) if layout == "trident" else TILED_LEVELS
        total = (layout != "trident") + sum(len(tiling.levels[k]) for k in levels)
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)
            if cancel is not None and cancel():
                raise Cancelled(f"{slide.slide_id}: cancelled")

        if progress is not None:
            progress(0, total)
        coords: dict[str, np.ndarray] = {}
        feats: dict[str, np.ndarray] = {}
        if layout != "trident":  # a TRIDENT file holds the x10 level only
            coords[THUMBNAIL] = np.zeros((1, 2), np.int64)
            feats[THUMBNAIL] = _extract(ext, thumbnail_tile(slide, patch_size)[None])
            tick(1)
        # ``ahead`` prepares the next batch while the extractor works; ``pool`` reads its tiles
        with ThreadPoolExecutor(1) as ahead, ThreadPoolExecutor(max(1, int(num_threads))) as pool:
            for name in levels:
                grid = tiling.levels[name]
                coords[name] = grid.coords
                feats[name] = extract_grid(slide, grid, ext, batch_size, ahead, pool, tick)

        import json

        from napari_higt import __version__

        warnings = list(tiling.warnings) + _scale_note(ext, g10, patch_size)
        attrs = {
            "extractor": ext.name, "extractor_config": json.dumps(ext.config, sort_keys=True,
                                                                  default=str),
            "extractor_config_hash": cfg, "source_hash": src, "slide_id": slide.slide_id,
            "content_hash": content_hash(slide_path),
            "slide_path": str(slide_path), "slide_dimensions": [w, h], "mpp": slide_mpp,
            # how the scale was known: inference warns when it was not read from the file
            "mpp_source": ("file" if slide.mpp_from_file else "stated" if slide.mpp is not None
                           else "magnification"),
            "tissue_threshold": float(tissue_threshold), "napari_higt_version": __version__,
        }
        if norm is not None:
            seen, passed = norm.seen - norm_counts[0], norm.passed - norm_counts[1]
            attrs["stain"] = json.dumps({**norm.config, "tiles": seen, "passed_through": passed},
                                        sort_keys=True)
            if passed:
                warnings.append(pass_through_note(norm.method, passed, seen))
        _write(out, layout, coords, feats, attrs, tiling, slide, patch_size, tissue_threshold)
        return PreprocessResult(
            slide.slide_id, out, "done", {k: int(len(v)) for k, v in coords.items()}, ext.dim,
            time.perf_counter() - t0, warnings,
        )


def _scale_note(ext: FeatureExtractor, grid, patch_size: int) -> list[str]:
    """A note when an encoder preset was trained at another scale than its input here."""
    target = getattr(ext, "target_mpp", None)
    size = getattr(ext, "input_size", None)
    if not target or not size:
        return []
    seen = grid.target_mpp * patch_size / size
    if abs(seen - target) <= 0.1 * target:
        return []
    return [f"the encoder was trained at {target:g} µm/px; the x10 tiles reach it at "
            f"{seen:.2f} µm/px ({patch_size} px at {grid.target_mpp:g} µm/px resized to {size})"]


def _write(out: Path, layout: str, coords, feats, attrs, tiling, slide, patch_size: int,
           tissue_threshold: float) -> None:
    """Write the feature file in this project's layout or as a TRIDENT file (x10 only)."""
    if layout == "trident":
        from napari_higt.features.trident import trident_coords_attrs, write_trident

        g10 = tiling.levels[PATCH]
        ca = trident_coords_attrs(slide.slide_id, patch_size, g10.size0, attrs["mpp"],
                                  g10.target_mpp, out.parent)
        write_trident(out, coords[PATCH], feats[PATCH], ca, attrs=attrs)
        return
    w, h = attrs["slide_dimensions"]
    level_attrs = {
        THUMBNAIL: {"patch_size": patch_size, "patch_size_level0": float(max(w, h)),
                    "magnification": THUMBNAIL},
    }
    for name, grid in tiling.levels.items():
        level_attrs[name] = {
            "patch_size": patch_size, "patch_size_level0": grid.size0,
            "magnification": grid.magnification, "mpp": grid.target_mpp,
            "read_level": grid.read_level, "tissue_fraction_min": float(tissue_threshold),
        }
    FeatureStore.write(out, coords, feats, attrs=attrs, level_attrs=level_attrs)


def preprocess_slide(
    slide_path: str | Path,
    out_dir: str | Path,
    extractor: str | FeatureExtractor = "handcrafted",
    mpp: float | None = None,
    **kwargs: Any,
) -> Path:
    """Turn one slide into its feature file ``<out_dir>/<slide_id>.h5`` and return the path.

    Parameters
    ----------
    slide_path : path of a slide OpenSlide reads.
    out_dir : folder of the feature files (created).
    extractor : a registry name (``"handcrafted"``, ``"cnn"``, ...) or an extractor object.
    mpp : level-0 µm per pixel; overrides the file's scale.
    default_mpp : level-0 µm per pixel used only when the file records neither its pixel size
        nor its objective power (the CLI's ``--mpp``).
    extractor_config : dict, passed to ``get_extractor`` when ``extractor`` is a name.
    tissue_threshold : a tile is kept when its tissue fraction is above this (0.25).
    patch_size : tile side at x5 / x10 (512).
    batch_size : tiles per extractor call (32).
    num_threads : reader threads (2).
    overwrite : recompute even when the file is up to date or came from another extractor.
    progress : ``progress(done, total)`` after every batch (tiles of all levels + 1).
    cancel : ``cancel() -> bool`` polled after every batch; True stops with
        `napari_higt.errors.Cancelled` and writes nothing.
    stain : ``"macenko"``, ``"reinhard"`` or None: stain normalisation of every tile before
        the extractor (`napari_higt.features.stain`); recorded in the file and its hash.
    stain_reference : the reference tile of ``stain`` (default: the one in sample_data/).
    layout : ``"higt"`` (thumbnail, x5, x10 groups) or ``"trident"`` (the x10 level as a
        TRIDENT file, `napari_higt.features.trident`).

    Raises
    ------
    SlideError
        Unreadable slide, unknown scale (message names ``--mpp``), no tissue, slide smaller
        than a patch.
    FeatureError
        The output exists from another extractor, the extractor misbehaves, the write failed.
    """
    return run_slide(slide_path, out_dir, extractor, mpp, **kwargs).path
