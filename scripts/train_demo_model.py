"""Train the bundled demo HIGT checkpoint and make the demo slide (reproducible, seed 0).

Real tissue, constructed labels: mosaic slides of two real H&E tissue types from the
project's data (A = CMU-1 sample crops, B = TCGA lung image crops; see
``benchmarks/bench_mosaic.py``), labelled by how tissue B is ARRANGED inside tissue A
("clustered" blobs vs "scattered" single patches, same proportions). The mosaics are 256 px
cells written WITHOUT a scale; the pipeline is told 2.0 µm/px (an assumed scale, so that one
cell is one x10 patch of 512 px at 1.0 µm/px), which every figure marks as assumed.

Writes, in ``sample_data/``:
    demo_mosaic.tif        a held-out "clustered" mosaic (the demo slide)
    demo_higt.pt           the checkpoint of the best cross-validation fold, with its model
                           card (a demonstration on a constructed task; scripts/write_demo_card.py)
    demo_higt.json         its configuration, the CV metrics, the card and how it was made

    python scripts/train_demo_model.py [--slides 32] [--epochs 60]
    python scripts/train_demo_model.py --cohort cohort/   # only the slides + labels.csv

``--cohort DIR`` writes the same mosaic slides to ``DIR/slides/`` and ``DIR/labels.csv`` and
stops: the small cohort of ``docs/tutorial.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_mosaic import (  # noqa: E402
    clustered_layout,
    default_tiles,
    folder_tiles,
    mosaic_rgb,
    scattered_layout,
)

DEMO_MPP = 2.0  # assumed: one 256 px cell = one 512 px x10 patch
CELL = 256


def main() -> int:
    from napari_higt.features.pipeline import preprocess_slide
    from napari_higt.slide.writer import write_pyramidal_tiff
    from napari_higt.training.dataset import SlideGraphDataset
    from napari_higt.training.config import TrainConfig
    from napari_higt.training.engine import train_cross_validation

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slides", type=int, default=32)
    ap.add_argument("--grid", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=REPO / "sample_data")
    ap.add_argument("--cohort", type=Path, help="write the slides and labels.csv here, then stop")
    ap.add_argument("--tiles", type=Path,
                    help="tissue A and B from the first two class sub-folders of this "
                         "ImageFolder tree (default: the real tissue in sample_data/)")
    args = ap.parse_args()
    t0 = time.time()
    rng = np.random.default_rng(0)
    tiles, source = (folder_tiles(args.tiles, CELL, 120, rng) if args.tiles
                     else default_tiles(CELL, 120, rng))
    work = args.cohort or Path(tempfile.mkdtemp(prefix="napari-higt-demo-"))
    (work / "slides").mkdir(parents=True, exist_ok=True)
    rows = ["slide_id,label"]
    g = args.grid
    for i in range(args.slides + 1):
        label = "clustered" if i % 2 == 0 else "scattered"
        k = int(rng.integers(5, 9))
        layout = (clustered_layout if label == "clustered" else scattered_layout)(g, k, rng)
        path = work / "slides" / f"mosaic_{i:02d}.tif"
        write_pyramidal_tiff(path, mosaic_rgb(layout, tiles, CELL, rng, margin=1), mpp=None,
                             tile=256, min_size=256)
        if i == args.slides:  # held out: the demo slide
            demo_slide = path
            continue
        if not args.cohort:
            preprocess_slide(path, work / "features", "handcrafted", mpp=DEMO_MPP)
        rows.append(f"{path.stem},{label}")
    (work / "labels.csv").write_text("\n".join(rows) + "\n")
    if args.cohort:
        print(f"wrote {args.slides} mosaic slides ({DEMO_MPP} µm/px, not recorded in the "
              f"files) to {work / 'slides'} and their labels to {work / 'labels.csv'}; "
              f"held out: {demo_slide.name}")
        return 0
    ds = SlideGraphDataset.from_folder(work / "features", work / "labels.csv")
    cfg = TrainConfig(model={"model": "higt", "hidden": 32, "n_blocks": 2},
                      epochs=args.epochs, lr=1e-3, batch_size=4, folds=args.folds,
                      seeds=[0], device="cpu")
    result = train_cross_validation(ds, cfg, work / "run", title="demo HIGT")
    best = max(result.folds, key=lambda f: (f.auc, f.acc))
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(best.best_checkpoint, args.out / "demo_higt.pt")
    shutil.copy(demo_slide, args.out / "demo_mosaic.tif")
    summary = result.summary()
    meta = {
        "what": "HIGT trained on mosaic slides of real tissue with CONSTRUCTED labels "
                "(arrangement of tissue B inside tissue A); not a clinical model",
        "tiles": source,
        "slides": args.slides, "grid": g, "classes": ds.class_names,
        "assumed_mpp": DEMO_MPP, "extractor": "handcrafted",
        "train": {"epochs": args.epochs, "folds": args.folds, "lr": cfg.lr,
                  "model": cfg.model},
        "cv": summary,
        "chosen_fold": {"fold": best.fold, "auc": best.auc, "acc": best.acc,
                        "best_epoch": best.best_epoch},
        "demo_slide": {"file": "demo_mosaic.tif", "label": "clustered"},
        "command": "python scripts/train_demo_model.py",
        "seconds": round(time.time() - t0, 1),
    }
    from write_demo_card import demo_card  # noqa: E402  (scripts/ is on sys.path)

    from napari_higt.inference.checkpoint import write_card

    meta["card"] = demo_card(work / "features", work / "labels.csv", args.out / "demo_higt.pt",
                             meta)
    write_card(args.out / "demo_higt.pt", meta["card"])  # a demonstration on a constructed task
    (args.out / "demo_higt.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    print(result.markdown("demo HIGT (constructed labels)"))
    print(f"wrote {args.out / 'demo_higt.pt'}, {args.out / 'demo_mosaic.tif'} "
          f"in {meta['seconds']} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
