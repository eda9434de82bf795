"""Checkpoints a user may hand over: crafted, cut, incomplete, inconsistent, or of another
model; each refused in one line that never advises loading it unsafely."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import CMU, assert_refused


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def _variant(kind: str, good, dst):
    """A bad checkpoint derived from ``good``; returns (path, words of the error)."""
    import torch

    ck = torch.load(good, weights_only=True)
    if kind == "pickle":
        torch.save({**ck, "extra": _Evil()}, dst)
        return dst, ["holds Python objects", "print"]
    if kind == "truncated":
        dst.write_bytes(good.read_bytes()[:2000])
        return dst, ["not a readable", "truncated"]
    if kind == "zero":
        dst.write_bytes(b"")
        return dst, ["not a readable"]
    if kind == "text":
        dst.write_text("not a checkpoint\n")
        return dst, ["not a readable"]
    if kind == "no_class_names":
        ck["config"].pop("class_names")
        torch.save(ck, dst)
        return dst, ["class names"]
    if kind == "string_version":
        torch.save({**ck, "version": "one"}, dst)
        return dst, ["version", "'one'"]
    if kind == "outputs_vs_names":
        ck["config"]["model"]["n_classes"] = 3
        torch.save(ck, dst)
        return dst, ["3 outputs", "2 classes"]
    if kind == "other_config":
        ck["config"]["model"]["hidden"] = 32
        torch.save(ck, dst)
        return dst, ["do not fit", "of another shape"]
    if kind == "encoder":
        torch.save({"kind": "napari-higt/hmgdm", "version": 1, "state_dict": {}}, dst)
        return dst, ["not a napari-higt classifier"]
    raise ValueError(kind)


KINDS = ["pickle", "truncated", "zero", "text", "no_class_names", "string_version",
         "outputs_vs_names", "other_config", "encoder"]


@pytest.mark.parametrize("kind", KINDS)
def test_predict_refuses_a_bad_checkpoint(run_cli, checkpoint, cohort, kind, tmp_path):
    bad, words = _variant(kind, checkpoint, tmp_path / "bad.pt")
    files = sorted(cohort[0].glob("*.h5"))[:1]
    before = files[0].read_bytes()
    res = run_cli("predict", bad, *files, "--out", tmp_path / "p.csv", "--device", "cpu")
    line = assert_refused(res, "bad.pt", *words)
    assert "weights_only" not in line and "Error(s) in loading" not in line
    assert "this must never run" not in res.out
    assert not (tmp_path / "p.csv").exists() and files[0].read_bytes() == before


def test_demo_and_pretrain_check_their_checkpoint_first(run_cli, checkpoint, tmp_path):
    bad, _ = _variant("truncated", checkpoint, tmp_path / "bad.pt")
    res = run_cli("demo", "--checkpoint", bad, "--out", tmp_path / "demo")
    assert_refused(res, "bad.pt", "not a readable")
    assert not (tmp_path / "demo").exists()  # refused before any feature was computed
    res = run_cli("pretrain", CMU, "--out", tmp_path / "enc.pt", "--resume", bad)
    assert_refused(res, "bad.pt", "not a readable")
    res = run_cli("pretrain", CMU, "--out", tmp_path / "enc.pt", "--resume", checkpoint)
    assert_refused(res, checkpoint.name, "not an H-MGDM")
    assert not (tmp_path / "enc.pt").exists()


def test_model_info_of_a_checkpoint_and_of_a_baseline(run_cli, checkpoint):
    res = run_cli("model-info", "--config", checkpoint)
    assert res.rc == 0 and '"hidden": 16' in res.out, res.err
    res = run_cli("model-info", "--model", "abmil")
    assert res.rc == 0 and '"model": "abmil"' in res.out
    assert '"conv"' not in res.out and '"interaction"' not in res.out  # HIGT-only keys


def test_no_nan_weights_are_ever_written(tmp_path, checkpoint):
    import torch

    from napari_higt.errors import CheckpointError
    from napari_higt.inference.checkpoint import save_checkpoint

    ck = torch.load(checkpoint, weights_only=True)
    sd = dict(ck["state_dict"])
    key = next(k for k, v in sd.items() if v.is_floating_point())
    sd[key] = sd[key].clone().fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        save_checkpoint(tmp_path / "last.pt", sd, ck["config"])
    assert list(tmp_path.iterdir()) == []
