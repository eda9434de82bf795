"""`napari-higt preprocess` with a timm encoder, stain normalisation and the TRIDENT layout."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from napari_higt.errors import FeatureError
from napari_higt.features.pipeline import run_slide
from napari_higt.features.store import FeatureStore, read_graph

from .conftest import CELL, PATCH


@pytest.fixture(scope="module")
def test_vit(tmp_path_factory):
    """timm's own tiny ``test_vit`` (160 px input), random weights in a local file."""
    from napari_higt.features.timm_extractor import build_timm_model, import_timm

    try:
        import_timm()
    except FeatureError as exc:
        pytest.skip(str(exc))
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "test_vit.safetensors"
    save_file({k: v.contiguous() for k, v in build_timm_model("test_vit").state_dict().items()},
              str(path))
    return path


def test_trident_layout_round_trip(layout_slide, tmp_path):
    higt = run_slide(layout_slide, tmp_path / "higt", patch_size=PATCH)
    r = run_slide(layout_slide, tmp_path / "tri", patch_size=PATCH, layout="trident")
    assert r.status == "done" and r.counts == {"x10": 14}
    with h5py.File(r.path, "r") as h5:  # TRIDENT's layout: root features + coords
        assert set(h5) == {"coords", "features"}
        a = dict(h5["coords"].attrs)
        assert (a["patch_size"], a["patch_size_level0"], a["level0_magnification"],
                a["target_magnification"], a["name"]) == (PATCH, CELL, 20, 10, "layout")
    d = FeatureStore.read(r.path, extractor="handcrafted", dim=64)
    h = FeatureStore.read(higt.path)
    np.testing.assert_array_equal(d.coords["x10"], h.coords["x10"])
    np.testing.assert_allclose(d.features["x10"], h.features["x10"])
    assert read_graph(r.path).patch_size["x10"] == CELL
    assert run_slide(layout_slide, tmp_path / "tri", patch_size=PATCH,
                     layout="trident").status == "skipped"
    assert d.attrs["extractor_config_hash"] != h.attrs["extractor_config_hash"]


def test_stain_is_recorded_in_the_file_and_its_hash(layout_slide, tmp_path):
    pytest.importorskip("torchstain")
    plain = run_slide(layout_slide, tmp_path / "plain", patch_size=PATCH)
    r = run_slide(layout_slide, tmp_path / "mac", patch_size=PATCH, stain="macenko")
    attrs = FeatureStore.read_attrs(r.path)
    stain = json.loads(attrs["stain"])
    assert stain["method"] == "macenko" and (stain["tiles"], stain["passed_through"]) == (21, 0)
    assert not r.warnings
    assert json.loads(attrs["extractor_config"])["stain"]["reference"] == "stain_reference.png"
    assert attrs["extractor_config_hash"] != FeatureStore.read_attrs(plain.path)[
        "extractor_config_hash"]
    a, b = FeatureStore.read(plain.path), FeatureStore.read(r.path)
    assert not np.allclose(a.features["x10"], b.features["x10"])
    # an existing stain-free file for the same slide is recomputed, not reused; with a
    # stricter stain floor the thumbnail and two mostly-glass x5 regions pass through
    from napari_higt.features.stain import StainNormalizer

    r = run_slide(layout_slide, tmp_path / "plain", patch_size=PATCH,
                  stain=StainNormalizer("macenko", min_stain=0.3))
    assert r.status == "done"
    assert json.loads(FeatureStore.read_attrs(r.path)["stain"])["passed_through"] == 3
    assert r.warnings == ["stain (macenko): 3 of 21 tiles had too little H&E stain and passed "
                          "through unchanged"]


def test_cli_timm_stain_trident(layout_slide, tmp_path, test_vit, capsys):
    from napari_higt.cli import main

    out = tmp_path / "out"
    rc = main(["preprocess", str(layout_slide), "--out", str(out), "--extractor", "timm",
               "--arch", "test_vit", "--weights", str(test_vit), "--extractor-arg",
               "input_size=160", "--extractor-arg", "token=cls+mean", "--stain", "reinhard",
               "--layout", "trident", "--patch-size", str(PATCH)])
    text, err = capsys.readouterr()
    assert rc == 0, err
    d = FeatureStore.read(out / "layout.h5", extractor="timm")
    assert d.counts() == {"x10": 14} and d.dim == 2 * 64
    cfg = json.loads(d.attrs["extractor_config"])
    assert cfg["arch"] == "test_vit" and cfg["token"] == "cls+mean"
    assert cfg["stain"]["method"] == "reinhard" and len(cfg["weights_sha1"]) == 16
    assert np.isfinite(d.features["x10"]).all()


def test_cli_refuses_bad_timm_and_stain_settings(layout_slide, tmp_path, test_vit, capsys):
    from napari_higt.cli import main

    base = ["preprocess", str(layout_slide), "--out", str(tmp_path)]
    assert main(base + ["--extractor", "timm", "--preset", "uni"]) == 1
    assert "nothing is downloaded" in capsys.readouterr().err
    assert main(base + ["--extractor", "timm", "--preset", "uni", "--weights",
                        str(test_vit)]) == 1
    err = capsys.readouterr().err
    assert "do not fit the architecture" in err and "missing" in err
    assert main(base + ["--stain", "macenko", "--stain-reference",
                        str(tmp_path / "none.png")]) == 1
    assert "cannot read stain reference" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.h5"))
