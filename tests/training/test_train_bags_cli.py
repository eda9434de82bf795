"""`napari-higt train` on bags: .pt / features-only .h5 folders, --group-column, --skip-bad,
--folds-from, and the refusal of graph models on coordinate-free bags."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from napari_higt.cli import main

ARGS = ("--epochs", "2", "--folds", "2", "--hidden", "8", "--device", "cpu", "--batch-size", "4")


def _cohort(tmp_path, n: int = 16):
    """Bags of two cases each; class 1 shifts feature 0. Half .pt, half features-only .h5."""
    rng = np.random.default_rng(0)
    feats = tmp_path / "features"
    feats.mkdir()
    rows = ["slide_id,case_id,label"]
    for i in range(n):
        case, lab = i // 2, (i // 2) % 2
        x = rng.normal(0, 1, (int(rng.integers(3, 9)), 6)).astype(np.float32)
        x[:, 0] += 2.0 * lab
        if i % 2:
            torch.save(torch.from_numpy(x), feats / f"s{i:02d}.pt")
        else:
            with h5py.File(feats / f"s{i:02d}.h5", "w") as f:
                f["features"] = x
        rows.append(f"s{i:02d},case{case},{'LUSC' if lab else 'LUAD'}")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return feats, labels


def test_model_names_match_the_registry() -> None:
    from napari_higt.commands.train import MODEL_NAMES
    from napari_higt.models import registered_models

    assert sorted(MODEL_NAMES) == sorted(registered_models())


@pytest.mark.parametrize("model", ["abmil", "mean", "clam_sb", "dsmil", "transmil"])
def test_every_bag_model_trains_on_a_mixed_bag_folder(tmp_path, model: str, capsys) -> None:
    feats, labels = _cohort(tmp_path)
    run = tmp_path / "run"
    rc = main(["train", str(feats), str(labels), "--out", str(run), "--model", model,
               "--group-column", "case_id", *ARGS])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((run / "results.json").read_text())
    assert len(res["folds"]) == 2 and all(f["protocol"] == "inner-val" for f in res["folds"])
    folds = json.loads((run / "folds.json").read_text())
    assert folds["group_column"] == "case_id"
    case = {f"s{i:02d}": f"case{i // 2}" for i in range(16)}
    for f in folds["seeds"]["0"]:
        parts = [{case[s] for s in f[p]} for p in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert "bags" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["higt", "h2mil"])
def test_graph_models_refuse_coordinate_free_bags(tmp_path, model: str, capsys) -> None:
    feats, labels = _cohort(tmp_path)
    rc = main(["train", str(feats), str(labels), "--out", str(tmp_path / "r"), "--model",
               model, *ARGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert f"{model} needs patch coordinates" in err[0] and "16 feature file(s)" in err[0]
    assert "napari-higt preprocess" in err[0] and "coords" in err[0] and "abmil" in err[0]


def test_bad_files_stop_before_training_unless_skipped(tmp_path, capsys) -> None:
    feats, labels = _cohort(tmp_path)
    torch.save(torch.randn(5), feats / "s03.pt")  # 1-D
    torch.save({"weights": torch.randn(2, 6)}, feats / "s05.pt")  # no 'features'
    run = tmp_path / "run"
    rc = main(["train", str(feats), str(labels), "--out", str(run), "--model", "abmil", *ARGS])
    err = capsys.readouterr().err
    assert rc == 1 and not (run / "run.json").exists()
    assert "s03.pt: holds a 1-D array" in err and "s05.pt: is a dict without a 'features'" in err
    assert "--skip-bad" in err
    rc = main(["train", str(feats), str(labels), "--out", str(run), "--model", "abmil",
               "--skip-bad", *ARGS])
    assert rc == 0
    assert len(json.loads((run / "run.json").read_text())["slides"]) == 14


def test_folds_from_reuses_the_folds(tmp_path) -> None:
    feats, labels = _cohort(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--group-column", "case_id", *ARGS]
    assert main(["train", str(feats), str(labels), "--out", str(a), "--model", "mean",
                 "--seeds", "3", *common]) == 0
    assert main(["train", str(feats), str(labels), "--out", str(b), "--model", "abmil",
                 "--seeds", "3", "--folds-from", str(a), *common]) == 0
    fa = json.loads((a / "folds.json").read_text())["seeds"]
    fb = json.loads((b / "folds.json").read_text())["seeds"]
    assert fa == fb
    # another seed than the file holds is refused with one line
    assert main(["train", str(feats), str(labels), "--out", str(tmp_path / "c"), "--model",
                 "mean", "--seeds", "4", "--folds-from", str(a / "folds.json"), *common]) == 1


def test_eval_fold_protocol_is_labelled(tmp_path) -> None:
    feats, labels = _cohort(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(feats), str(labels), "--out", str(run), "--model", "mean",
                 "--protocol", "eval-fold", *ARGS]) == 0
    md = (run / "results.md").read_text()
    assert "chosen on the evaluation fold itself (optimistic)" in md


def test_predict_bags_with_a_bag_model_checkpoint(tmp_path, capsys) -> None:
    import csv

    feats, labels = _cohort(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(feats), str(labels), "--out", str(run), "--model", "clam_sb",
                 *ARGS]) == 0
    out = tmp_path / "preds.csv"
    rc = main(["predict", str(run / "seed0" / "fold0" / "best.pt"), str(feats), "--out",
               str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["slide_id"] for r in rows) == [f"s{i:02d}" for i in range(16)]
    assert all(abs(float(r["prob_luad"]) + float(r["prob_lusc"]) - 1) < 1e-5 for r in rows)


def test_predict_bags_refuses_graph_models(tmp_path) -> None:
    from napari_higt.errors import CheckpointError
    from napari_higt.inference.bags import predict_bags

    ck = {"config": {"model": {"model": "higt"}, "class_names": ["a", "b"]}}
    with pytest.raises(CheckpointError, match="reads slide graphs"):
        predict_bags(ck, [tmp_path / "x.pt"])
