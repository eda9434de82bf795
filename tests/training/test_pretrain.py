"""H-MGDM pretraining: checkpoints (atomic, weights_only), resume, cancel, CLI, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from napari_higt.errors import CheckpointError
from napari_higt.graph.entities import entity_graph
from napari_higt.models.hmgdm import HMGDM, HMGDMConfig, load_hmgdm_checkpoint, save_hmgdm_checkpoint
from napari_higt.training.pretrain import PretrainConfig, pretrain_hmgdm

torch.set_num_threads(int(os.environ.get("NAPARI_HIGT_TEST_THREADS", "1")))
TINY = dict(hidden=32, latent=16, enc_layers=2, heads=2, dec_depth=1)


@pytest.fixture(scope="module")
def graphs(tissue_rgb):
    tiles = [tissue_rgb[y:y + 128, x:x + 128] for y in (0, 384, 768) for x in (128, 640)]
    return [entity_graph(t, n_segments=40, compactness=20) for t in tiles]


def _cfg(**kw):
    return PretrainConfig(**{"epochs": 2, "batch_size": 3, "device": "cpu", **kw})


def test_pretrain_writes_a_checkpoint_that_round_trips(graphs, tmp_path):
    out = tmp_path / "enc.pt"
    seen = []
    res = pretrain_hmgdm(graphs, HMGDMConfig(**TINY), _cfg(), out=out, progress=seen.append)
    assert res.epochs_done == 2 and not res.cancelled and res.checkpoint == out
    assert len(res.history) == 2 and all(np.isfinite(h["loss"]) for h in res.history)
    assert sum(1 for s in seen if s.get("epoch_done")) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["enc.pt"]  # no temporary left over
    model, ckpt = load_hmgdm_checkpoint(out)
    assert ckpt["epoch"] == 2 and ckpt["config"] == HMGDMConfig(**TINY).to_dict()
    for k, v in res.model.state_dict().items():
        assert torch.equal(v.cpu(), model.state_dict()[k]), k
    from torch_geometric.data import Batch

    b = Batch.from_data_list([g.clone() for g in graphs[:3]])
    del b.label_image
    assert torch.allclose(model.embed(b), res.model.cpu().eval().embed(b))
    # the normaliser is fitted and saved
    assert not torch.allclose(model.x_std, torch.ones_like(model.x_std))


def test_resume_and_cancel(graphs, tmp_path):
    out = tmp_path / "enc.pt"
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 3  # epoch 1 has 2 steps: cancel in epoch 2

    res = pretrain_hmgdm(graphs, HMGDMConfig(**TINY), _cfg(epochs=3), out=out, should_stop=stop)
    assert res.cancelled and res.epochs_done == 1 and out.exists()
    res2 = pretrain_hmgdm(graphs, None, _cfg(epochs=3), out=out, resume=out)
    assert res2.epochs_done == 3 and [h["epoch"] for h in res2.history] == [1, 2, 3]
    with pytest.raises(CheckpointError, match="differs"):
        pretrain_hmgdm(graphs, HMGDMConfig(**{**TINY, "latent": 8}), _cfg(epochs=4), resume=out)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="needs an encoder"):
        load_hmgdm_checkpoint(None)
    with pytest.raises(CheckpointError, match="no such encoder"):
        load_hmgdm_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_hmgdm_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}, "config": {}}, other)
    with pytest.raises(CheckpointError, match="not an H-MGDM"):
        load_hmgdm_checkpoint(other)
    # weights that do not fit the stored configuration
    good = tmp_path / "good.pt"
    save_hmgdm_checkpoint(good, HMGDM(HMGDMConfig(**TINY)))
    ck = torch.load(good, weights_only=True)
    ck["config"]["hidden"] = 64
    torch.save(ck, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        load_hmgdm_checkpoint(tmp_path / "mismatch.pt")
    ck["config"]["hidden"] = 32
    ck["config"]["in_dim"] = 41
    torch.save(ck, tmp_path / "dim.pt")
    with pytest.raises(CheckpointError, match="config mismatch"):
        load_hmgdm_checkpoint(tmp_path / "dim.pt")


def test_cli_pretrain_on_a_real_tissue_slide(tiled_tiff, tmp_path, capsys):
    from napari_higt.cli import main

    out = tmp_path / "enc.pt"
    rc = main(["pretrain", str(tiled_tiff), "--out", str(out), "--epochs", "1",
               "--max-patches", "3", "--min-patches", "3", "--device", "cpu"])
    assert rc == 0 and out.exists()
    assert "embedding dim 128" in capsys.readouterr().out
    model, ckpt = load_hmgdm_checkpoint(out)
    assert ckpt["n_graphs"] == 3 and ckpt["slides"] == [str(tiled_tiff)]
    rc = main(["pretrain", str(tiled_tiff), "--out", str(out), "--epochs", "0"])
    assert rc == 1
