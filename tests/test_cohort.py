"""The Qt-free cohort table: slides joined with feature files, predictions and labels."""

import os

import h5py
import pytest

from napari_higt.cohort import CohortError, scan_cohort


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory, cmu1_path, tcga_path, tiled_tiff):
    from napari_higt.features.pipeline import run_slide

    d = tmp_path_factory.mktemp("cohort")
    for src in (cmu1_path, tcga_path, tiled_tiff):
        os.symlink(src, d / src.name)
    (d / "notes.txt").write_text("not a slide")
    run_slide(d / cmu1_path.name, d / "features", "handcrafted")
    return d


def _csvs(d):
    preds = d / "preds.csv"
    preds.write_text("slide_id,pred,prob_tumour,prob_normal\n"
                     "cmu-1-small-region,tumour,0.8,0.2\n"
                     "tcga-cr-7395-01a-01-ts1,normal,0.35,0.65\n"
                     "ghost,normal,0.1,0.9\n")
    labels = d / "labels.csv"
    labels.write_text("slide_id,label,fold\ncmu-1-small-region,tumour,0\n"
                      "tcga-cr-7395-01a-01-ts1,tumour,1\ntissue,normal,0\n")
    return preds, labels


def test_scan_joins_everything(cohort_dir):
    preds, labels = _csvs(cohort_dir)
    c = scan_cohort(cohort_dir, predictions=preds, labels=labels)
    assert [r.slide_id for r in c.rows] == ["cmu-1-small-region", "tcga-cr-7395-01a-01-ts1",
                                            "tissue"]
    assert c.classes == ["tumour", "normal"]
    cmu, tcga, tif = c.rows
    assert cmu.has_features and cmu.has_graph and cmu.has_prediction
    assert cmu.status == "features, graph, prediction"
    assert cmu.n_patches == 2 and cmu.feature_mpp == pytest.approx(0.499)
    assert cmu.pred == "tumour" and cmu.prob == pytest.approx(0.8) and cmu.correct is True
    # probability of the *predicted* class, not of the first class
    assert tcga.prob == pytest.approx(0.65) and tcga.correct is False
    assert tcga.status == "prediction" and not tcga.has_features
    assert tif.status == "slide only" and tif.pred is None and tif.label == "normal"
    assert tif.correct is None
    assert any("ghost" in w for w in c.warnings)


def test_filter_terms(cohort_dir):
    preds, labels = _csvs(cohort_dir)
    c = scan_cohort(cohort_dir, predictions=preds, labels=labels)
    ids = lambda text: [r.slide_id for r in c.rows if r.matches(text)]  # noqa: E731
    assert ids("wrong") == ["tcga-cr-7395-01a-01-ts1"]
    assert ids("right") == ["cmu-1-small-region"]
    assert ids("status:graph") == ["cmu-1-small-region"]
    assert ids("label:normal") == ["tissue"]
    assert ids("TCGA") == ["tcga-cr-7395-01a-01-ts1"]
    assert ids("") == [r.slide_id for r in c.rows]


def test_cached_scores_count_as_prediction(cohort_dir, tmp_path):
    import shutil

    fdir = tmp_path / "feats"
    shutil.copytree(cohort_dir / "features", fdir)
    with h5py.File(fdir / "cmu-1-small-region.h5", "a") as h5:
        h5.create_group("explain").create_dataset("node_importance", data=[0.1, 0.2])
    c = scan_cohort(cohort_dir, features_dir=fdir)
    assert c.rows[0].has_cached_scores and c.rows[0].has_prediction
    assert c.rows[0].pred is None


def test_bad_input_says_what_is_wrong(cohort_dir, tmp_path):
    with pytest.raises(CohortError, match="not a folder"):
        scan_cohort(tmp_path / "nope")
    with pytest.raises(CohortError, match="no slide files"):
        scan_cohort(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("slide,prediction\na,b\n")
    with pytest.raises(CohortError, match="needs the column"):
        scan_cohort(cohort_dir, predictions=bad)
    with pytest.raises(CohortError, match="not found"):
        scan_cohort(cohort_dir, labels=tmp_path / "missing.csv")
    # A broken feature file is a warning, not a crash.
    (tmp_path / "feats").mkdir()
    (tmp_path / "feats" / "tissue.h5").write_bytes(b"garbage")
    c = scan_cohort(cohort_dir, features_dir=tmp_path / "feats")
    assert not c.row("tissue").has_features
    assert any("tissue.h5" in w for w in c.warnings)
    # A malformed probability is reported, the row kept.
    p = tmp_path / "p.csv"
    p.write_text("slide_id,pred,prob_a\ntissue,a,oops\ntissue,a,0.5\n")
    c = scan_cohort(cohort_dir, predictions=p)
    assert c.row("tissue").pred == "a" and c.row("tissue").prob is None
    assert len(c.warnings) == 2
