"""``napari-higt predict``: apply a trained checkpoint to feature files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from napari_higt.commands import arguments as A

NAME = "predict"
HELP = (
    "Predict slides with a checkpoint from `napari-higt train` (best.pt or last.pt): writes "
    "slide_id,pred,prob_<class>... to --out and the per-node scores into each feature file "
    "(group explain/) for the viewer. Every file that can be predicted is; the others are "
    "named at the end and the exit status is 1."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", type=A.existing_file,
                        help="best.pt / last.pt of a run")
    parser.add_argument("features", nargs="+", metavar="FEATURES",
                        help=".h5 feature files or .pt bags (or folders of them)")
    parser.add_argument("--out", required=True, metavar="PREDS.csv", help="predictions CSV")
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda:0 ...")
    parser.add_argument("--no-scores", action="store_true",
                        help="do not write node scores into the feature files")


def feature_paths(items: list[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The ``.h5`` / ``.pt`` files named (folders expanded) and the names that are not
    there."""
    paths: list[Path] = []
    missing: list[tuple[Path, str]] = []
    for f in items:
        p = Path(f).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in (".h5", ".pt")
                           and not q.name.startswith("."))
            if not found:
                missing.append((p, "a folder without .h5 or .pt feature files"))
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            missing.append((p, "no such file"))
    return paths, missing


def run(args: argparse.Namespace) -> int:
    from napari_higt.errors import FeatureError
    from napari_higt.io import writable_folder

    paths, failed = feature_paths(args.features)
    if not paths:
        raise FeatureError("no feature file to predict: " + "; ".join(
            f"{p}: {why}" for p, why in failed))
    out = Path(args.out)
    writable_folder(out.parent if str(out.parent) else ".", "the folder of --out")

    from tqdm.auto import tqdm

    from napari_higt.errors import UserFacingError
    from napari_higt.inference.checkpoint import load_checkpoint
    from napari_higt.inference.predict import (
        predict_slides,
        write_prediction_scores,
        write_predictions_csv,
    )

    ck = load_checkpoint(args.checkpoint)
    bar = tqdm(total=len(paths), desc="slides", unit="slide")

    def progress(done: int, total: int) -> None:
        bar.n = done
        bar.refresh()

    def on_error(path: Path, exc: UserFacingError) -> None:
        failed.append((path, str(exc)))

    from napari_higt.inference.bags import is_bag_file, predict_bags

    bags = [p for p in paths if is_bag_file(p)]  # no coordinates: no graph, no node scores
    graphs = [p for p in paths if p not in bags]
    try:
        preds = predict_slides(ck, graphs, device=args.device, write_scores=False,
                               progress=progress, on_error=on_error,
                               source=str(args.checkpoint)) if graphs else []
        preds += predict_bags(ck, bags, device=args.device, on_error=on_error) if bags else []
    finally:
        bar.close()
    classes = [str(c) for c in ck["config"]["class_names"]]
    if preds:
        # the CSV first: a file's explain/ group is never rewritten without its CSV row
        write_predictions_csv(out, preds, classes)
    scored = 0
    for p in [q for q in preds if q.graph is not None] if not args.no_scores else []:
        try:
            write_prediction_scores(p, ck["config"], str(args.checkpoint))
            scored += 1
        except UserFacingError as exc:
            failed.append((Path(p.path), f"predicted, but its node scores were not written: "
                                         f"{exc}"))
    from napari_higt.inference.card import model_card, prediction_text

    card = model_card(ck)
    print(card.headline())
    for p in preds:
        print(f"{p.slide_id}: {prediction_text(p.pred, p.probs[p.pred], card)}")
        for w in p.warnings:
            print(f"  WARNING: {w}")
    print(f"{len(preds)} slide(s) -> {out if preds else 'no CSV written'}"
          + ("" if args.no_scores else f"; node scores written to {scored} file(s)' explain/ "
             "group"))
    for path, why in failed:
        msg = why if str(path) in why else f"{path}: {why}"
        print(f"napari-higt predict: error: {' '.join(msg.split())}", file=sys.stderr)
    if failed:
        n_bad = len({str(p) for p, _ in failed})
        print(f"napari-higt predict: {n_bad} file(s) failed (named above), {len(preds)} "
              "predicted", file=sys.stderr)
    return 1 if failed else 0
