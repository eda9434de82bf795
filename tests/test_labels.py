"""The one labels CSV parser (training, CLI, training widget, cohort browser)."""

from __future__ import annotations

import pytest

from napari_higt.cohort import CohortError, scan_cohort
from napari_higt.labels import LabelError, read_labels


def test_read_labels(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("slide_id,label,fold\na.svs,10,0\nb,2,1\nc.h5,10,1\n")
    t = read_labels(p)
    assert t.slide_ids == ["a", "b", "c"] and t.class_names == ["2", "10"]  # numeric order
    assert t.index().tolist() == [1, 0, 1] and t.folds == [0, 1, 1]
    p.write_text("slide,label\na,x\n")
    with pytest.raises(LabelError, match="slide_id,label"):
        read_labels(p)
    p.write_text("slide_id,label\na,x\nb,x\n")
    with pytest.raises(LabelError, match="one class"):
        read_labels(p)


def test_read_labels_rules(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("Label,Slide_ID,patient\nx,a.h5,p1\ny,b.tiff,p2\nx,a,p1\n\n")
    t = read_labels(p)  # any case and column order; extensions dropped; same repeat ignored
    assert t.slide_ids == ["a", "b"] and t.labels == ["x", "y"] and t.folds is None
    assert t.as_dict() == {"a": "x", "b": "y"}
    p.write_text("slide_id,label\na,x\na,y\n")
    with pytest.raises(LabelError, match="'a' is listed with labels 'x' and 'y'"):
        read_labels(p)
    p.write_text("slide_id,label\na,\nb,y\n")
    with pytest.raises(LabelError, match="line 2: empty slide_id or label"):
        read_labels(p)
    p.write_text("slide_id,label,fold\na,x,one\nb,y,1\n")
    with pytest.raises(LabelError, match="fold 'one' is not an integer"):
        read_labels(p)
    p.write_text("slide_id,label\n")
    with pytest.raises(LabelError, match="lists no slides"):
        read_labels(p)
    p.write_text("slide_id,label\na,x\n")
    assert read_labels(p, min_classes=1).class_names == ["x"]
    with pytest.raises(LabelError, match="not found"):
        read_labels(tmp_path / "none.csv")


def test_group_column(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("slide_id,case_id,label\na,P1,x\nb,P1,y\nc,P2,x\n")
    assert read_labels(p).groups is None
    assert read_labels(p, group_column="CASE_ID").groups == ["P1", "P1", "P2"]
    with pytest.raises(LabelError, match="no column 'patient'"):
        read_labels(p, group_column="patient")
    p.write_text("slide_id,case_id,label\na,P1,x\nb,,y\n")
    with pytest.raises(LabelError, match="line 3: empty case_id for slide 'b'"):
        read_labels(p, group_column="case_id")


def test_cohort_reads_labels_with_the_same_rules(tmp_path, cmu1_path):
    import shutil

    d = tmp_path / "slides"
    d.mkdir()
    shutil.copy(cmu1_path, d / cmu1_path.name)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"slide_id,label\n{cmu1_path.name},tumour\nghost,normal\n")
    c = scan_cohort(d, labels=labels)
    assert c.row(cmu1_path.stem).label == "tumour"  # file name -> slide id, as in training
    assert any("ghost" in w for w in c.warnings)
    labels.write_text(f"slide_id,label\n{cmu1_path.stem},tumour\n{cmu1_path.stem},normal\n")
    with pytest.raises(CohortError, match="listed with labels"):
        scan_cohort(d, labels=labels)
