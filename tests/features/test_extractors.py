"""Extractor registry, the handcrafted descriptor and the CNN trunk from local weights."""

from __future__ import annotations

import numpy as np
import pytest

from napari_higt.errors import FeatureError
from napari_higt.features import (
    FeatureExtractor,
    available_extractors,
    get_extractor,
    register_extractor,
)
from napari_higt.features.handcrafted import FEATURE_NAMES, HANDCRAFTED_DIM


@pytest.fixture(scope="module")
def tiles(tissue_rgb):
    """Four 512-px tiles: two of real tissue, one blank glass, one half tissue."""
    t = tissue_rgb[:512, :512]
    half = np.full_like(t, 250)
    half[:, :256] = t[:, :256]
    return np.stack([t, tissue_rgb[512:, 512:], np.full_like(t, 250), half])


def test_registry():
    names = available_extractors()
    assert {"handcrafted", "cnn"} <= set(names)
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'; available: .*handcrafted"):
        get_extractor("nope")
    with pytest.raises(FeatureError):  # the same error is a FeatureError for the CLI
        get_extractor("nope")

    @register_extractor("_test_mean")
    class Mean:
        name = "_test_mean"
        dim = 3
        config: dict = {}

        def __call__(self, batch):
            return batch.reshape(len(batch), -1, 3).mean(axis=1).astype(np.float32)

    e = get_extractor("_test_mean")
    assert isinstance(e, FeatureExtractor) and "_test_mean" in available_extractors()


def test_handcrafted_shape_and_meaning(tiles):
    e = get_extractor("handcrafted")
    assert e.dim == HANDCRAFTED_DIM == len(FEATURE_NAMES) == 64
    f = e(tiles)
    assert f.shape == (4, 64) and f.dtype == np.float32 and np.isfinite(f).all()
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    tissue, glass, half = f[0], f[2], f[3]
    assert tissue[col["tissue_frac"]] > 0.7 and glass[col["tissue_frac"]] < 0.01
    assert 0.3 < half[col["tissue_frac"]] < 0.7
    assert tissue[col["H_mean"]] > glass[col["H_mean"]] + 0.01
    assert tissue[col["h_peak_density"]] > glass[col["h_peak_density"]]
    assert tissue[col["R_mean"]] < glass[col["R_mean"]]
    assert tissue[col["R_p10"]] <= tissue[col["R_p50"]] <= tissue[col["R_p90"]]
    for lbp in ("lbp1_", "lbp2_"):
        s = sum(tissue[col[f"{lbp}{i}"]] for i in range(10))
        assert s == pytest.approx(1.0, abs=1e-5)


def test_handcrafted_batch_invariant_and_sizes(tiles, tissue_rgb):
    e = get_extractor("handcrafted")
    full = e(tiles)
    one = np.concatenate([e(tiles[i:i + 1]) for i in range(len(tiles))])
    np.testing.assert_allclose(full, one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e(tiles[::-1]), full[::-1], rtol=1e-5, atol=1e-6)
    # any tile size works (resized to the working size)
    assert e(tissue_rgb[None, :300, :200]).shape == (1, 64)
    assert e(np.zeros((0, 512, 512, 3), np.uint8)).shape == (0, 64)
    with pytest.raises(ValueError, match="uint8 batch"):
        e(np.zeros((2, 8, 8)))
    small = get_extractor("handcrafted", work_size=64)
    assert small.config != e.config and small(tiles).shape == (4, 64)


def _save_random(arch, path, prefix=""):
    import torch

    from napari_higt.features.cnn import build_trunk

    torch.manual_seed(0)
    model = build_trunk(arch)
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save(sd, path)
    return model


@pytest.mark.parametrize("arch,dim,prefix", [("resnet50", 2048, ""),
                                             ("densenet121", 1024, "module.")])
def test_cnn_from_local_weights(arch, dim, prefix, tiles, tmp_path):
    import torch

    model = _save_random(arch, tmp_path / "w.pth", prefix)
    e = get_extractor("cnn", weights=tmp_path / "w.pth", arch=arch, input_size=64, device="cpu")
    assert e.dim == dim and e.config["arch"] == arch and len(e.config["weights_sha1"]) == 16
    f = e(tiles[:2])
    assert f.shape == (2, dim) and f.dtype == np.float32 and np.isfinite(f).all()
    # the loaded trunk is the saved one: compare with the model that was saved
    x = torch.nn.functional.interpolate(
        torch.from_numpy(tiles[:2]).permute(0, 3, 1, 2).float() / 255, size=(64, 64),
        mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = model.eval().forward_features((x - mean) / std).numpy()
    np.testing.assert_allclose(f, ref, rtol=1e-4, atol=1e-5)


def test_cnn_clear_errors(tmp_path):
    with pytest.raises(FeatureError, match="needs a local weights file.*--weights"):
        get_extractor("cnn")
    with pytest.raises(FeatureError, match="not found"):
        get_extractor("cnn", weights=tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(FeatureError, match="not a readable cnn weights file"):
        get_extractor("cnn", weights=tmp_path / "junk.pth")
    _save_random("densenet121", tmp_path / "d.pth")
    with pytest.raises(FeatureError, match="does not fit a resnet50 trunk.*--arch"):
        get_extractor("cnn", weights=tmp_path / "d.pth", arch="resnet50")
    with pytest.raises(FeatureError, match="unknown cnn arch"):
        get_extractor("cnn", weights=tmp_path / "d.pth", arch="vgg")
