"""Model cards: written by training, kept by save/load, shown with predictions; the
out-of-domain warning fires on shifted features and on an assumed scale, not on a training
slide."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_higt.cli import main
from napari_higt.features.store import FeatureStore
from napari_higt.inference.card import ModelCard, model_card, prediction_text
from napari_higt.inference.checkpoint import load_checkpoint, save_checkpoint, write_card
from napari_higt.inference.predict import predict_slides
from tests.training._synth import slide_arrays


def _config():
    return {"model": {"model": "mean", "in_dim": 8, "n_classes": 2},
            "class_names": ["benign", "tumour"], "extractor": "synthetic", "in_dim": 8}


def test_card_round_trip_through_save_and_load(tmp_path):
    from napari_higt.models import build_model

    model = build_model(_config()["model"])
    card = ModelCard(task="tumour vs benign", classes=["benign", "tumour"],
                     training_data="12 slides", labels="pathologist review",
                     extractor="synthetic", scale="0.5 µm/px (read from the files)",
                     validation={"protocol": "inner-val", "metrics": {"auc": 0.91}, "n": 6},
                     demonstration=True, provenance="recorded",
                     domain={"statistic": "s", "threshold": 0.7})
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), _config(),
                           card=card.to_dict())
    raw = torch.load(path, weights_only=True)  # still a plain-types file
    assert raw["card"] == json.loads(json.dumps(card.to_dict()))
    back = model_card(load_checkpoint(path))
    assert back == card and back.demonstration and back.known
    assert "DEMONSTRATION" in back.headline()
    assert "[demonstration model" in prediction_text("tumour", 0.9, back)
    assert any("inner-val" in line and "auc 0.91" in line for line in back.lines())

    # a card rewritten in place leaves the weights as they were
    before = {k: v.clone() for k, v in load_checkpoint(path)["state_dict"].items()}
    write_card(path, {**card.to_dict(), "demonstration": False, "task": "other"})
    ck = load_checkpoint(path)
    assert model_card(ck).task == "other" and not model_card(ck).demonstration
    assert all(torch.equal(before[k], v) for k, v in ck["state_dict"].items())


def test_old_checkpoint_without_a_card_loads_as_unknown_provenance(tmp_path):
    from napari_higt.models import build_model

    path = save_checkpoint(tmp_path / "old.pt", build_model(_config()["model"]).state_dict(),
                           _config())
    assert "card" not in torch.load(path, weights_only=True)
    card = model_card(load_checkpoint(path))
    assert not card.known and card.classes == ["benign", "tumour"]
    assert card.extractor == "synthetic" and "unknown provenance" in card.headline()


@pytest.fixture
def trained(feature_folder, tmp_path):
    """A 2-fold run of a small model on the synthetic feature files."""
    folder, labels = feature_folder
    run = tmp_path / "run"
    assert main(["train", str(folder), str(labels), "--out", str(run), "--model", "mean",
                 "--folds", "2", "--epochs", "2", "--device", "cpu"]) == 0
    return folder, run


def test_training_writes_a_card_and_ood_fires_on_shifted_features_only(trained, tmp_path,
                                                                       capsys):
    folder, run = trained
    ckpt = run / "seed0" / "fold0" / "best.pt"
    card = model_card(load_checkpoint(ckpt))
    assert card.known and not card.demonstration and card.classes == ["benign", "tumour"]
    assert card.extractor == "synthetic" and "slides" in card.training_data
    assert card.validation["protocol"] and card.validation["metrics"]
    domain = card.domain
    assert domain["threshold"] > domain["train"]["max"] > 0
    assert model_card(load_checkpoint(run / "seed0" / "fold0" / "last.pt")) == card

    spec = json.loads((run / "run.json").read_text())
    held = set(spec["splits"]["0"][0]) | set(sum(spec.get("selection", {}).get("0", [[]])[:1],
                                                 []))
    training = next(s for s in spec["slides"] if s not in held)
    i = int(training[1:])

    # the same slide with every feature moved by ten of its own standard deviations
    coords, feats = slide_arrays(i % 2, i)
    shifted = {k: v + 10 * v.std(0, keepdims=True).clip(0.5) for k, v in feats.items()}
    far = FeatureStore.write(tmp_path / "far.h5", coords, shifted,
                             attrs={"extractor": "synthetic"},
                             level_attrs={"x10": {"patch_size_level0": 512},
                                          "x5": {"patch_size_level0": 1024}})
    stated = FeatureStore.write(tmp_path / "stated.h5", coords, feats,
                                attrs={"extractor": "synthetic", "mpp": 0.5,
                                       "mpp_source": "stated"},
                                level_attrs={"x10": {"patch_size_level0": 512},
                                             "x5": {"patch_size_level0": 1024}})
    own, off, scale = predict_slides(ckpt, [folder / f"{training}.h5", far, stated],
                                     write_scores=False)
    assert own.warnings == [] and own.feature_distance <= domain["train"]["max"] + 1e-9
    assert len(off.warnings) == 1 and "out of domain" in off.warnings[0]
    assert off.feature_distance > domain["threshold"]
    assert len(scale.warnings) == 1 and "stated, not read from the file" in scale.warnings[0]

    # the CLI shows the card and the warning next to the prediction
    capsys.readouterr()
    assert main(["predict", str(ckpt), str(far), "--out", str(tmp_path / "p.csv"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert card.headline() in out
    lines = out.splitlines()
    k = next(n for n, line in enumerate(lines) if line.startswith("far:"))
    assert "WARNING: out of domain" in lines[k + 1]
