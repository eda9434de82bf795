"""The Cohort browser: three real slides, a predictions CSV, stepping slide after slide."""

import os
import sys
import types
from pathlib import Path

import h5py
import pytest
from qtpy.QtCore import Qt

from napari_higt.ui import cohort_widget as cw
from napari_higt.ui.app import save_screenshot
from napari_higt.ui.layers import SLIDE_KEY
from tests.ui.conftest import SCREENSHOTS



@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory, cmu1_path, tcga_path, tiled_tiff):
    from napari_higt.features.pipeline import run_slide

    d = tmp_path_factory.mktemp("cohort")
    for src in (cmu1_path, tcga_path, tiled_tiff):
        os.symlink(src, d / src.name)
    # Features of the TCGA slide at a stated 1.0 µm/px (its file records no scale) with
    # cached model scores, as the inference widget leaves them.
    out = run_slide(d / tcga_path.name, d / "features", "handcrafted", mpp=1.0).path
    with h5py.File(out, "a") as h5:
        h5.create_group("explain").create_dataset("node_importance", data=[0.5] * 50)
    (d / "preds.csv").write_text(
        "slide_id,pred,prob_tumour,prob_normal\n"
        "cmu-1-small-region,tumour,0.91,0.09\n"
        "tcga-cr-7395-01a-01-ts1,normal,0.40,0.60\n"
        "tissue,tumour,0.55,0.45\n")
    (d / "labels.csv").write_text(
        "slide_id,label\ncmu-1-small-region,tumour\ntcga-cr-7395-01a-01-ts1,tumour\n"
        "tissue,normal\n")
    return d


@pytest.fixture
def cached_calls(monkeypatch):
    """A stand-in for the lead's ``napari_higt.ui.results`` module, recording its calls."""
    calls = []
    mod = types.ModuleType("napari_higt.ui.results")
    mod.show_cached_results = lambda viewer, layer, path: calls.append((layer.name, Path(path)))
    monkeypatch.setitem(sys.modules, "napari_higt.ui.results", mod)
    return calls


def _slides(viewer):
    return [ly.name for ly in viewer.layers if ly.metadata.get("higt_role") == "slide"]


def _key(qtbot, widget, key):
    qtbot.keyClick(widget.table, key)


def test_review_a_cohort(make_napari_viewer, qtbot, notes, cached_calls, cohort_dir):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    _, w = viewer.window.add_plugin_dock_widget("napari-higt", "Cohort browser")
    assert not w.load() and "folder" in notes[-1][1]
    w.folder.setText(str(cohort_dir))
    w.predictions.setText(str(cohort_dir / "preds.csv"))
    w.labels.setText(str(cohort_dir / "labels.csv"))
    w.load_button.click()
    t = w.table
    assert t.rowCount() == 3
    col = {h: i for i, h in enumerate(cw.COLUMNS)}
    cells = {t.item(r, 0).text(): [t.item(r, c).text() for c in range(5)] for r in range(3)}
    assert cells["cmu-1-small-region"][1:4] == ["tumour", "0.910", "tumour"]
    assert cells["tcga-cr-7395-01a-01-ts1"][1:] == ["normal", "0.600", "tumour",
                                                    "features, graph, prediction"]
    assert cells["tissue"][4] == "prediction"

    # Sort by probability (numerically), ascending.
    t.sortItems(col["probability"], Qt.AscendingOrder)
    order = [t.item(r, 0).text() for r in range(3)]
    assert order == ["tissue", "tcga-cr-7395-01a-01-ts1", "cmu-1-small-region"]
    # Filter: misclassified only, then everything again.
    w.filter.setText("wrong")
    assert [t.item(r, 0).text() for r in w.visible_rows()] == ["tissue",
                                                               "tcga-cr-7395-01a-01-ts1"]
    w.filter.setText("")
    assert len(w.visible_rows()) == 3

    # Double-click the first row: the tiled TIFF opens in µm.
    rect = t.visualItemRect(t.item(0, 0))
    # (Qt emits doubleClicked only for the index the press landed on: click, then double)
    qtbot.mouseClick(t.viewport(), Qt.LeftButton, pos=rect.center())
    assert _slides(viewer) == []  # a single click only selects
    qtbot.mouseDClick(t.viewport(), Qt.LeftButton, pos=rect.center())
    assert _slides(viewer) == ["tissue"] and w.current.slide_id == "tissue"
    assert viewer.layers["tissue"].scale[0] == pytest.approx(0.5)
    # Down: the next slide replaces it, with its overlays; its scale comes from the feature
    # file (the TCGA file records none) and its cached scores are shown.
    overlay = viewer.add_points([[0, 0]], metadata={SLIDE_KEY: str(cohort_dir / "tissue.tif")})
    _key(qtbot, w, Qt.Key_Down)
    assert _slides(viewer) == ["tcga-cr-7395-01a-01-ts1"]
    assert overlay not in viewer.layers
    assert viewer.layers[0].scale[0] == pytest.approx(1.0)
    assert cached_calls == [("tcga-cr-7395-01a-01-ts1",
                             cohort_dir / "features" / "tcga-cr-7395-01a-01-ts1.h5")]
    assert "predicted normal (0.60)" in w.info.text()
    _key(qtbot, w, Qt.Key_Down)
    assert _slides(viewer) == ["cmu-1-small-region"] and len(viewer.layers) == 1
    assert len(cached_calls) == 1  # no cached scores for this one
    viewer.window._qt_window.activateWindow()
    qtbot.wait(200)
    dock = viewer.window.dock_widgets["Cohort browser (napari-higt)"].parent()
    viewer.window._qt_window.resizeDocks([dock], [560], Qt.Horizontal)
    qtbot.wait(100)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    save_screenshot(viewer, SCREENSHOTS / "cohort_widget.png")
    # At the end: Next says so and keeps the slide; Up / Previous go back.
    w.next_button.click()
    assert "last" in notes[-1][1] and _slides(viewer) == ["cmu-1-small-region"]
    _key(qtbot, w, Qt.Key_Up)
    assert _slides(viewer) == ["tcga-cr-7395-01a-01-ts1"]
    w.prev_button.click()
    assert _slides(viewer) == ["tissue"]
    # Filtering skips rows while stepping.
    w.filter.setText("status:graph")
    w.next_button.click()
    assert _slides(viewer) == ["tcga-cr-7395-01a-01-ts1"]


def test_bad_csv_and_missing_results_module(make_napari_viewer, notes, cohort_dir, tmp_path,
                                            monkeypatch):
    viewer = make_napari_viewer()
    w = cw.CohortWidget(viewer)
    w.folder.setText(str(cohort_dir))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,class\nx,y\n")
    w.predictions.setText(str(bad))
    assert not w.load() and "needs the column" in notes[-1][1]
    assert w.table.rowCount() == 0
    # No results module (the lead's may not be there): the slide simply opens.
    monkeypatch.setitem(sys.modules, "napari_higt.ui.results", None)
    w.predictions.setText("")
    assert w.load()
    assert w.open_table_row(w.table_row_of("tcga-cr-7395-01a-01-ts1"))
    assert _slides(viewer) == ["tcga-cr-7395-01a-01-ts1"]
    w.close_current()
    assert len(viewer.layers) == 0
