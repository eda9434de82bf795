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
