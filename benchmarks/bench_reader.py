"""Viewport reads through `Slide.pyramid()` versus raw `openslide.read_region`.

300 random 512 px boxes at random file levels of a generated 20k x 20k slide of real tissue,
read cold (fresh handles) and warm (the same boxes again), by both paths in one run.
Targets: pyramid >= 0.8x raw cold, >= 5x raw warm.

    python benchmarks/bench_reader.py [--size 20000] [--n 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _slides import periodic_slide


def boxes(slide, n: int, rng) -> list[tuple[int, int, int]]:
    out = []
    for _ in range(n):
        level = int(rng.integers(0, slide.level_count))
        w, h = slide.level_dimensions[level]
        out.append((level, int(rng.integers(0, max(1, h - 512))), int(rng.integers(0, max(1, w - 512)))))
    return out


def read_pyramid(slide, arrays, todo) -> float:
    """Boxes per second through the pyramid arrays."""
    t = time.perf_counter()
    for level, y, x in todo:
        a = np.asarray(arrays[level][y:y + 512, x:x + 512])  # what napari does
        assert a.shape[2] == 3
    return len(todo) / (time.perf_counter() - t)


def read_raw(osr, todo, downsamples) -> float:
    t = time.perf_counter()
    for level, y, x in todo:
        ds = downsamples[level]
        img = osr.read_region((int(x * ds), int(y * ds)), level, (512, 512))
        np.asarray(img)
    return len(todo) / (time.perf_counter() - t)


def main() -> None:
    import openslide

    from napari_higt.slide import Slide

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = periodic_slide(args.size)
    rng = np.random.default_rng(args.seed)
    with Slide(path) as slide:
        file_levels = [i for i, lv in enumerate(slide.pyramid_levels()) if lv.factor == 1]
        todo = boxes(slide, args.n, rng)
    print(f"slide {path.name}: {args.size} x {args.size} px, {len(file_levels)} file levels, "
          f"{args.n} boxes of 512 px at random levels")
    rates = {}
    # Pyramid path: a fresh Slide (empty tile cache) for cold, then the same boxes warm.
    slide = Slide(path, cache_bytes=1024 * 2**20)
    arrays = slide.pyramid()
    rates["pyramid cold"] = read_pyramid(slide, arrays, todo)
    rates["pyramid warm"] = read_pyramid(slide, arrays, todo)
    # The same level as a tile-chunked dask array (what computations use), warm.
    dask_arrays = [a.to_dask() for a in arrays]
    t = time.perf_counter()
    for level, y, x in todo[:100]:
        dask_arrays[level][y:y + 512, x:x + 512].compute(scheduler="synchronous")
    rates["dask warm"] = 100 / (time.perf_counter() - t)
    slide.close()
    osr = openslide.OpenSlide(str(path))
    rates["raw cold"] = read_raw(osr, todo, osr.level_downsamples)
    rates["raw warm"] = read_raw(osr, todo, osr.level_downsamples)
    osr.close()
    print(f"{'path':<14}{'boxes/s':>10}")
    for k, v in rates.items():
        print(f"{k:<14}{v:>10.1f}")
    cold = rates["pyramid cold"] / rates["raw cold"]
    warm = rates["pyramid warm"] / rates["raw warm"]
    print(f"ratio cold pyramid/raw: {cold:.2f}x (target >= 0.8x)")
    print(f"ratio warm pyramid/raw: {warm:.2f}x (target >= 5x)")


if __name__ == "__main__":
    main()
