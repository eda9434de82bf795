"""The ``hmgdm`` extractor: registry, output dim = config, checkpoint errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from napari_higt.errors import CheckpointError
from napari_higt.features import available_extractors, get_extractor
from napari_higt.features.base import config_hash
from napari_higt.models.hmgdm import HMGDM, HMGDMConfig, save_hmgdm_checkpoint

torch.set_num_threads(int(os.environ.get("NAPARI_HIGT_TEST_THREADS", "1")))
ENTITY = {"n_segments": 40, "compactness": 20.0, "min_tissue": 0.2, "features": "handcrafted",
          "crop_size": 16}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    torch.manual_seed(0)
    model = HMGDM(HMGDMConfig(hidden=32, latent=12, heads=2, entity=ENTITY))
    path = tmp_path_factory.mktemp("enc") / "encoder.pt"
    save_hmgdm_checkpoint(path, model)
    return path


def test_registered():
    assert "hmgdm" in available_extractors()


def test_output_dim_matches_config(encoder, tissue_rgb):
    ex = get_extractor("hmgdm", encoder=str(encoder))
    assert ex.name == "hmgdm" and ex.dim == 24 == 2 * ex.config["model"]["latent"]
    batch = np.stack([tissue_rgb[:128, :128], tissue_rgb[512:640, 512:640]])
    feats = ex(batch)
    assert feats.shape == (2, ex.dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and not np.allclose(feats[0], feats[1])
    np.testing.assert_allclose(ex(batch[1:]), feats[1:], rtol=1e-4, atol=1e-5)
    assert ex(batch[:0]).shape == (0, ex.dim)
    json.dumps(ex.config)
    assert len(config_hash(ex)) == 16 and ex.config["entity"] == ENTITY


def test_checkpoint_errors(encoder, tmp_path):
    with pytest.raises(CheckpointError, match="needs an encoder"):
        get_extractor("hmgdm")
    with pytest.raises(CheckpointError, match="no such encoder"):
        get_extractor("hmgdm", encoder=str(tmp_path / "nothing.pt"))
    with pytest.raises(CheckpointError, match="n_segments=40"):
        get_extractor("hmgdm", encoder=str(encoder), n_segments=150)
    with pytest.raises(CheckpointError, match="24-dim"):
        get_extractor("hmgdm", encoder=str(encoder), dim=1024)
    torch.save({"model": "resnet", "state_dict": {}}, tmp_path / "cnn.pt")
    with pytest.raises(CheckpointError, match="not an H-MGDM"):
        get_extractor("hmgdm", encoder=str(tmp_path / "cnn.pt"))


def test_preprocess_cli_with_hmgdm_encoder(encoder, cmu1_path, tmp_path):
    """`preprocess --extractor hmgdm --encoder ENCODER.pt` feeds HIGT's feature files."""
    from napari_higt.cli import main
    from napari_higt.features import FeatureStore

    out = tmp_path / "feats"
    assert main(["preprocess", str(cmu1_path), "--out", str(out), "--extractor", "hmgdm",
                 "--encoder", str(encoder)]) == 0
    data = FeatureStore.read(out / "cmu-1-small-region.h5")
    assert data.extractor == "hmgdm" and data.dim == 24
    assert data.features["x10"].shape == (2, 24)
