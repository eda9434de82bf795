"""k-fold cross-validation of a slide classifier (no Qt; CLI and widgets share it).

``train_cross_validation(dataset, config, out_dir, callbacks=..., cancel=...) -> CVResult``
trains one model per (seed, fold) with `training.fold.train_fold`: Adam, slide batches via
PyG batching, cross-entropy with optional class weights, gradient clipping, AMP on CUDA;
after every epoch the validation fold is scored (AUC, ACC) and the best epoch (highest
validation AUC, ties -> lower loss) is kept. Checkpoints ``best.pt`` and ``last.pt`` per fold
(layout in `training.runs`); ``resume=True`` continues from the last completed epoch and
gives the same metrics as an uninterrupted run, because nothing random depends on the
history (`training.loop`).

Under ``torchrun`` (``torch.distributed`` initialised) every batch of slides is split over
the ranks and the model is wrapped in ``DistributedDataParallel``; the per-rank loss is
scaled so that the averaged gradient is exactly the gradient of the single-process batch
loss (same losses as one process on the same data). Every rank evaluates the whole
validation fold; rank 0 writes the files and calls the callbacks.

Reported metrics (``config.protocol``): by default each fold's epoch is chosen on a
validation split of its training part, grouped like the folds, and the evaluation fold is
scored once with that epoch's weights. ``protocol="eval-fold"`` chooses the best epoch on the
evaluation fold it is reported on (as in the HIGT paper and most MIL work), which is
optimistic. The metrics of the last epoch are reported beside them, unselected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from napari_higt.errors import Cancelled, CheckpointError
from napari_higt.inference.checkpoint import config_differences
from napari_higt.training import runs
from napari_higt.training.callbacks import CancelToken, FoldInfo, dispatch
from napari_higt.training.config import TrainConfig
from napari_higt.training.distributed import DistContext
from napari_higt.training.fold import train_fold
from napari_higt.training.results import CVResult, FoldResult, strict_json
from napari_higt.training.folds import FOLDS_FILE, Fold, cv_folds, write_folds

__all__ = ["train_cross_validation"]


def _check_run_folder(out: Path, run: dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Refuse to mix this run into a folder holding another one."""
    rj = out / runs.RUN_FILE
    if not rj.is_file() or (overwrite and not resume):
        return
    try:
        prev = json.loads(rj.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{rj} is unreadable ({exc}), so the run in {out} cannot be checked or resumed; "
            "pass --overwrite to start it again, or choose another --out folder") from None
    if not isinstance(prev, dict):
        raise CheckpointError(f"{rj} is not a run description; pass --overwrite to start the "
                              "run again, or choose another --out folder")
    if resume:
        diffs = config_differences({k: prev.get(k) for k in run}, run)
        if diffs:
            raise CheckpointError(
                f"{out} holds a run with other settings or slides, so it cannot be "
                "resumed with these: " + "; ".join(diffs[:5])
                + ". Use the original settings or another --out folder")
    elif not overwrite:
        raise CheckpointError(
            f"{out} already holds a training run; pass --resume to continue it, "
            "--overwrite to start it again, or choose another --out folder")


def train_cross_validation(
    dataset: Any,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    *,
    callbacks: Sequence[Any] | None = None,
    cancel: CancelToken | Any | None = None,
    resume: bool = False,
    overwrite: bool = False,
    title: str | None = None,
    folds: dict[int, list[Fold]] | None = None,
) -> CVResult:
    """k-fold cross-validation of ``config`` on ``dataset``, repeated over ``config.seeds``.

    Folds (`training.folds.cv_folds`): ``folds`` when given (``read_folds`` of an earlier
    run), else the CSV's fold column or stratified folds grouped by ``dataset.groups``; the
    ``"inner-val"`` protocol chooses each fold's epoch on a grouped split of its training
    part and scores the evaluation fold once.

    Writes under ``out_dir`` (when given): ``run.json`` (settings, slides, splits),
    ``folds.json`` (every part of every fold, for ``--folds-from``),
    ``seed<S>/fold<K>/{best,last}.pt`` and ``result.json`` per finished fold,
    ``results.json`` and ``results.md``. A cancelled run returns the finished folds with
    ``cancelled=True`` and can be continued with ``resume=True``.

    Raises
    ------
    CheckpointError
        ``out_dir`` holds another run (without ``resume``/``overwrite``) or a run with
        other settings (with ``resume``).
    """
    from napari_higt.io import atomic_write_text

    config = config or TrainConfig()
    config.validate()
    t0 = time.perf_counter()
    dist = DistContext.current()
    out = Path(out_dir) if out_dir is not None else None
    groups = getattr(dataset, "groups", None)
    splits = cv_folds(dataset.y, groups, dataset.folds, config.folds, config.seeds,
                      config.protocol, config.val_fraction, folds)
    n_folds = len(splits[config.seeds[0]])
    ids = list(dataset.slide_ids)
    run = {
        "train": config.fingerprint(), "class_names": list(dataset.class_names),
        "slides": ids, "labels": [int(v) for v in dataset.y],
        "splits": {str(sd): [[ids[i] for i in f.test] for f in sp] for sd, sp in splits.items()},
    }
    if config.protocol == "inner-val":
        run["selection"] = {str(sd): [[ids[i] for i in f.val] for f in sp]
                            for sd, sp in splits.items()}
    if out is not None:
        _check_run_folder(out, run, resume, overwrite)
        dist.barrier()  # every rank has looked at run.json before rank 0 rewrites it
        if dist.is_main:
            atomic_write_text(out / runs.RUN_FILE,
                              json.dumps({**run, "config": asdict(config)}, indent=1))
            write_folds(out / FOLDS_FILE, ids, splits, protocol=config.protocol,
                        group_column=getattr(dataset, "group_column", None))
    results: list[FoldResult] = []
    cancelled = False
    try:
        for sd in config.seeds:
            for k, f in enumerate(splits[sd]):
                done = runs.fold_result_path(out, sd, k) if out is not None else None
                if resume and done is not None and done.is_file():
                    fr = FoldResult(**json.loads(done.read_text()))
                else:
                    fr = train_fold(dataset, f.train, f.select, config, seed=sd, fold=k,
                                    n_folds=n_folds, fold_dir=runs.fold_dir(out, sd, k)
                                    if out is not None else None, callbacks=callbacks,
                                    cancel=cancel, resume=resume, dist=dist,
                                    test_idx=f.test if len(f.val) else None)
                    if done is not None and dist.is_main:
                        atomic_write_text(done, json.dumps(fr.to_dict(), indent=1))
                results.append(fr)
                if dist.is_main:
                    dispatch(callbacks, "on_fold", FoldInfo(
                        sd, k, n_folds, fr.best_epoch, fr.auc, fr.acc, fr.last_auc, fr.last_acc,
                        fr.best_checkpoint, fr.history))
    except Cancelled:
        cancelled = True
    res = CVResult(results, list(dataset.class_names), asdict(config), n_folds, cancelled,
                   time.perf_counter() - t0, str(out) if out is not None else None)
    if out is not None and dist.is_main:
        atomic_write_text(out / runs.RESULTS_JSON,
                          json.dumps(strict_json(res.to_dict()), indent=1, default=str))
        atomic_write_text(out / runs.RESULTS_MD, res.markdown(title))
    return res
