"""The layout of a training run folder, in one place (engine, CLI and widget read it here)::

    RUN_DIR/
      run.json                   settings, slides, splits
      results.json, results.md   every finished fold, mean ± std
      seed<S>/fold<K>/
        best.pt, last.pt         checkpoints (best validation epoch, last finished epoch)
        result.json              the fold's `FoldResult` once it finished
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

from napari_higt.training.results import CVResult

__all__ = ["RUN_FILE", "RESULTS_JSON", "RESULTS_MD", "fold_dir", "fold_checkpoint", "checkpoint_path",
           "fold_result_path", "best_checkpoint", "holds_run", "new_run_dir"]

RUN_FILE = "run.json"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
Which = Literal["best", "last"]


def fold_dir(run_dir: str | os.PathLike, seed: int, fold: int) -> Path:
    """Folder of one (seed, fold) of a run; ``fold`` is 0-based."""
    return Path(run_dir) / f"seed{int(seed)}" / f"fold{int(fold)}"


def fold_checkpoint(fold_folder: str | os.PathLike, which: Which = "best") -> Path:
    """``best.pt`` (best validation epoch) or ``last.pt`` (last finished epoch) in a fold
    folder."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    return Path(fold_folder) / f"{which}.pt"


def checkpoint_path(run_dir: str | os.PathLike, seed: int, fold: int,
                    which: Which = "best") -> Path:
    """``best.pt`` or ``last.pt`` of one (seed, fold) of a run."""
    return fold_checkpoint(fold_dir(run_dir, seed, fold), which)


def fold_result_path(run_dir: str | os.PathLike, seed: int, fold: int) -> Path:
    """``result.json`` of a finished fold (what ``resume`` skips)."""
    return fold_dir(run_dir, seed, fold) / "result.json"


def best_checkpoint(result: CVResult,
                    partial: Mapping[tuple[int, int], tuple[float, int]] | None = None,
                    ) -> tuple[Path | None, float]:
    """``(best.pt, validation AUC)`` of the fold with the highest validation AUC.

    The AUC is the one that chose the fold's epoch: under the default protocol
    (``"inner-val"``) the inner validation split's, never the evaluation fold's, so the
    checkpoint a user deploys is not picked by the slides its metrics are reported on.

    Parameters
    ----------
    result : a (possibly cancelled) run.
    partial : ``{(seed, fold): (best AUC so far, epochs done)}`` of folds that were cut
        short (by Cancel); their ``best.pt`` holds the best epoch so far and competes too.

    Returns
    -------
    ``(None, nan)`` when no checkpoint is on disk.
    """
    cands: list[tuple[float, Path]] = []
    done = set()
    for f in result.folds:
        done.add((f.seed, f.fold))
        if f.best_checkpoint and Path(f.best_checkpoint).is_file():
            auc = f.select_auc if f.protocol == "inner-val" else f.auc
            cands.append((auc if math.isfinite(auc) else -math.inf, Path(f.best_checkpoint)))
    if result.out_dir:
        for (sd, k), (auc, epoch) in (partial or {}).items():
            p = checkpoint_path(result.out_dir, sd, k, "best")
            if (sd, k) not in done and epoch >= 1 and p.is_file():
                cands.append((auc if math.isfinite(auc) else -math.inf, p))
    if not cands:
        return None, float("nan")
    auc, path = max(cands, key=lambda c: c[0])
    return path, auc


def holds_run(folder: str | os.PathLike) -> bool:
    """True when ``folder`` already holds a training run (its ``run.json``)."""
    return (Path(folder) / RUN_FILE).is_file()


def new_run_dir(parent: str | os.PathLike, model: str, now: datetime | None = None) -> Path:
    """A fresh ``<parent>/<model>-<YYYYmmdd-HHMMSS>[-n]`` folder name (not created)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    out = Path(parent) / f"{model}-{stamp}"
    n = 1
    while out.exists():
        n += 1
        out = Path(parent) / f"{model}-{stamp}-{n}"
    return out
