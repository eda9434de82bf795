"""Slide classification on a real labelled cohort of bags: every MIL model that reads bags,
beside a plain floor, on the same grouped folds, with the default (inner-validation) protocol.

A cohort folder holds ``features/<slide_id>.pt`` (or ``.h5``) bags and ``labels.csv`` with
``slide_id,<group>,label`` (default: the TCGA NSCLC HIPT cohort, LUAD vs LUSC, grouped by
``case_id``). For every seed: 5 outer folds stratified and grouped by case; inside each, a
grouped validation split of the training part chooses the epoch (early stopping) and the
outer fold is scored once. The floor, on the same folds: each bag's mean feature,
standardised, logistic regression fitted on the whole non-test part (no epoch to choose).

    python benchmarks/bench_cohort.py                       # the full run (README table)
    python benchmarks/bench_cohort.py --subset 200 --models abmil --seeds 0 --epochs 3
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / torch load their thread pools

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_COHORT = REPO.parent / "shared" / "data" / "cohorts" / "tcga-nsclc-hipt"
MODELS = ("abmil", "mean", "clam_sb", "dsmil", "transmil")


def subset(ds, n: int, seed: int = 0):
    """About ``n`` slides of whole groups drawn at random (for quick runs while developing)."""
    from napari_higt.training.bag_dataset import BagDataset

    rng = np.random.default_rng(seed)
    groups = ds.groups if ds.groups is not None else np.arange(len(ds))
    keep, chosen = [], set()
    for g in rng.permutation(np.unique(groups)):
        if len(keep) >= n:
            break
        chosen.add(g)
        keep.extend(np.flatnonzero(groups == g).tolist())
    keep = sorted(keep)
    bags = [ds.x[ds.offsets[i]:ds.offsets[i + 1]].numpy() for i in keep]
    return BagDataset.from_arrays(bags, ds.y[keep].tolist(), ds.class_names,
                                  [ds.slide_ids[i] for i in keep], groups=groups[keep],
                                  group_column=ds.group_column)


def floor_scores(ds, folds) -> list[dict]:
    """Mean feature per bag, standardised, logistic regression; one row per (seed, fold)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from napari_higt.training.metrics import classification_metrics

    sizes = np.diff(ds.offsets)
    sums = np.add.reduceat(ds.x.numpy().astype(np.float64), ds.offsets[:-1], axis=0)
    means = sums / sizes[:, None]
    rows = []
    for sd, fs in folds.items():
        for f in fs:
            t0 = time.perf_counter()
            fit = np.concatenate([f.train, f.val])
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            clf.fit(means[fit], ds.y[fit])
            m = classification_metrics(ds.y[f.test], clf.predict_proba(means[f.test]))
            rows.append({"seed": sd, "fold": f.index, **m, "seconds": time.perf_counter() - t0,
                         "epochs": 0})
    return rows


class _EpochClock:
    """Counts epochs and their seconds (the training and validation of one epoch)."""

    def __init__(self):
        self.epochs, self.seconds = 0, 0.0

    def on_epoch(self, info) -> None:
        self.epochs += 1
        self.seconds += info.seconds


def model_scores(ds, folds, name: str, args) -> tuple[list[dict], float]:
    """Train ``name`` on every (seed, fold); rows like :func:`floor_scores`, epochs/s."""
    from napari_higt.training.config import TrainConfig
    from napari_higt.training.engine import train_cross_validation

    cfg = TrainConfig(model={"model": name}, epochs=args.epochs, lr=args.lr,
                      weight_decay=args.weight_decay, batch_size=args.batch_size,
                      seeds=list(folds), folds=args.folds, patience=args.patience,
                      protocol="inner-val", device="cpu", save_checkpoints=False,
                      eval_batch_size=64)  # scoring in larger batches: same numbers, faster
    clock = _EpochClock()
    res = train_cross_validation(ds, cfg, folds=folds, callbacks=[clock])
    rows = [{"seed": f.seed, "fold": f.fold, "auc": f.auc, "acc": f.acc,
             "balanced_acc": f.balanced_acc, "f1": f.f1, "seconds": f.seconds,
             "epochs": f.epochs_done, "best_epoch": f.best_epoch} for f in res.folds]
    return rows, clock.epochs / max(clock.seconds, 1e-9)


def _ms(values) -> str:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.3f} ± {sd:.3f}" if len(v) else "n/a"


