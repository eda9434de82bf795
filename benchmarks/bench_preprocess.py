"""Preprocessing throughput on a generated ~20k x 20k slide of REAL tissue.

The slide is made by mirror-tiling real H&E pixels (a 2048 x 2048 crop of the CMU-1 sample
slide, else ``../shared/data/images/*.png``) into a JPEG-tiled pyramidal TIFF with
resolution tags (OpenSlide reports its mpp), cached under ``--cache``.

Measured, each on a freshly opened slide (OpenSlide's tile cache cold for the pass):

(a) reading the x10 patches only (read + resize to 512 px), with the pipeline's reader
    threads: the ceiling of the pipeline;
(b) read + features, the pipeline's loop (``extract_grid``: reader threads prepare the next
    batch while the extractor works on the current one), for the ``handcrafted`` extractor
    and for the ``timm`` extractor with a ViT-S/16 (random weights saved to a local
    safetensors file: only the speed is measured, which the weights do not change);
(c) hierarchical graph construction (``HierarchicalGraph.from_arrays``) for 20k random patch
    nodes + their regions, and for the benchmark slide's own tiling.

Prints patches/s, the ratio (b)/(a), the extractor alone on tiles in memory (e) and the
overlap (b) / min(a, e) (1.0 = reading fully hidden behind the model or the model behind
reading), and the graph build time per 10k nodes.
Targets (issue 3): (b) >= 0.5 x (a) on 2 cores for handcrafted; graph build for 20k patch
nodes < 1 s.

    python benchmarks/bench_preprocess.py [--size 20000] [--mpp 0.5] [--threads 2]
        [--timm-arch vit_small_patch16_224 | --timm-arch none] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def real_tissue() -> tuple[np.ndarray, str]:
    """Real H&E pixels and where they came from."""
    from napari_higt.slide import Slide

    for cand in (REPO / "sample_data" / "cmu-1-small-region.svs",
                 SHARED / "slides" / "cmu-1-small-region.svs"):
        if cand.exists():
            with Slide(cand) as s:
                return s.read_region((100, 800), 0, (2048, 2048)), f"{cand.name} (2048 px crop)"
    from PIL import Image

    pngs = sorted((SHARED / "images").glob("*.png"))
    if not pngs:
        sys.exit("no real tissue found (sample_data/ or ../shared/data/images)")
    return np.asarray(Image.open(pngs[0]).convert("RGB")), pngs[0].name


def make_slide(path: Path, size: int, mpp: float) -> tuple[Path, str]:
    from napari_higt.slide.writer import tile_to_size, write_pyramidal_tiff

    tissue, src = real_tissue()
    if path.exists():
        return path, src
    t = time.perf_counter()
    rgb = tile_to_size(tissue, (size, size))
    write_pyramidal_tiff(path, rgb, mpp=mpp, tile=256, min_size=512, compression="jpeg",
                         quality=85)
    print(f"  wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    return path, src


def random_timm_weights(folder: Path, arch: str) -> Path:
    """A local safetensors file of ``arch`` with random weights (made once, then reused)."""
    path = folder / f"napari_higt_bench_{arch}_random.safetensors"
    if not path.exists():
        import torch
        from safetensors.torch import save_file

        from napari_higt.features.timm_extractor import build_timm_model

        torch.manual_seed(0)
        model = build_timm_model(arch)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=20000, help="slide side in px (20000)")
    ap.add_argument("--mpp", type=float, default=0.25,
                    help="level-0 µm/px of the generated slide (0.25 = 40x: x10 patches are "
                         "read at a 2x-downsampled level and resized)")
    ap.add_argument("--threads", type=int, default=2, help="reader threads (2)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cache", default=os.environ.get("TMPDIR", "/tmp"),
                    help="folder for the generated slide (and the random timm weights)")
    ap.add_argument("--timm-arch", default="vit_small_patch16_224",
                    help="timm architecture to time (random weights), 'none' to skip")
    ap.add_argument("--device", default="auto", help="device of the timm extractor")
    args = ap.parse_args()

    from napari_higt.features import get_extractor
    from napari_higt.features.pipeline import extract_grid
    from napari_higt.graph import HierarchicalGraph
    from napari_higt.slide import Slide, tissue_mask
    from napari_higt.slide.tiling import read_tiles, tile_slide

    print(f"napari-higt preprocessing benchmark; {os.cpu_count()} CPU core(s) visible")
    path = Path(args.cache) / f"napari_higt_bench_{args.size}_{args.mpp}.tif"
    path, src = make_slide(path, args.size, args.mpp)
    print(f"  slide: {args.size} x {args.size} px at {args.mpp} µm/px, real tissue from {src}")

    with Slide(path) as s:
        print(f"  levels: {s.level_dimensions}")
        t = time.perf_counter()
        mask = tissue_mask(s, max_size=1024)
        tiling = tile_slide(s, mask, tissue_threshold=0.25)
        t_tile = time.perf_counter() - t
    g10 = tiling.levels["x10"]
    n = len(g10)
    print(f"  tiling: {n} x10 patches ({g10.size0:.0f} level-0 px, read at level "
          f"{g10.read_level} as {g10.read_size} px -> 512), {len(tiling.levels['x5'])} x5 regions;"
          f" mask + tiling {t_tile:.2f} s")
    extractors = {"handcrafted": get_extractor("handcrafted")}
    if args.timm_arch != "none":
        weights = random_timm_weights(Path(args.cache), args.timm_arch)
        extractors[f"timm {args.timm_arch}"] = get_extractor(
            "timm", arch=args.timm_arch, weights=str(weights), device=args.device,
            batch_size=args.batch_size)

    def reading() -> float:
        with Slide(path) as s, ThreadPoolExecutor(args.threads) as pool:
            t0 = time.perf_counter()
            for i in range(0, n, args.batch_size):
                read_tiles(s, g10, np.arange(i, min(i + args.batch_size, n)), pool)
            return time.perf_counter() - t0

    def read_and_extract(ext) -> float:
        with Slide(path) as s, ThreadPoolExecutor(1) as ahead, \
                ThreadPoolExecutor(args.threads) as pool:
            t0 = time.perf_counter()
            f = extract_grid(s, g10, ext, args.batch_size, ahead, pool)
            dt = time.perf_counter() - t0
        assert f.shape == (n, ext.dim)
        return dt

    with Slide(path) as s:
        sample = read_tiles(s, g10, np.arange(min(n, 64)))
    for ext in extractors.values():
        ext(sample[:2])  # warm-up (imports, first-call kernels)
    # alternate the passes and keep the best of each: the machine is shared
    ta, tb = [], {k: [] for k in extractors}
    for _ in range(3):
        ta.append(reading())
        for k, ext in extractors.items():
            tb[k].append(read_and_extract(ext))
    a = n / min(ta)
    print()
    print(f"(a) read x10 patches only          : {a:8.1f} patches/s  ({args.threads} reader "
          "threads)")
    for k, ext in extractors.items():
        b = n / min(tb[k])
        t0 = time.perf_counter()
        ext(sample)
        e = len(sample) / (time.perf_counter() - t0)
        where = getattr(ext, "device", "cpu")
        print(f"(b) read + {k:24s}: {b:8.1f} patches/s")
        print(f"    {k} alone (in memory, {where}): {e:8.1f} patches/s")
        print(f"    ratio (b)/(a)                  : {b / a:8.2f}" + (
            "   (target >= 0.5)" if k == "handcrafted" else ""))
        print(f"    overlap (b)/min(a, e)          : {b / min(a, e):8.2f}")

    # (c) graph construction
    rng = np.random.default_rng(0)
    side = 200
    cells = rng.choice(side * side, size=20_000, replace=False)
    gxy = np.stack([cells % side, cells // side], axis=1)
    g5 = np.unique(gxy // 2, axis=0)
    coords = {"x10": gxy * 1024, "x5": g5 * 2048}
    feats = {"x10": rng.normal(size=(len(gxy), 64)).astype(np.float32),
             "x5": rng.normal(size=(len(g5), 64)).astype(np.float32)}
    HierarchicalGraph.from_arrays(coords, feats)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        g = HierarchicalGraph.from_arrays(coords, feats)
        times.append(time.perf_counter() - t0)
    tg = min(times)
    g.to_pyg()  # first call imports torch_geometric
    t0 = time.perf_counter()
    g.to_pyg()
    tp = time.perf_counter() - t0
    nn = g.num_nodes
    print(f"(c) graph, 20k patch nodes       : {tg * 1000:8.1f} ms  ({nn} nodes, "
          f"{g.edge_index.shape[1]} edges; target < 1000 ms)")
    print(f"    per 10k nodes                : {tg / nn * 1e4 * 1000:8.1f} ms;  to_pyg "
          f"{tp * 1000:.1f} ms")
    sc = {k: v.coords for k, v in tiling.levels.items()}
    sf = {k: np.zeros((len(v), 64), np.float32) for k, v in tiling.levels.items()}
    t0 = time.perf_counter()
    gs = HierarchicalGraph.from_arrays(sc, sf, patch_size={k: v.size0 for k, v in tiling.levels.items()})
    print(f"    benchmark slide's graph      : {(time.perf_counter() - t0) * 1000:8.1f} ms  "
          f"({gs.counts()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
