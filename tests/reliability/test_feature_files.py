"""Feature files that must never give an answer: NaN / inf values, wrong shapes or types,
truncated files, and a feature file used with another slide (predict, export, train)."""

from __future__ import annotations

import csv
import re
import shutil

import numpy as np
import pytest

from tests.reliability.conftest import (
    CMU,
    DIM,
    TCGA,
    assert_refused,
    leftovers,
    nan_copy,
    write_level_file,
)


def _bad_file(kind: str, src, dst):
    """A broken copy of feature file ``src`` at ``dst``; returns (path, words of the error)."""
    if kind == "nan":
        return nan_copy(src, dst), ["row 1", "NaN"]
    if kind == "inf":
        import h5py

        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as h5:
            f = h5["x5/features"][()]
            f[0, 0] = np.inf
            h5["x5/features"][...] = f
        return dst, ["x5", "row 0", "inf"]
    if kind == "coords3":
        return write_level_file(dst, np.zeros((4, 3)), np.zeros((4, DIM))), ["(N, 2)"]
    if kind == "text":
        return (write_level_file(dst, np.zeros((2, 2)), np.array([["a"] * DIM] * 2, dtype="S1")),
                ["array of numbers"])
    if kind == "zero":
        dst.write_bytes(b"")
        return dst, ["not a readable HDF5"]
    if kind == "truncated":
        dst.write_bytes(src.read_bytes()[:1500])
        return dst, ["not a readable HDF5"]
    raise ValueError(kind)


KINDS = ["nan", "inf", "coords3", "text", "zero", "truncated"]


@pytest.mark.parametrize("kind", KINDS)
def test_predict_refuses_the_bad_file_and_predicts_the_others(run_cli, checkpoint, cohort_copy,
                                                               kind, tmp_path):
    folder, _ = cohort_copy
    good = sorted(folder.glob("*.h5"))[:2]
    bad, words = _bad_file(kind, good[0], folder / "zz_bad.h5")
    before = bad.read_bytes()
    preds = tmp_path / "preds.csv"
    res = run_cli("predict", checkpoint, *good, bad, "--out", preds, "--device", "cpu")
    assert_refused(res, "zz_bad.h5", *words)
    rows = list(csv.DictReader(preds.open()))
    assert [r["slide_id"] for r in rows] == [p.stem for p in good]  # the good ones are written
    assert not re.search(r"\bnan\b", res.out + preds.read_text(), re.I)  # no NaN answer
    assert bad.read_bytes() == before  # no explain/ group without a CSV row
    assert not leftovers(folder, tmp_path)


def test_predict_with_no_usable_file_writes_nothing(run_cli, checkpoint, tmp_path):
    res = run_cli("predict", checkpoint, tmp_path / "a.h5", tmp_path, "--out",
                  tmp_path / "p.csv")
    assert_refused(res, "a.h5", "no such file")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("kind", ["nan", "zero", "truncated"])
def test_export_refuses_a_bad_feature_file(run_cli, cmu_features, kind, tmp_path):
    bad, words = _bad_file(kind, cmu_features, tmp_path / cmu_features.name)
    res = run_cli("export", CMU, bad, "--out", tmp_path / "fig")
    assert_refused(res, bad.name, *words)
    assert not (tmp_path / "fig").exists() or not any((tmp_path / "fig").iterdir())


def test_export_of_a_file_without_predictions(run_cli, cohort, tmp_path):
    f = sorted(cohort[0].glob("*.h5"))[0]
    assert_refused(run_cli("export", CMU, f, "--out", tmp_path), f.name, "no predictions")


def test_export_refuses_another_slides_features_unless_forced(run_cli, cmu_features, tmp_path):
    out = tmp_path / "fig"
    res = run_cli("export", TCGA, cmu_features, "--out", out, "--mpp", "1")
    assert_refused(res, cmu_features.name, "cmu-1-small-region", TCGA.name, "--force")
    assert not out.exists() or not any(out.iterdir())
    res = run_cli("export", TCGA, cmu_features, "--out", out, "--mpp", "1", "--force",
                  "--formats", "png", "--region", "0,0,1024,1024", "--dpi", "30")
    assert res.rc == 0, res.err
    assert "warning:" in res.err and "used anyway" in res.err
    assert (out / "cmu-1-small-region.png").is_file()


def test_export_refuses_features_of_another_version_of_the_slide(run_cli, cmu_features, tmp_path):
    changed = tmp_path / CMU.name  # same name, other content
    data = bytearray(CMU.read_bytes())
    data[5000] ^= 0xFF
    changed.write_bytes(bytes(data))
    res = run_cli("export", changed, cmu_features, "--out", tmp_path / "fig")
    assert_refused(res, cmu_features.name, "another version", CMU.name)
    from napari_higt.inference import load_cached_result

    copied = tmp_path / "copy" / CMU.name  # a plain copy (new mtime) is the same slide
    copied.parent.mkdir()
    shutil.copy(CMU, copied)
    assert load_cached_result(cmu_features, copied).notes[1:] == []


def test_export_region_outside_the_slide(run_cli, cmu_features, tmp_path):
    res = run_cli("export", CMU, cmu_features, "--out", tmp_path, "--region",
                  "90000,90000,91000,91000")
    assert_refused(res, "90000,90000,91000,91000", "outside the slide")


@pytest.mark.parametrize("kind", ["nan", "coords3"])
def test_train_names_the_bad_file_and_writes_no_weights(run_cli, cohort_copy, kind, tmp_path):
    folder, labels = cohort_copy
    victim = folder / "s003.h5"
    _bad_file(kind, folder / "s001.h5", tmp_path / "bad.h5")
    shutil.move(tmp_path / "bad.h5", victim)
    run = tmp_path / "run"
    res = run_cli("train", folder, labels, "--out", run, "--model", "mean", "--folds", "2",
                  "--epochs", "1", "--device", "cpu")
    assert_refused(res, "s003.h5")
    assert not list(run.rglob("*.pt"))