def table(results: dict[str, tuple[list[dict], float | None]]) -> str:
    """The Markdown table (mean ± sd over folds and seeds)."""
    lines = ["| model | AUC | balanced accuracy | macro F1 | s / fold | epochs / s | epochs "
             "(chosen) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, (rows, eps) in results.items():
        ep = ("–" if eps is None else
              f"{np.mean([r['epochs'] for r in rows]):.1f} ({np.mean([r['best_epoch'] for r in rows]):.1f})")
        lines.append(f"| {name} | {_ms(r['auc'] for r in rows)} | "
                     f"{_ms(r['balanced_acc'] for r in rows)} | {_ms(r['f1'] for r in rows)} | "
                     f"{np.mean([r['seconds'] for r in rows]):.1f} | "
                     f"{'–' if eps is None else f'{eps:.2f}'} | {ep} |")
    return "\n".join(lines)


def margins(results, floor_name: str) -> list[str]:
    """Per model: mean ± sd over (seed, fold) of its AUC minus the floor's on the same fold."""
    floor = {(r["seed"], r["fold"]): r["auc"] for r in results[floor_name][0]}
    out = []
    for name, (rows, _) in results.items():
        if name == floor_name:
            continue
        d = [r["auc"] - floor[(r["seed"], r["fold"])] for r in rows]
        out.append(f"{name}: AUC - floor = {_ms(d)} (paired over folds)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cohort", nargs="?", type=Path, default=DEFAULT_COHORT,
                   help="folder with features/ and labels.csv (default: the NSCLC HIPT cohort)")
    p.add_argument("--group-column", default="case_id")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=25, help="at most (default 25)")
    p.add_argument("--patience", type=int, default=5, help="early stop after N epochs (5)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--subset", type=int, metavar="N", help="about N slides (whole groups)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared 2-core machine a second thread "
                        "contends with the other jobs)")
    p.add_argument("--md", type=Path, help="also write the table to this Markdown file")
    args = p.parse_args(argv)

    import torch

    from napari_higt.training.bag_dataset import BagDataset
    from napari_higt.training.folds import make_folds

    torch.set_num_threads(args.threads)
    if not (args.cohort / "labels.csv").is_file():
        print(f"bench_cohort: no cohort at {args.cohort} (features/ and labels.csv)",
              file=sys.stderr)
        return 1
    t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    ds = BagDataset.from_folder(args.cohort / "features", args.cohort / "labels.csv",
                                group_column=args.group_column)
    load_s = time.perf_counter() - t0
    if args.subset:
        ds = subset(ds, args.subset)
    folds = {sd: make_folds(ds.y, ds.groups, args.folds, sd, "inner-val") for sd in args.seeds}
    print(f"{args.cohort.name}: {ds.summary()}; {len(np.unique(ds.groups))} groups "
          f"({args.group_column}); loaded in {load_s:.1f} s; {args.folds} folds x seeds "
          f"{args.seeds}; torch threads {args.threads}", flush=True)
    results: dict[str, tuple[list[dict], float | None]] = {}
    floor = "floor: mean feature + logistic regression"
    results[floor] = (floor_scores(ds, folds), None)
    print("  " + table({floor: results[floor]}).splitlines()[-1], flush=True)
    for name in args.models:
        tm = time.perf_counter()
        results[name] = model_scores(ds, folds, name, args)
        row = table({name: results[name]}).splitlines()[-1]  # kept in the log as it comes
        print(f"  {name}: {time.perf_counter() - tm:.0f} s  {row}", flush=True)
    md = table(results)
    wall = time.perf_counter() - t0
    chosen = [f"{name}: chosen epoch per (seed, fold) "
              + " ".join(str(r["best_epoch"]) for r in rows)
              for name, (rows, eps) in results.items() if eps is not None]
    notes = margins(results, floor) + chosen + [
        f"protocol: epoch chosen on a grouped validation split (20 % of each training part, "
        f"early stop after {args.patience} epochs, at most {args.epochs}); outer fold scored "
        f"once. Adam lr {args.lr}, weight decay {args.weight_decay}, batch {args.batch_size} "
        f"bags. Wall time {wall / 60:.1f} min (CPU time of this process "
        f"{(time.process_time() - c0) / 60:.1f} min), torch threads {args.threads}, "
        f"{os.cpu_count()} cores, load average {load0:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end (other jobs on the machine)."]
    print("\n" + md + "\n\n" + "\n".join(notes))
    if args.md:
        args.md.write_text(md + "\n\n" + "\n".join(notes) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
