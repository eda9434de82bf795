"""The run-folder layout and the choice of the best checkpoint of a (cancelled) run."""

import math

import pytest

from napari_higt.training.results import CVResult, FoldResult
from napari_higt.training.runs import best_checkpoint, checkpoint_path, fold_result_path


def _fold(seed, fold, auc, ckpt):
    return FoldResult(seed=seed, fold=fold, best_epoch=1, auc=auc, acc=0.5, last_auc=auc,
                      last_acc=0.5, epochs_done=1, n_train=4, n_val=2,
                      best_checkpoint=str(ckpt) if ckpt else None)


def test_layout(tmp_path):
    assert checkpoint_path(tmp_path, 2, 3) == tmp_path / "seed2" / "fold3" / "best.pt"
    assert checkpoint_path(tmp_path, 0, 1, "last") == tmp_path / "seed0" / "fold1" / "last.pt"
    assert fold_result_path(tmp_path, 1, 0) == tmp_path / "seed1" / "fold0" / "result.json"
    with pytest.raises(ValueError, match="best"):
        checkpoint_path(tmp_path, 0, 0, "final")


def test_best_checkpoint_takes_finished_and_partial_folds(tmp_path):
    paths = {}
    for sd, k in ((0, 0), (0, 1), (0, 2)):
        p = checkpoint_path(tmp_path, sd, k)
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
        paths[k] = p
    res = CVResult([_fold(0, 0, 0.7, paths[0]), _fold(0, 1, math.nan, paths[1])],
                   ["a", "b"], {}, 3, cancelled=True, out_dir=str(tmp_path))
    assert best_checkpoint(res) == (paths[0], 0.7)
    # fold 2 was cut short at a better AUC: its best.pt wins; a fold with no epoch does not
    assert best_checkpoint(res, {(0, 2): (0.9, 3)}) == (paths[2], 0.9)
    assert best_checkpoint(res, {(0, 2): (0.9, 0)}) == (paths[0], 0.7)
    paths[0].unlink()
    assert best_checkpoint(res)[0] == paths[1]
    empty = CVResult([], ["a", "b"], {}, 3, out_dir=None)
    path, auc = best_checkpoint(empty)
    assert path is None and math.isnan(auc)


def test_best_checkpoint_is_chosen_without_the_evaluation_folds(tmp_path):
    """Under the inner-validation protocol the fold whose *validation* AUC is highest wins,
    even when another fold scores higher on its evaluation slides."""
    paths = []
    for k in (0, 1):
        p = checkpoint_path(tmp_path, 0, k)
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
        paths.append(p)
    folds = [_fold(0, 0, 0.95, paths[0]), _fold(0, 1, 0.60, paths[1])]
    for f, select in zip(folds, (0.70, 0.90)):
        f.protocol, f.select_auc = "inner-val", select
    res = CVResult(folds, ["a", "b"], {}, 2, out_dir=str(tmp_path))
    assert best_checkpoint(res) == (paths[1], 0.90)
    # the labelled optimistic protocol selects on the evaluation fold, as it says
    for f in folds:
        f.protocol = "eval-fold"
    assert best_checkpoint(res) == (paths[0], 0.95)


def test_new_run_dir_and_holds_run(tmp_path):
    from datetime import datetime

    from napari_higt.training.runs import holds_run, new_run_dir

    now = datetime(2026, 1, 2, 3, 4, 5)
    first = new_run_dir(tmp_path, "higt", now)
    assert first == tmp_path / "higt-20260102-030405" and not holds_run(first)
    first.mkdir()
    assert new_run_dir(tmp_path, "higt", now) == tmp_path / "higt-20260102-030405-2"
    (first / "run.json").write_text("{}")
    assert holds_run(first)


def test_fold_rows_one_and_two_seeds(tmp_path):
    from napari_higt.training.results import fmt_metric, fold_rows

    res = CVResult([_fold(0, 0, 0.75, None), _fold(0, 1, math.nan, None)], ["a", "b"], {}, 2)
    rows = fold_rows(res)
    assert rows[0] == ("0", "1", "0.750", "0.500") and rows[1][2] == "n/a"
    assert rows[2][0] == "mean ± std" and rows[2][2].startswith("0.750 ± ")
    two = CVResult([_fold(0, 0, 0.5, None), _fold(1, 0, 0.7, None)], ["a", "b"], {}, 1)
    assert [r[0] for r in fold_rows(two)] == ["s0/0", "s1/0", "mean ± std"]
    assert fold_rows(CVResult([], ["a", "b"], {}, 2)) == []
    assert fmt_metric(None) == "n/a" and fmt_metric(0.12345, 2) == "0.12"


def test_run_progress_counts_steps_over_seeds_and_folds():
    from napari_higt.training.callbacks import EpochInfo, RunProgress, StepInfo

    events, progress = [], []
    cb = RunProgress(lambda k, i: events.append(k), lambda d, t: progress.append((d, t)),
                     n_folds=2, epochs=3, n_seeds=2)
    cb.on_step(StepInfo(seed=7, fold=0, epoch=1, step=1, steps=4, loss=0.5))
    cb.on_step(StepInfo(seed=7, fold=1, epoch=3, step=4, steps=4, loss=0.5))
    cb.on_step(StepInfo(seed=9, fold=1, epoch=3, step=4, steps=4, loss=0.5))
    cb.on_epoch(EpochInfo(9, 1, 3, 3, 0.1, 0.2, 0.5, 0.5, 1, 0.5, 1.0))
    assert progress == [(1, 48), (24, 48), (48, 48)]
    assert events == ["step", "step", "step", "epoch"]
