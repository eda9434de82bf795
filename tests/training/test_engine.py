"""Training loop, cross-validation, checkpoints, resume and cancel on tiny synthetic graphs."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from napari_higt.errors import CheckpointError, UserFacingError
from napari_higt.training.callbacks import CancelToken
from napari_higt.inference.checkpoint import load_checkpoint, model_from_checkpoint
from napari_higt.training.config import TrainConfig
from napari_higt.training.engine import train_cross_validation
from napari_higt.training.splits import make_splits
from napari_higt.training.metrics import accuracy, auc_score
from tests.training.conftest import TINY


def _cfg(**kw) -> TrainConfig:
    # The engine's mechanics on the classic protocol (epoch chosen on the evaluation fold);
    # the default, inner-validation protocol is tested in test_protocol.py.
    base = dict(model={"model": "higt", **TINY}, epochs=4, lr=5e-3, folds=2, seeds=[0],
                protocol="eval-fold")
    base.update(kw)
    return TrainConfig(**base)


def test_metrics():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    assert auc_score(y, p) == 1.0 and accuracy(y, p) == 1.0
    assert np.isnan(auc_score(np.array([1, 1]), p[:2]))
    y3 = np.array([0, 1, 2, 2])
    p3 = np.eye(3)[[0, 1, 2, 2]] * 0.8 + 0.2 / 3
    assert auc_score(y3, p3) == 1.0
    # a class absent from the fold is left out of the macro average, not an error
    assert auc_score(np.array([0, 0, 1]), np.eye(3)[[0, 0, 1]]) == 1.0


def test_splits_stratified_and_csv_folds():
    y = np.array([0] * 6 + [1] * 4)
    sp = make_splits(y, 2, seed=1)
    assert len(sp) == 2
    for tr, va in sp:
        assert set(tr) | set(va) == set(range(10)) and not set(tr) & set(va)
        assert np.bincount(y[va]).tolist() == [3, 2]
    assert [len(v) for _, v in make_splits(y, 2, seed=0, folds=np.array([0, 1] * 5))] == [5, 5]
    with pytest.raises(UserFacingError, match="at least 5 slides per class"):
        make_splits(y, 5, seed=0)


def test_training_reaches_high_auc_quickly():
    from napari_higt.training.dataset import SlideGraphDataset
    from tests.training._synth import make_graphs

    ds = SlideGraphDataset.from_graphs(*make_graphs(36, seed=0))
    t = time.perf_counter()
    cfg = _cfg(model={"model": "higt", **TINY, "hidden": 32, "gnn_dropout": 0.0}, epochs=12,
               folds=3)
    res = train_cross_validation(ds, cfg)
    s = res.summary()
    assert time.perf_counter() - t < 60
    assert s["auc"]["mean"] > 0.9, res.markdown()
    assert len(res.folds) == 3 and not res.cancelled
    assert all(1 <= f.best_epoch <= 12 and len(f.history) == 12 for f in res.folds)


def test_results_files_and_checkpoints(synth_dataset, tmp_path):
    res = train_cross_validation(synth_dataset, _cfg(epochs=2), tmp_path / "run")
    run = tmp_path / "run"
    data = json.loads((run / "results.json").read_text())
    assert data["class_names"] == ["benign", "tumour"] and len(data["folds"]) == 2
    assert "auc" in data["summary"] and "seed_spread_auc" in data["summary"]
    md = (run / "results.md").read_text()
    assert "| seed | fold |" in md and "mean ± std" in md
    for k in range(2):
        for name in ("best.pt", "last.pt"):
            ck = load_checkpoint(run / "seed0" / f"fold{k}" / name)
            assert ck["config"]["class_names"] == ["benign", "tumour"]
            assert ck["config"]["model"]["in_dim"] == synth_dataset.in_dim
            json.dumps(ck["config"])  # JSON-able
        m = model_from_checkpoint(run / "seed0" / f"fold{k}" / "best.pt")
        assert m(synth_dataset[0]).logits.shape == (1, 2)
    # a second run into the same folder is refused unless told
    with pytest.raises(CheckpointError, match="--resume"):
        train_cross_validation(synth_dataset, _cfg(epochs=2), run)
    assert res.folds[0].best_checkpoint.endswith("best.pt")


def test_checkpoint_loads_weights_only_and_refuses_foreign_files(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(CheckpointError, match="not a napari-higt classifier"):
        load_checkpoint(bad)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "napari-higt-classifier", "obj": object()}, evil)
    with pytest.raises(CheckpointError, match="holds Python objects") as ei:
        load_checkpoint(evil)
    assert "weights_only" not in str(ei.value)  # never advise loading it unsafely
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "trunc.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_cancel_stops_within_one_step_and_leaves_usable_checkpoint(synth_dataset, tmp_path):
    token = CancelToken()
    seen = []

    class StopAt:
        def on_step(self, info):
            seen.append((info.epoch, info.step))
            if len(seen) == 2:  # from "the GUI thread" in the middle of epoch 1
                token.cancel()

    res = train_cross_validation(synth_dataset, _cfg(epochs=5, batch_size=4), tmp_path / "run",
                                 callbacks=[StopAt()], cancel=token)
    assert res.cancelled and res.folds == []
    assert len(seen) == 2  # not one step more
    last = tmp_path / "run" / "seed0" / "fold0" / "last.pt"
    ck = load_checkpoint(last)
    assert ck["state"]["epoch"] == 0  # no epoch completed: the initial weights
    model = model_from_checkpoint(ck)
    assert torch.isfinite(model(synth_dataset[0]).logits).all()
    assert "cancelled" in (tmp_path / "run" / "results.md").read_text()


def test_resume_gives_same_metrics_as_uninterrupted(synth_dataset, tmp_path):
    cfg = _cfg(epochs=4, batch_size=6)
    full = train_cross_validation(synth_dataset, cfg, tmp_path / "a")

    token = CancelToken()
    n = [0]

    class StopInEpoch3OfFold2:
        def on_step(self, info):
            if info.fold == 1 and info.epoch == 3:
                n[0] += 1
                if n[0] == 1:
                    token.cancel()

    part = train_cross_validation(synth_dataset, cfg, tmp_path / "b", cancel=token,
                                  callbacks=[StopInEpoch3OfFold2()])
    assert part.cancelled and len(part.folds) == 1
    ck = load_checkpoint(tmp_path / "b" / "seed0" / "fold1" / "last.pt")
    assert ck["state"]["epoch"] == 2
    resumed = train_cross_validation(synth_dataset, cfg, tmp_path / "b", resume=True)
    assert not resumed.cancelled
    for fa, fb in zip(full.folds, resumed.folds):
        assert fa.best_epoch == fb.best_epoch
        assert fa.auc == pytest.approx(fb.auc) and fa.acc == pytest.approx(fb.acc)
        ha = [h["train_loss"] for h in fa.history]
        hb = [h["train_loss"] for h in fb.history]
        assert ha == pytest.approx(hb, rel=1e-5)
        assert np.allclose(fa.val_probs, fb.val_probs, atol=1e-5)


def test_resume_with_other_settings_is_refused(synth_dataset, tmp_path):
    token = CancelToken()

    class Stop:
        def on_step(self, info):
            if info.epoch == 2:
                token.cancel()

    train_cross_validation(synth_dataset, _cfg(epochs=3), tmp_path / "r", cancel=token,
                           callbacks=[Stop()])
    with pytest.raises(CheckpointError, match="lr"):
        train_cross_validation(synth_dataset, _cfg(epochs=3, lr=1e-3), tmp_path / "r",
                               resume=True)


def test_class_weights_and_baselines(synth_dataset):
    for model in ("abmil", "mean"):
        res = train_cross_validation(
            synth_dataset, _cfg(model={"model": model, "hidden": 16}, epochs=2,
                                class_weights="balanced"))
        assert len(res.folds) == 2
    with pytest.raises(UserFacingError, match="class weights"):
        train_cross_validation(synth_dataset, _cfg(epochs=1, class_weights=[1.0, 2.0, 3.0]))


def test_cancel_token_from_another_thread(synth_dataset):
    """The widget pattern: the engine runs in a worker thread, the GUI thread cancels."""
    import threading

    token = CancelToken()
    started = threading.Event()
    steps = []
    box = {}

    class Cb:
        def on_step(self, info):
            steps.append(info.step)
            started.set()
            time.sleep(0.05)  # give the "GUI" time to press Cancel

    th = threading.Thread(target=lambda: box.setdefault(
        "res", train_cross_validation(synth_dataset, _cfg(epochs=50, batch_size=2),
                                      callbacks=[Cb()], cancel=token)))
    th.start()
    assert started.wait(30)
    token.cancel()
    th.join(30)
    assert not th.is_alive() and box["res"].cancelled
    assert len(steps) <= 2 and token() is True


def test_input_standardisation_is_fitted_on_the_training_fold_and_saved(synth_dataset,
                                                                        tmp_path):
    """Raw features at wildly different scales: the checkpoint carries the training fold's
    per-feature statistics (not the validation slides'), and a reloaded model uses them."""
    from napari_higt.training.splits import make_splits

    res = train_cross_validation(synth_dataset, _cfg(epochs=1), tmp_path / "run")
    (tr, va), _ = make_splits(synth_dataset.y, 2, seed=0)
    xs = torch.cat([synth_dataset[int(i)].x for i in tr]).double()
    m = model_from_checkpoint(res.folds[0].best_checkpoint)
    np.testing.assert_allclose(m.standardize.mean.numpy(), xs.mean(0).numpy(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(m.standardize.std.numpy(), xs.std(0, unbiased=False).numpy(),
                               rtol=1e-3, atol=1e-5)
    xall = torch.cat([synth_dataset[int(i)].x for i in (*tr, *va)]).double()
    assert not torch.allclose(xs.mean(0), xall.mean(0))  # the fold's, not the cohort's
    g = synth_dataset[int(va[0])]
    assert torch.allclose(m.standardize(g.x), (g.x - m.standardize.mean) / m.standardize.std)


def test_repeated_over_seeds_reports_the_spread(synth_dataset):
    res = train_cross_validation(synth_dataset, _cfg(epochs=1, seeds=[0, 1]))
    s = res.summary()
    assert len(res.folds) == 4 and {f.seed for f in res.folds} == {0, 1}
    assert set(s["per_seed"]) == {"0", "1"}  # JSON-able keys
    means = [v["auc"] for v in s["per_seed"].values()]
    spread = s["seed_spread_auc"]
    assert spread["min"] == pytest.approx(min(means)) and spread["max"] == pytest.approx(max(means))
    assert s["n_runs"] == 4
    # the two seeds split the slides differently
    from napari_higt.training.splits import make_splits

    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(make_splits(synth_dataset.y, 2, 0),
                                                              make_splits(synth_dataset.y, 2, 1)))
