"""The default protocol: the epoch is chosen without the evaluation fold, which is scored
once. A planted leak (an evaluation fold that rewards the wrong epoch) is not exploited."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_higt.inference.checkpoint import model_from_checkpoint
from napari_higt.training.bag_dataset import BagDataset
from napari_higt.training.config import TrainConfig
from napari_higt.training.engine import train_cross_validation
from napari_higt.training.folds import FOLDS_FILE, Fold, make_folds, read_folds
from napari_higt.training.metrics import auc_score

N, TEST = 60, 20


def _leaky_bags(seed: int = 0) -> BagDataset:
    """Bags whose label shifts feature 0 of every instance, except in the first TEST bags
    (the planted evaluation fold), where the shift marks the other class."""
    rng = np.random.default_rng(seed)
    y = np.arange(N) % 2
    bags = []
    for i in range(N):
        x = rng.normal(0, 1, (8, 4)).astype(np.float32)
        marked = y[i] == 1 if i >= TEST else y[i] == 0
        x[:, 0] += 1.0 * marked
        bags.append(x)
    return BagDataset.from_arrays(bags, y.tolist(), ["a", "b"],
                                  [f"b{i:02d}" for i in range(N)])


def _fold(ds: BagDataset, protocol: str) -> dict[int, list[Fold]]:
    test = np.arange(TEST)
    rest = np.arange(TEST, N)
    if protocol == "inner-val":
        val = rest[::5]  # 8 of the 40 bags choose the epoch
        return {0: [Fold(0, np.setdiff1d(rest, val), val, test)]}
    return {0: [Fold(0, rest, np.zeros(0, np.int64), test)]}


def _cfg(protocol: str) -> TrainConfig:
    return TrainConfig(model={"model": "mean", "hidden": 8, "dropout": 0.0}, epochs=15,
                       lr=5e-3, batch_size=8, seeds=[0], folds=2, protocol=protocol)


class _Spy:
    """A dataset wrapper logging every batch it hands out, between epoch events."""

    def __init__(self, ds: BagDataset):
        self.ds, self.log = ds, []

    def __getattr__(self, name):
        return getattr(self.ds, name)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        self.log.append(("item", [int(i)]))
        return self.ds[i]

    def collate(self, idx):
        self.log.append(("batch", [int(i) for i in idx]))
        return self.ds.collate(idx)

    def on_epoch(self, info) -> None:
        self.log.append(("epoch", info.epoch))


def test_the_default_protocol_does_not_exploit_a_leaky_evaluation_fold(tmp_path) -> None:
    ds = _leaky_bags()
    spy = _Spy(ds)
    honest = train_cross_validation(spy, _cfg("inner-val"), tmp_path / "honest",
                                    folds=_fold(ds, "inner-val"), callbacks=[spy]).folds[0]
    # 1. No evaluation-fold bag is read until the last epoch is over.
    last_epoch = max(i for i, (kind, _) in enumerate(spy.log) if kind == "epoch")
    touched = [i for i, (kind, idx) in enumerate(spy.log)
               if kind != "epoch" and set(idx) & set(range(TEST))]
    assert touched and min(touched) > last_epoch
    # 2. The chosen epoch is the best one on the inner validation split...
    hist = honest.history
    assert honest.protocol == "inner-val" and honest.n_select == 8
    assert honest.best_epoch == max(hist, key=lambda h: (h["val_auc"], -h["val_loss"]))["epoch"]
    # ... and the reported AUC is the evaluation fold scored with that epoch's weights.
    model = model_from_checkpoint(tmp_path / "honest" / "seed0" / "fold0" / "best.pt").eval()
    with torch.no_grad():
        probs = model(ds.collate(np.arange(TEST))).logits.softmax(-1).numpy()
    assert honest.auc == pytest.approx(auc_score(ds.y[:TEST], probs), abs=1e-6)
    assert honest.val_slide_ids == ds.slide_ids[:TEST]
    # 3. The leak: on the planted fold the trained model is wrong (it learned the real
    # relation), and the honest figure says so.
    assert honest.select_auc > 0.8 and honest.auc < 0.25
    # The optimistic protocol picks the epoch the leaky fold likes best: a higher figure.
    optimistic = train_cross_validation(ds, _cfg("eval-fold"), folds=_fold(ds, "eval-fold"),
                                        ).folds[0]
    assert optimistic.protocol == "eval-fold"
    assert optimistic.auc == pytest.approx(max(h["val_auc"] for h in optimistic.history))
    assert optimistic.auc > honest.auc + 0.1


def test_grouped_folds_are_written_and_reused(tmp_path) -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat([f"p{i}" for i in range(20)], 2)
    y = np.repeat(np.arange(20) % 2, 2)
    bags = [rng.normal(0, 1, (5, 3)).astype(np.float32) + y[i] for i in range(40)]
    ds = BagDataset.from_arrays(bags, y.tolist(), ["a", "b"], [f"s{i}" for i in range(40)],
                                groups=groups, group_column="patient")
    cfg = TrainConfig(model={"model": "abmil", "hidden": 8}, epochs=2, folds=4, seeds=[0, 1],
                      patience=1)
    first = train_cross_validation(ds, cfg, tmp_path / "a")
    doc = json.loads((tmp_path / "a" / FOLDS_FILE).read_text())
    assert doc["protocol"] == "inner-val" and doc["group_column"] == "patient"
    folds, _ = read_folds(tmp_path / "a", ds.slide_ids, groups)
    for f in folds[0] + folds[1]:
        for a, b in ((f.train, f.val), (f.train, f.test), (f.val, f.test)):
            assert not set(groups[a]) & set(groups[b])
    again = train_cross_validation(ds, cfg, tmp_path / "b", folds=folds)
    assert [f.val_slide_ids for f in again.folds] == [f.val_slide_ids for f in first.folds]
    assert [f.auc for f in again.folds] == pytest.approx([f.auc for f in first.folds])
    assert np.isfinite(first.summary()["balanced_acc"]["mean"])
    md = (tmp_path / "a" / "results.md").read_text()
    assert "validation split of its training part" in md and "Confusion matrix" in md


def test_patience_stops_early() -> None:
    ds = _leaky_bags(1)
    folds = make_folds(ds.y, None, 2, seed=0)
    cfg = TrainConfig(model={"model": "mean", "hidden": 8}, epochs=30, lr=0.3, patience=2,
                      folds=2, seeds=[0])
    res = train_cross_validation(ds, cfg, folds={0: folds})
    for f in res.folds:
        assert f.epochs_done < 30 and f.epochs_done - f.best_epoch == 2
