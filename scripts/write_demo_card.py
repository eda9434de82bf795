"""Write the model card of the bundled demo checkpoint, in place (the weights are untouched).

The demo model (``sample_data/demo_higt.pt``, made by ``scripts/train_demo_model.py``) is a
demonstration on a CONSTRUCTED task: mosaics of real tissue labelled by how tissue B is
arranged inside tissue A. Its card says so, so that the viewer, the CLI, ``report.md`` and
every figure label its predictions as a demonstration. The out-of-domain threshold is
calibrated as training calibrates it (``training/card.py``): on the feature distances of the
slides of the checkpoint's training fold, found by refitting the input standardisation on
each fold of the run's split and keeping the fold whose statistics are the checkpoint's
(an exact match, or the script stops).

    python scripts/write_demo_card.py                      # remakes the mosaics (~5 min)
    python scripts/write_demo_card.py --features DIR       # reuse their feature files

The card is also written into ``sample_data/demo_higt.json`` (key ``card``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cohort_features(work: Path) -> tuple[Path, Path]:
    """The demo mosaics (the same seed as the checkpoint's) and their handcrafted features."""
    from napari_higt.features.pipeline import preprocess_slide

    subprocess.run([sys.executable, str(REPO / "scripts" / "train_demo_model.py"), "--cohort",
                    str(work)], check=True)
    meta = json.loads((REPO / "sample_data" / "demo_higt.json").read_text())
    labels = work / "labels.csv"
    listed = {r.split(",")[0] for r in labels.read_text().splitlines()[1:]}
    for slide in sorted((work / "slides").glob("*.tif")):
        if slide.stem in listed:
            preprocess_slide(slide, work / "features", "handcrafted", mpp=meta["assumed_mpp"])
    return work / "features", labels


def training_fold(ds, ckpt: dict, n_folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, evaluation) indices of the fold whose standardisation the checkpoint holds."""
    from napari_higt.inference.domain import standardiser
    from napari_higt.models.norm import FeatureStandardizer
    from napari_higt.training.splits import make_splits

    mean, _ = standardiser(ckpt["state_dict"])
    for tr, va in make_splits(ds.y, n_folds, seed):
        fitted = FeatureStandardizer(ds.in_dim).fit(ds[int(i)].x for i in tr)
        if np.allclose(fitted.mean.double().numpy(), mean, rtol=0, atol=1e-6):
            return tr, va
    raise SystemExit("no fold of the split reproduces the checkpoint's standardisation; "
                     "were the mosaics made with another seed or tile set?")


def demo_card(features: Path, labels: Path, checkpoint: Path, meta: dict) -> dict:
    """The demo checkpoint's card: a demonstration on a constructed task.

    A checkpoint written by today's training already carries the card of its fold (domain
    threshold, protocol, metrics): those are kept and the words about the task, data and
    labels are added. An older checkpoint gets them computed here (`training_fold`).
    """
    from napari_higt.inference.card import model_card
    from napari_higt.inference.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint)
    card = model_card(ck)
    if not (card.known and card.domain):
        card = legacy_card(features, labels, ck, meta)
    cv = meta["cv"]
    card.task = ("whether tissue B is clustered or scattered inside tissue A on constructed "
                 "mosaic slides")
    base = card.training_data.split("; mosaics of")[0]  # rerunning the script: once only
    card.training_data = (f"{base}; mosaics of 256 px cells of real H&E tissue "
                          f"({meta['tiles']}) made by scripts/train_demo_model.py (seed 0)")
    card.labels = ("CONSTRUCTED: the arrangement of the tissue-B cells (clustered blobs vs "
                   "scattered single cells, same proportions); not clinical labels")
    card.scale = (f"{meta['assumed_mpp']:g} µm/px at level 0, ASSUMED: the mosaics record no "
                  "scale and the pipeline was told this value")
    card.validation = {**card.validation, "metrics": {
        **card.validation.get("metrics", {}), "cv_auc_mean": cv["auc"]["mean"],
        "cv_auc_sd": cv["auc"]["std"]},
        "selection": f"the best of {meta['train']['folds']} folds by its reported AUC "
                     f"(fold index {meta['chosen_fold']['fold']})"}
    card.demonstration = True
    return card.to_dict()


def legacy_card(features: Path, labels: Path, ck: dict, meta: dict):
    """The fold card of a checkpoint trained before cards existed (eval-fold protocol)."""
    from napari_higt.inference.card import ModelCard
    from napari_higt.inference.domain import calibrate, standardiser
    from napari_higt.training.card import PROTOCOL_TEXT, slide_distances
    from napari_higt.training.dataset import SlideGraphDataset

    train_cfg = ck["config"].get("train", {})
    ds = SlideGraphDataset.from_folder(features, labels)
    tr, va = training_fold(ds, ck, int(train_cfg.get("folds", 4)), int(train_cfg.get("seed", 0)))
    stats = standardiser(ck["state_dict"])
    chosen = meta["chosen_fold"]
    names = [str(c) for c in ck["config"]["class_names"]]
    counts = np.bincount(ds.y[tr], minlength=len(names))
    return ModelCard(
        classes=names,
        training_data=f"{len(tr)} slides ({', '.join(f'{n} {c}' for n, c in zip(counts, names))})",
        extractor=str(ck["config"].get("extractor") or "handcrafted"),
        validation={"protocol": f"eval-fold: {PROTOCOL_TEXT['eval-fold']}",
                    "metrics": {"auc": chosen["auc"], "acc": chosen["acc"]},
                    "n": len(va), "epoch": chosen["best_epoch"]},
        provenance="recorded",
        domain=calibrate(slide_distances(ds, tr, *stats), slide_distances(ds, va, *stats)))


def main() -> int:
    from napari_higt.inference.checkpoint import write_card

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "sample_data" / "demo_higt.pt")
    ap.add_argument("--meta", type=Path, default=REPO / "sample_data" / "demo_higt.json")
    ap.add_argument("--features", type=Path,
                    help="feature files of the demo mosaics (with labels.csv beside the folder)")
    args = ap.parse_args()
    meta = json.loads(args.meta.read_text())
    if args.features:
        features, labels = args.features, args.features.parent / "labels.csv"
    else:
        features, labels = cohort_features(Path(tempfile.mkdtemp(prefix="napari-higt-card-")))
    card = demo_card(features, labels, args.checkpoint, meta)
    write_card(args.checkpoint, card)
    meta["card"] = card
    args.meta.write_text(json.dumps(meta, indent=1, default=str) + "\n")
    print(json.dumps(card, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
