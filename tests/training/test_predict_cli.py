"""Dataset from feature files, the train / predict CLI, node scores in the feature files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_higt.cli import main
from napari_higt.errors import CheckpointError, FeatureError
from napari_higt.explain.store import read_node_scores
from napari_higt.features.store import FeatureStore
from napari_higt.inference.predict import predict_slides
from napari_higt.training.dataset import SlideGraphDataset


def test_dataset_skips_missing_with_warning(feature_folder):
    folder, labels = feature_folder
    (folder / "s011.h5").unlink()  # labelled, no features
    text = labels.read_text() + "ghost,benign\n"
    labels.write_text(text)
    FeatureStore.write(folder / "extra.h5", {"x10": np.zeros((1, 2))},
                       {"x10": np.zeros((1, 8))}, attrs={"extractor": "synthetic"})
    with pytest.warns(UserWarning, match="2 labelled slide.*ghost.*1 feature file.*extra"):
        ds = SlideGraphDataset.from_folder(folder, labels, cache=True)
    assert len(ds) == 11 and ds.class_names == ["benign", "tumour"]
    assert ds.missing_features == ["s011", "ghost"] and ds.unlabelled == ["extra"]
    assert ds.extractor == "synthetic" and ds.in_dim == 8
    d = ds[1]
    assert int(d.y) == 1 and d.slide_id == "s001" and d.level.shape[0] == d.x.shape[0]
    assert 1 in ds._graphs  # cached
    with pytest.raises(FeatureError, match="none of the"):
        SlideGraphDataset.from_folder(folder.parent, labels)


def test_cli_train_then_predict(feature_folder, tmp_path, capsys):
    folder, labels = feature_folder
    run = tmp_path / "run"
    rc = main(["train", str(folder), str(labels), "--out", str(run), "--model", "higt",
               "--hidden", "16", "--folds", "2", "--epochs", "2", "--device", "cpu",
               "--no-fusion", "--interaction", "r2p"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "mean ± std" in out
    res = json.loads((run / "results.json").read_text())
    assert res["config"]["model"] == {"model": "higt", "interaction": "r2p", "hidden": 16,
                                      "fusion": False}
    ckpt = run / "seed0" / "fold0" / "best.pt"
    files = sorted(folder.glob("*.h5"))[:3]
    preds = tmp_path / "preds.csv"
    assert main(["predict", str(ckpt), *map(str, files), "--out", str(preds),
                 "--device", "cpu"]) == 0
    rows = list(csv.DictReader(preds.open()))
    assert [r["slide_id"] for r in rows] == ["s000", "s001", "s002"]
    assert set(rows[0]) == {"slide_id", "pred", "prob_benign", "prob_tumour"}
    for r in rows:
        assert r["pred"] in ("benign", "tumour")
        assert float(r["prob_benign"]) + float(r["prob_tumour"]) == pytest.approx(1, abs=1e-5)
    from napari_higt.features.store import read_graph

    for f in files:
        scores, attrs = read_node_scores(f)
        g = read_graph(f)
        assert scores["node_importance"].shape == (g.num_nodes,)
        assert np.array_equal(scores["level"], g.level)
        assert {"ihpool_score", "ssa_context", "bi_region_to_patch"} <= set(scores)
        assert attrs["class_names"] == ["benign", "tumour"] and attrs["pred"] in attrs["probs"]
        FeatureStore.read(f)  # the feature file is still a valid feature file
    assert not list(folder.glob(".*.tmp"))  # no temporary file left behind
    # a second predict replaces explain/ (no error on the existing group)
    p2 = predict_slides(ckpt, files[:1], device="cpu")
    assert p2[0].slide_id == "s000"


def test_predict_refuses_mismatched_features(feature_folder, tmp_path):
    from napari_higt.training.config import TrainConfig
    from napari_higt.training.engine import train_cross_validation
    from tests.training._synth import write_feature_files

    folder, labels = feature_folder
    ds = SlideGraphDataset.from_folder(folder, labels)
    train_cross_validation(ds, TrainConfig(model={"model": "mean", "hidden": 8}, epochs=1,
                                           folds=2), tmp_path / "run")
    ckpt = tmp_path / "run" / "seed0" / "fold0" / "best.pt"
    other, _ = write_feature_files(tmp_path / "wide" / "features", n=1, dim=12)
    with pytest.raises(CheckpointError, match="8-dim 'synthetic' features"):
        predict_slides(ckpt, [other / "s000.h5"], device="cpu")
    other2, _ = write_feature_files(tmp_path / "ext" / "features", n=1, extractor="cnn")
    with pytest.raises(CheckpointError, match="cnn"):
        predict_slides(ckpt, [other2 / "s000.h5"], device="cpu")
    assert main(["predict", str(ckpt), str(other / "s000.h5"), "--out",
                 str(tmp_path / "p.csv")]) == 1


def test_train_cli_resume_refuses_other_settings(feature_folder, tmp_path, capsys):
    folder, labels = feature_folder
    run = tmp_path / "run"
    args = ["train", str(folder), str(labels), "--out", str(run), "--model", "mean",
            "--hidden", "8", "--folds", "2", "--epochs", "1", "--device", "cpu"]
    assert main(args) == 0
    assert main(args) == 1  # existing run, no --resume
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # finished folds are reused
    assert main(args[:-2] + ["--lr", "0.01", "--resume", "--device", "cpu"]) == 1
    assert "lr" in capsys.readouterr().err


def test_csv_folds_are_used(feature_folder, tmp_path):
    from napari_higt.training.config import TrainConfig
    from napari_higt.training.engine import train_cross_validation

    folder, labels = feature_folder
    lines = labels.read_text().strip().splitlines()
    labels.write_text("slide_id,label,fold\n" + "\n".join(
        f"{ln},{i % 3}" for i, ln in enumerate(lines[1:])) + "\n")
    ds = SlideGraphDataset.from_folder(folder, labels)
    res = train_cross_validation(ds, TrainConfig(model={"model": "mean", "hidden": 8},
                                                 epochs=1, folds=5), tmp_path / "run")
    assert res.n_folds == 3 and len(res.folds) == 3
    assert res.folds[0].val_slide_ids == ["s000", "s003", "s006", "s009"]
    data = json.loads((tmp_path / "run" / "results.json").read_text())  # strict JSON
    assert data["n_folds"] == 3
