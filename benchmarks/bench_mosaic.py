"""HIGT vs its ablations vs ABMIL vs mean pooling on mosaic slides of REAL tissue.

THE LABELS ARE CONSTRUCTED. No labelled slide set ships with the project
(``sample_data/SOURCES.md``), so this benchmark builds its own task from real H&E pixels:

* tiles of two tissue types, A and B: by default A = crops of the CMU-1 sample slide,
  B = crops of the TCGA lung image (``sample_data/tcga_lung_he.png``), with random flips / 90° turns;
  with ``--tiles DIR`` the first two class sub-folders of an ImageFolder layout (real
  labelled tiles of a user);
* each slide is a mosaic of G x G x10 patches (one tile per patch) laid on glass, written as
  a pyramidal JPEG-tiled TIFF at 1.0 µm/px;
* every slide holds the SAME kind of content in both classes: mostly A, and a number of B
  patches drawn from the same range in both classes. Only the ARRANGEMENT differs:
  class ``clustered``: the B patches form one or two contiguous blobs inside A;
  class ``scattered``: the B patches are isolated (no two B patches are 8-neighbours).
  A bag of patches (the x10 features without positions) therefore carries no label
  information: a permutation-invariant MIL model (mean pooling, ABMIL) should sit near
  chance, and a model that sees spatial neighbours and x5 regions (HIGT) can solve it.
  With this default ``--task patch`` the x5 regions are pure B in blobs and mixed when
  scattered, so the region features alone already tell the classes (the diagnostic row
  "mean pooling of x5 regions" shows it).
* ``--task region`` (harder): in both classes every B patch sits alone in its own x5 region
  (same bag of patches AND same bag of regions); only whether those regions touch each other
  (a contiguous group) or lie apart differs -- only the spatial graph can tell.

Then the whole pipeline runs: tiling + handcrafted features at x5 and x10 + thumbnail
(``features.pipeline.run_slide``), hierarchical graphs, and 5-fold stratified CV repeated over
seeds of HIGT, each Table-3 ablation, ABMIL and mean pooling (``training.engine``). Every
model standardises its input features with the mean / std of its training fold's nodes
(``models.norm.FeatureStandardizer``, saved with the weights).

Prints an AUC / ACC table (mean ± std over folds and seeds, best epoch by validation AUC as
in the paper, plus the unselected last-epoch AUC), the spread over seeds and the wall time.

    python benchmarks/bench_mosaic.py [--quick] [--task patch|region] [--tiles DIR]
                                      [--slides 40] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "src"))

MODELS: dict[str, dict] = {
    "HIGT": {"model": "higt"},
    "HIGT w/o RAConv+ (RAConv)": {"model": "higt", "conv": "raconv"},
    "HIGT w/o SSA (full attention)": {"model": "higt", "attention": "full"},
    "HIGT w/o BI (region->patch only)": {"model": "higt", "interaction": "r2p"},
    "HIGT w/o Fusion": {"model": "higt", "fusion": False},
    "ABMIL": {"model": "abmil"},
    "Mean pooling": {"model": "mean"},
    # Diagnostic, not a Table-1 row: mean pooling over the x5 REGION nodes only (each region
    # sees 2 x 2 patches, so it tells mixed from pure regions) -- shows how much of the task
    # the cross-scale features alone carry.
    "Mean pooling of x5 regions (diagnostic)": {"model": "mean", "_regions_only": True},
}
GLASS = 242


# ---------------------------------------------------------------------------- tiles
def _tissue_fraction(t: np.ndarray) -> float:
    rgb = t.astype(np.int16)
    sat = rgb.max(-1) - rgb.min(-1)
    return float(((sat > 20) & (rgb.mean(-1) < 220)).mean())


def _crops(img: np.ndarray, size: int, n: int, rng: np.random.Generator,
           min_tissue: float = 0.6) -> list[np.ndarray]:
    h, w = img.shape[:2]
    if h < size or w < size:
        from PIL import Image

        s = size / min(h, w)
        img = np.asarray(Image.fromarray(img).resize((int(w * s) + 1, int(h * s) + 1)))
        h, w = img.shape[:2]
    out, tries = [], 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        t = img[y:y + size, x:x + size]
        if _tissue_fraction(t) < min_tissue:
            continue
        t = np.rot90(t, int(rng.integers(4)))
        if rng.random() < 0.5:
            t = t[:, ::-1]
        out.append(np.ascontiguousarray(t))
    if len(out) < n:
        raise SystemExit(f"could not cut {n} tissue tiles of {size} px (got {len(out)})")
    return out


def default_tiles(size: int, n: int, rng) -> tuple[dict[str, list[np.ndarray]], str]:
    """Two tissue types from the real pixels that ship in ``sample_data/`` (see module docstring)."""
    from PIL import Image

    from napari_higt.slide import Slide

    cmu = next((p for p in (REPO / "sample_data" / "cmu-1-small-region.svs",
                            SHARED / "slides" / "cmu-1-small-region.svs") if p.exists()), None)
    lung = REPO / "sample_data" / "tcga_lung_he.png"
    if cmu is None or not lung.exists():
        raise SystemExit("real tissue not found: need sample_data/cmu-1-small-region.svs and "
                         "sample_data/tcga_lung_he.png (or pass --tiles DIR)")
    with Slide(cmu) as s:
        w, h = s.dimensions
        a_img = s.read_region((0, 0), 0, (w, h))
    b_img = np.asarray(Image.open(lung).convert("RGB"))
    return ({"A": _crops(a_img, size, n, rng), "B": _crops(b_img, size, n, rng)},
            f"A = {cmu.name} crops, B = {lung.name} crops")


def folder_tiles(root: Path, size: int, n: int, rng) -> tuple[dict[str, list[np.ndarray]], str]:
    """The first two class sub-folders of an ImageFolder tree."""
    from PIL import Image

    classes = sorted(p for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise SystemExit(f"{root} needs at least two class sub-folders")
    out = {}
    for key, d in zip("AB", classes[:2]):
        files = sorted(f for f in d.rglob("*") if f.suffix.lower() in
                       (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"))
        if not files:
            raise SystemExit(f"no images in {d}")
        pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
        tiles = []
        for i in pick:
            im = Image.open(files[i]).convert("RGB").resize((size, size))
            tiles.append(np.asarray(im))
        out[key] = tiles
    return out, f"A = {classes[0].name}, B = {classes[1].name} (from {root})"


# ---------------------------------------------------------------------------- layouts
_NB8 = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]


def clustered_layout(g: int, k: int, rng) -> np.ndarray:
    """G x G bool, ``k`` B cells in one or two contiguous blobs (grown 4-connected)."""
    m = np.zeros((g, g), bool)
    n_blobs = int(rng.integers(1, 3))
    sizes = [k // n_blobs + (1 if i < k % n_blobs else 0) for i in range(n_blobs)]
    for size in sizes:
        for _ in range(100):
            y, x = rng.integers(1, g - 1, size=2)
            if not m[max(0, y - 2):y + 3, max(0, x - 2):x + 3].any():
                break
        blob = {(int(y), int(x))}
        while len(blob) < size:
            cy, cx = list(blob)[rng.integers(len(blob))]
            dy, dx = [(0, 1), (1, 0), (0, -1), (-1, 0)][rng.integers(4)]
            ny, nx = cy + dy, cx + dx
            if 0 <= ny < g and 0 <= nx < g and not m[ny, nx]:
                blob.add((ny, nx))
        for y, x in blob:
            m[y, x] = True
    return m


def scattered_layout(g: int, k: int, rng) -> np.ndarray:
    """G x G bool, ``k`` isolated B cells (no two are 8-neighbours)."""
    for _ in range(1000):
        m = np.zeros((g, g), bool)
        cells = rng.permutation(g * g)
        for c in cells:
            y, x = divmod(int(c), g)
            if any(0 <= y + dy < g and 0 <= x + dx < g and m[y + dy, x + dx] for dx, dy in _NB8):
                continue
            m[y, x] = True
            if m.sum() == k:
                return m
    raise SystemExit(f"cannot scatter {k} isolated cells on a {g} x {g} grid")


def b_count_range(task: str, g: int) -> tuple[int, int]:
    """Inclusive range of B units per slide, the same in both classes: B patches (``patch``)
    or x5 regions holding one B patch (``region``) on a ``g`` x ``g`` grid."""
    if task == "patch":
        return max(3, g * g // 12), max(4, g * g // 7)
    # out of (g/2)^2 regions; scattered must still fit them apart
    return max(2, (g // 2) ** 2 // 9), max(3, (g // 2) ** 2 // 5)


def slide_layout(task: str, label: str, g: int, k: int, rng) -> np.ndarray:
    """G x G bool, True where tissue B goes: ``k`` B units arranged as ``label`` says
    (``clustered`` | ``scattered``); see the module docstring for the two tasks."""
    make = clustered_layout if label == "clustered" else scattered_layout
    if task == "patch":
        return make(g, k, rng)
    lay = np.zeros((g, g), bool)
    for ry, rx in zip(*np.nonzero(make(g // 2, k, rng))):
        dy, dx = rng.integers(0, 2, size=2)
        lay[2 * ry + dy, 2 * rx + dx] = True
    return lay


def mosaic_rgb(layout: np.ndarray, tiles, size: int, rng, margin: int = 2) -> np.ndarray:
    """RGB of a mosaic: a tile of A in every cell of the grid, of B where ``layout`` says, on
    ``margin`` cells of glass."""
    g = layout.shape[0]
    n = g + 2 * margin
    rgb = np.full((n * size, n * size, 3), GLASS, np.uint8)
    for y in range(g):
        for x in range(g):
            pool = tiles["B"] if layout[y, x] else tiles["A"]
            t = pool[rng.integers(len(pool))]
            yy, xx = (y + margin) * size, (x + margin) * size
            rgb[yy:yy + size, xx:xx + size] = t
    return rgb


def build_slide(path: Path, layout: np.ndarray, tiles, size: int, rng, margin: int = 2) -> None:
    from napari_higt.slide.writer import write_pyramidal_tiff

    write_pyramidal_tiff(path, mosaic_rgb(layout, tiles, size, rng, margin), mpp=1.0, tile=256,
                         min_size=256, compression="jpeg", quality=90)


def regions_only(ds):
    """The dataset with each slide reduced to its x5 region nodes, presented as the patch
    level (what the MIL baselines read)."""
    import torch
    from torch_geometric.data import Data

    from napari_higt.training.dataset import SlideGraphDataset

    graphs = []
    for i in range(len(ds)):
        g = ds[i]
        m = g.level == 1
        n = int(m.sum())
        graphs.append(Data(x=g.x[m], level=torch.full((n,), 2, dtype=torch.long),
                           parent_index=torch.zeros(n, dtype=torch.long), pos=g.pos[m],
                           edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=n))
    return SlideGraphDataset.from_graphs(graphs, ds.y, ds.class_names, ds.slide_ids)


# ---------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiles", type=Path, help="ImageFolder of labelled tiles (first two classes)")
    ap.add_argument("--quick", action="store_true",
                    help="small smoke run: 20 slides, 8 x 8 grid, 3 folds, 8 epochs, one seed, "
                         "HIGT / ABMIL / mean only")
    ap.add_argument("--slides", type=int, default=40, help="slides (half per class; 40)")
    ap.add_argument("--grid", type=int, default=12, help="x10 patches per side (12)")
    ap.add_argument("--patch", type=int, default=256,
                    help="patch side in px at x10 and x5 (256; the paper uses 512)")
    ap.add_argument("--task", choices=("patch", "region"), default="patch",
                    help="patch (default): B patches in blobs vs isolated, so x5 regions are "
                         "pure vs mixed; region (harder): every B patch sits alone in its x5 "
                         "region in both classes (the same bag of patches AND the same bag of "
                         "regions), only whether those regions are contiguous or apart differs")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--models", nargs="+", help="subset of: " + ", ".join(MODELS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp"))
                    / "napari-higt-mosaic", help="work folder (slides, features, runs)")
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = ap.parse_args()
    if args.quick:
        args.slides, args.grid, args.folds, args.epochs = 20, 8, 3, 8
        args.seeds = args.seeds[:1]
        args.models = args.models or ["HIGT", "ABMIL", "Mean pooling",
                                      "Mean pooling of x5 regions (diagnostic)"]
    models = {k: MODELS[k] for k in (args.models or MODELS)}

    import torch

    torch.set_num_threads(args.threads)
    from napari_higt.features.pipeline import run_slide
    from napari_higt.training.dataset import SlideGraphDataset
    from napari_higt.training.config import TrainConfig
    from napari_higt.training.engine import train_cross_validation

    t_all = time.perf_counter()
    rng = np.random.default_rng(1234)
    print("NOTE: the slide labels of this benchmark are CONSTRUCTED (arrangement of two real "
          "tissue types), not clinical labels.", flush=True)
    n_tiles = 400
    tiles, src = (folder_tiles(args.tiles, args.patch, n_tiles, rng) if args.tiles
                  else default_tiles(args.patch, n_tiles, rng))
    print(f"tiles: {src}; {len(tiles['A'])} A / {len(tiles['B'])} B tiles of {args.patch} px",
          flush=True)

    tag = (f"{args.task}_g{args.grid}_p{args.patch}_n{args.slides}_"
           f"{'tiles' if args.tiles else 'default'}")
    work = args.out / tag
    slides_dir, feat_dir = work / "slides", work / "features"
    slides_dir.mkdir(parents=True, exist_ok=True)
    g = args.grid
    k_lo, k_hi = b_count_range(args.task, g)
    rows = ["slide_id,label"]
    t = time.perf_counter()
    for i in range(args.slides):
        label = "clustered" if i % 2 == 0 else "scattered"
        k = int(rng.integers(k_lo, k_hi + 1))  # same distribution of B counts in both classes
        lay = slide_layout(args.task, label, g, k, rng)
        sid = f"mosaic_{i:03d}"
        p = slides_dir / f"{sid}.tif"
        if not p.exists():
            build_slide(p, lay, tiles, args.patch, rng)
        rows.append(f"{sid},{label}")
    (work / "labels.csv").write_text("\n".join(rows) + "\n")
    t_slides = time.perf_counter() - t
    unit = "B patches" if args.task == "patch" else "x5 regions holding one B patch"
    print(f"{args.slides} mosaic slides ({g} x {g} patches, {k_lo}-{k_hi} {unit} each) in "
          f"{t_slides:.1f} s", flush=True)

    t = time.perf_counter()
    counts = []
    for p in sorted(slides_dir.glob("*.tif")):
        r = run_slide(p, feat_dir, "handcrafted", patch_size=args.patch, num_threads=1)
        counts.append(r.counts)
    t_feat = time.perf_counter() - t
    c0 = counts[0]
    print(f"pipeline (tiling + handcrafted features, 3 levels): {t_feat:.1f} s; nodes per slide "
          f"~ thumbnail {c0.get('thumbnail')}, x5 {c0.get('x5')}, x10 {c0.get('x10')}", flush=True)

    t = time.perf_counter()
    ds = SlideGraphDataset.from_folder(feat_dir, work / "labels.csv")
    t_graph = time.perf_counter() - t
    print(f"graphs: {ds.summary()} in {t_graph:.1f} s", flush=True)

    table = []
    for name, mcfg in models.items():
        t = time.perf_counter()
        mcfg = dict(mcfg)
        data = regions_only(ds) if mcfg.pop("_regions_only", False) else ds
        cfg = TrainConfig(model={**mcfg, "hidden": args.hidden}, epochs=args.epochs, lr=args.lr,
                          folds=args.folds, seeds=list(args.seeds), device="cpu",
                          save_checkpoints=False)
        res = train_cross_validation(data, cfg)
        s = res.summary()
        row = {"model": name, "auc": s["auc"], "acc": s["acc"], "last_auc": s["last_auc"],
               "seed_auc": {k: v["auc"] for k, v in s["per_seed"].items()},
               "seed_spread_std": s["seed_spread_auc"]["std"], "seconds": time.perf_counter() - t}
        table.append(row)
        print(f"  {name:34s} AUC {s['auc']['mean']:.3f} ± {s['auc']['std']:.3f}  "
              f"ACC {s['acc']['mean']:.3f} ± {s['acc']['std']:.3f}  "
              f"({row['seconds']:.0f} s)", flush=True)

    wall = time.perf_counter() - t_all
    print()
    print("Mosaic benchmark, CONSTRUCTED labels (clustered vs scattered tissue B inside tissue "
          f"A, same proportions), task '{args.task}'")
    print(f"{args.slides} slides, {args.folds}-fold stratified CV x seeds {args.seeds}, "
          f"{args.epochs} epochs, hidden {args.hidden}, lr {args.lr}, CPU")
    print()
    print("| model | AUC | ACC | AUC (last epoch) | per-seed AUC | seed spread (std) |")
    print("|---|---:|---:|---:|---|---:|")
    for r in table:
        per = ", ".join(f"{v:.3f}" for v in r["seed_auc"].values())
        print(f"| {r['model']} | {r['auc']['mean']:.3f} ± {r['auc']['std']:.3f} | "
              f"{r['acc']['mean']:.3f} ± {r['acc']['std']:.3f} | "
              f"{r['last_auc']['mean']:.3f} ± {r['last_auc']['std']:.3f} | {per} | "
              f"{r['seed_spread_std']:.3f} |")
    print()
    print("AUC/ACC: mean ± std over all folds of all seeds at the best epoch by validation AUC "
          "(as in the paper; optimistic); 'last epoch' is unselected.")
    print(f"wall time {wall:.0f} s (slides {t_slides:.0f} s, pipeline {t_feat:.0f} s, graphs "
          f"{t_graph:.0f} s, training {sum(r['seconds'] for r in table):.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"table": table, "args": {k: str(v) for k, v in
                                                                    vars(args).items()},
                                         "wall_s": wall}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
