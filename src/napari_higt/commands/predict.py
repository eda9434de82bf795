"""``napari-higt predict``: apply a trained checkpoint to feature files."""

from __future__ import annotations

import argparse

NAME = "predict"
HELP = (
    "Predict slides with a checkpoint from `napari-higt train` (best.pt or last.pt): writes "
    "slide_id,pred,prob_<class>... to --out and the per-node scores into each feature file "
    "(group explain/) for the viewer."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="best.pt / last.pt of a run")
    parser.add_argument("features", nargs="+", metavar="FEATURES",
                        help=".h5 feature files or .pt bags (or folders of them)")
    parser.add_argument("--out", required=True, metavar="PREDS.csv", help="predictions CSV")
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda:0 ...")
    parser.add_argument("--no-scores", action="store_true",
                        help="do not write node scores into the feature files")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm.auto import tqdm

    from napari_higt.errors import FeatureError
    from napari_higt.inference.checkpoint import load_checkpoint
    from napari_higt.inference.predict import predict_slides, write_predictions_csv

    paths: list[Path] = []
    for f in args.features:
        p = Path(f)
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in (".h5", ".pt")
                            and not q.name.startswith("."))
        else:
            paths.append(p)
    if not paths:
        raise FeatureError(f"no .h5 or .pt feature files in {args.features}")
    ck = load_checkpoint(args.checkpoint)
    bar = tqdm(total=len(paths), desc="slides", unit="slide")

    def progress(done: int, total: int) -> None:
        bar.n = done
        bar.refresh()

    from napari_higt.inference.bags import is_bag_file, predict_bags

    bags = [p for p in paths if is_bag_file(p)]  # no coordinates: no graph, no node scores
    graphs = [p for p in paths if p not in bags]
    try:
        preds = predict_slides(ck, graphs, device=args.device, write_scores=not args.no_scores,
                               progress=progress, source=str(args.checkpoint)) if graphs else []
        preds += predict_bags(ck, bags, device=args.device) if bags else []
    finally:
        bar.close()
    classes = [str(c) for c in ck["config"]["class_names"]]
    write_predictions_csv(args.out, preds, classes)
    for p in preds:
        print(f"{p.slide_id}: {p.pred} ({p.probs[p.pred]:.3f})")
    print(f"{len(preds)} slide(s) -> {args.out}"
          + ("" if args.no_scores else "; node scores written to each file's explain/ group"))
    return 0
