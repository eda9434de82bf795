"""Labels and folds that would train a model on nothing: one usable class, one-class folds,
fold typos, unreadable CSVs, a corrupt run to resume; and the one labels rule."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import assert_refused

TRAIN = ("--model", "mean", "--folds", "2", "--epochs", "1", "--device", "cpu", "--hidden", "8")


def _labels(path, rows, header="slide_id,label"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_one_usable_class_after_missing_features(run_cli, cohort_copy, tmp_path):
    folder, labels = cohort_copy
    for p in folder.glob("*.h5"):
        if int(p.stem[1:]) % 2:  # every tumour slide loses its features
            p.unlink()
    res = run_cli("train", folder, labels, "--out", tmp_path / "run", *TRAIN)
    assert_refused(res, "'tumour'", labels.name)
    assert not list((tmp_path / "run").rglob("*.pt"))


def test_csv_folds_of_one_class_each(run_cli, cohort_copy, tmp_path):
    folder, _ = cohort_copy
    rows = [f"s{i:03d},{'tumour' if i % 2 else 'benign'},{i % 2}" for i in range(20)]
    labels = _labels(tmp_path / "l.csv", rows, "slide_id,label,fold")
    res = run_cli("train", folder, labels, "--out", tmp_path / "run", *TRAIN)
    assert_refused(res, "fold", "only class")
    assert not list((tmp_path / "run").rglob("*.pt"))


def test_fold_typo_is_not_fold_zero(run_cli, cohort_copy, tmp_path):
    folder, _ = cohort_copy
    rows = [f"s{i:03d},{'tumour' if i % 2 else 'benign'},{i % 3}" for i in range(20)]
    rows[3] = "s003,tumour,0.5"
    labels = _labels(tmp_path / "l.csv", rows, "slide_id,label,fold")
    assert_refused(run_cli("train", folder, labels, "--out", tmp_path / "run", *TRAIN),
                   "l.csv", "line 5", "'0.5'")


def test_latin1_labels(run_cli, cohort_copy, tmp_path):
    folder, _ = cohort_copy
    labels = tmp_path / "l.csv"
    labels.write_bytes("slide_id,label\ns000,bénin\ns001,tumour\n".encode("latin-1"))
    assert_refused(run_cli("train", folder, labels, "--out", tmp_path / "run", *TRAIN),
                   "l.csv", "UTF-8")


def test_resume_with_a_corrupt_run_file(run_cli, cohort_copy, tmp_path):
    folder, labels = cohort_copy
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"train": {"epochs": 1')  # cut by a crash
    res = run_cli("train", folder, labels, "--out", run, "--resume", *TRAIN)
    assert_refused(res, "run.json", "--overwrite")


def test_labels_are_normalised_by_one_rule_and_the_classes_printed(run_cli, cohort_copy,
                                                                    tmp_path):
    folder, _ = cohort_copy
    spell = ["Benign", "1", " BENIGN", "1.0", "benign", "01", "benign "]
    labels = _labels(tmp_path / "l.csv", [f"s{i:03d},{spell[i % 7] if i < 7 else spell[i % 2]}"
                                          for i in range(20)])
    res = run_cli("train", folder, labels, "--out", tmp_path / "run", *TRAIN)
    assert res.rc == 0, res.err
    assert "classes ['1', 'benign']" in res.out  # two classes, not six
    warn = [ln for ln in res.err.splitlines() if "warning:" in ln]
    assert len(warn) == 1 and "'01', '1', '1.0' -> '1'" in warn[0]


@pytest.mark.parametrize("text,classes", [
    ("a,TUMOR\nb,tumor\nc,Normal\n", ["normal", "tumor"]),
    ("a,1\nb,1.0\nc,0\nd,0.0\n", ["0", "1"]),
    ("a, 2 \nb,10\nc,2.50\n", ["2", "2.5", "10"]),
])
def test_label_rule(tmp_path, text, classes):
    from napari_higt.labels import read_labels

    with pytest.warns(UserWarning) if text.count("\n") > len(classes) else _nothing():
        t = read_labels(_labels(tmp_path / "l.csv", text.strip().splitlines()))
    assert t.class_names == classes


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
