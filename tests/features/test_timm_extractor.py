"""The ``timm`` extractor: local weights only, exact fit or a refusal that lists the keys."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import torch

from napari_higt.errors import FeatureError
from napari_higt.features import available_extractors, config_hash, get_extractor
from napari_higt.features.presets import PRESETS, get_preset
from napari_higt.features.timm_extractor import build_timm_model, import_timm
from napari_higt.features.timm_weights import fit_state_dict

try:  # not pytest.importorskip: a torchvision built for another torch fails with RuntimeError
    import_timm()
except FeatureError as exc:
    pytest.skip(str(exc), allow_module_level=True)

ARCH = "vit_tiny_patch16_224"
TINY = {"img_size": 64, "depth": 2}


def _save(model, path, wrap=None):
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        if wrap:
            sd = {"state_dict": {f"{wrap}{k}": v for k, v in sd.items()}, "epoch": 3}
        torch.save(sd, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    torch.manual_seed(0)
    model = build_timm_model(ARCH, TINY)
    return _save(model, tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def tiles(tissue_rgb):
    return np.stack([tissue_rgb[y:y + 96, x:x + 96] for y, x in ((0, 0), (200, 300), (500, 64))])


def test_registered_and_shape_dtype_determinism(tiny_file, tiles):
    assert "timm" in available_extractors()
    ext = get_extractor("timm", arch=ARCH, weights=str(tiny_file), model_kwargs=TINY,
                        input_size=64, device="cpu")
    a = ext(tiles)
    assert a.shape == (3, 192) and a.dtype == np.float32 and ext.dim == 192
    assert np.isfinite(a).all() and not np.allclose(a[0], a[1])
    again = get_extractor("timm", arch=ARCH, weights=str(tiny_file), model_kwargs=TINY,
                          input_size=64, device="cpu")
    np.testing.assert_array_equal(a, again(tiles))
    np.testing.assert_allclose(ext(tiles[:1]), a[:1], rtol=1e-5, atol=1e-6)  # batch-independent
    assert ext(tiles[:0]).shape == (0, 192)


def test_tokens_and_the_model_forward(tiny_file, tiles):
    both = get_extractor("timm", arch=ARCH, weights=str(tiny_file), model_kwargs=TINY,
                         input_size=64, token="cls+mean", device="cpu")
    cls = get_extractor("timm", arch=ARCH, weights=str(tiny_file), model_kwargs=TINY,
                        input_size=64, token="cls", device="cpu")
    f = both(tiles)
    assert both.dim == 384 and f.shape == (3, 384)
    np.testing.assert_allclose(f[:, :192], cls(tiles), rtol=1e-5, atol=1e-6)
    # the class token is what timm's own forward returns for this architecture
    x = cls._prepare(torch.from_numpy(tiles))
    with torch.no_grad():
        np.testing.assert_allclose(cls.model(x).numpy(), cls(tiles), rtol=1e-4, atol=1e-5)


def test_pth_with_wrapper_prefix_loads_the_same(tmp_path, tiny_file, tiles):
    from safetensors.torch import load_file

    model = build_timm_model(ARCH, TINY)
    model.load_state_dict(load_file(str(tiny_file)))
    pth = _save(model, tmp_path / "tiny.pth", wrap="module.backbone.")
    a = get_extractor("timm", arch=ARCH, weights=str(pth), model_kwargs=TINY, input_size=64,
                      device="cpu")
    b = get_extractor("timm", arch=ARCH, weights=str(tiny_file), model_kwargs=TINY,
                      input_size=64, device="cpu")
    np.testing.assert_array_equal(a(tiles), b(tiles))
    assert a.config["weights_sha1"] != b.config["weights_sha1"]


def test_wrong_file_is_refused_with_its_keys(tmp_path):
    deeper = _save(build_timm_model(ARCH, {"img_size": 64, "depth": 3}), tmp_path / "d3.safetensors")
    with pytest.raises(FeatureError) as e:
        get_extractor("timm", arch=ARCH, weights=str(deeper), model_kwargs=TINY, device="cpu")
    msg = str(e.value)
    assert "unexpected" in msg and "blocks.2.attn.qkv.weight" in msg and "\n" not in msg
    wider = _save(build_timm_model("vit_small_patch16_224", TINY), tmp_path / "s.safetensors")
    with pytest.raises(FeatureError, match=r"30 of another shape \(blocks.0.attn.proj.bias: "
                                           r"file \(384,\) vs model \(192,\)"):
        get_extractor("timm", arch=ARCH, weights=str(wider), model_kwargs=TINY, device="cpu")
    resnet = _save(build_timm_model("resnet18"), tmp_path / "r.safetensors")
    with pytest.raises(FeatureError, match=r"30 missing \(blocks.0.attn.proj.bias, .*; "
                                           r"120 unexpected \(bn1.bias, "):
        get_extractor("timm", arch=ARCH, weights=str(resnet), model_kwargs=TINY, device="cpu")


def test_bad_inputs_have_one_line_messages(tmp_path, tiny_file):
    with pytest.raises(FeatureError, match="nothing is downloaded.*MahmoodLab/UNI"):
        get_extractor("timm", preset="uni")
    with pytest.raises(FeatureError, match="weights file not found"):
        get_extractor("timm", arch=ARCH, weights=str(tmp_path / "none.safetensors"))
    pickled = tmp_path / "code.pth"
    torch.save({"w": torch.zeros(2), "obj": socket.AF_INET.__class__}, pickled)
    with pytest.raises(FeatureError, match="holds Python objects") as ei:  # weights_only
        get_extractor("timm", arch=ARCH, weights=str(pickled), model_kwargs=TINY)
    assert "weights_only" not in str(ei.value)  # never advise loading it unsafely
    with pytest.raises(FeatureError, match="unknown timm architecture"):
        get_extractor("timm", arch="no_such_net", weights=str(tiny_file))
    with pytest.raises(FeatureError, match="unknown encoder preset 'unii'; available: uni,"):
        get_extractor("timm", preset="unii", weights=str(tiny_file))


def test_config_hash_names_extractor_preset_and_weights(tmp_path, tiny_file):
    a = get_extractor("timm", arch=ARCH, weights=str(tiny_file), model_kwargs=TINY,
                      device="cpu")
    torch.manual_seed(1)
    other = _save(build_timm_model(ARCH, TINY), tmp_path / "other.safetensors")
    b = get_extractor("timm", arch=ARCH, weights=str(other), model_kwargs=TINY, device="cpu")
    assert a.config["arch"] == ARCH and a.config["preset"] is None
    assert len(a.config["weights_sha1"]) == 16
    assert config_hash(a, patch_size=512) != config_hash(b, patch_size=512)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build_without_weights_or_network(name, no_network):
    p = get_preset(name)
    model = build_timm_model(p.arch, p.model_kwargs, device="meta")  # pretrained=False
    n = sum(t.numel() for t in model.parameters()) / 1e6
    assert abs(n - p.params_m) / p.params_m < 0.05, (name, n)
    assert model.num_features * (2 if p.token == "cls+mean" else 1) == p.dim
    assert p.token == "cls+mean" or model.cls_token is not None
    assert p.weights_file and p.source.startswith("https://huggingface.co/")
    assert len(p.mean) == len(p.std) == 3 and 0 < p.mpp <= 1


def test_register_tokens_are_left_out_of_the_patch_mean():
    v = build_timm_model(get_preset("virchow2").arch, get_preset("virchow2").model_kwargs,
                         device="meta")
    assert v.num_prefix_tokens == 5  # class token + 4 registers, as the model card says


def _timm_to_hf(sd):
    """Inverse of hf_vit_to_timm: a Hugging Face ViTModel layout (test helper)."""
    out = {"embeddings.cls_token": sd["cls_token"],
           "embeddings.position_embeddings": sd["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
           "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"],
           "pooler.dense.weight": sd["norm.weight"][None].repeat(1, 1)}
    names = {"norm1": "layernorm_before", "norm2": "layernorm_after",
             "attn.proj": "attention.output.dense", "mlp.fc1": "intermediate.dense",
             "mlp.fc2": "output.dense"}
    i = 0
    while f"blocks.{i}.norm1.weight" in sd:
        for kind in ("weight", "bias"):
            q, k, v = sd[f"blocks.{i}.attn.qkv.{kind}"].chunk(3, dim=0)
            for nm, t in (("query", q), ("key", k), ("value", v)):
                out[f"encoder.layer.{i}.attention.attention.{nm}.{kind}"] = t
            for tm, hf in names.items():
                out[f"encoder.layer.{i}.{hf}.{kind}"] = sd[f"blocks.{i}.{tm}.{kind}"]
        i += 1
    return out


def test_hugging_face_vit_layout_converts_exactly():
    model = build_timm_model(ARCH, TINY)
    sd = model.state_dict()
    fitted, dropped = fit_state_dict(_timm_to_hf(sd), model, "hf", key_format="hf_vit")
    assert dropped == [] and set(fitted) == set(sd)
    for k in sd:
        torch.testing.assert_close(fitted[k], sd[k])
    # and the Phikon preset's full-size ViT-B/16 takes a file in that layout (shapes checked)
    p = get_preset("phikon")
    big = build_timm_model(p.arch, p.model_kwargs, device="meta")
    fit_state_dict(_timm_to_hf(big.state_dict()), big, "phikon", key_format=p.key_format)
