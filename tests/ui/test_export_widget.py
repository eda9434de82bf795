"""Export from the widget and from the command line, then read every file back."""

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imread

from napari_higt.cli import main
from napari_higt.explain.registry import SCORES
from napari_higt.inference import run_inference
from tests.ui.conftest import SCREENSHOTS

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, tcga_path, small_checkpoint):
    ckpt, feats = small_checkpoint
    work = tmp_path_factory.mktemp("pred") / "features"
    shutil.copytree(feats, work)
    return run_inference(tcga_path, ckpt, work, mpp=1.0)


def _check_outputs(files, result, object_type="tile"):
    g = result.graph
    n_tiles = int((g.level != 0).sum())
    img = imread(files["png"])[..., :3].astype(float)
    assert img.std() > 20
    data = json.loads(files["geojson"].read_text())
    assert len(data["features"]) == n_tiles
    assert {f["properties"]["objectType"] for f in data["features"]} == {object_type}
    column = SCORES["node_importance"].label()  # "<plain name> [percentile]"
    assert column in data["features"][0]["properties"]["measurements"]
    rows = list(csv.DictReader(files["csv"].open()))
    assert len(rows) == n_tiles and {"x", "y", "size", column} <= set(rows[0])
    # node ids are the graph's (the inspector's): the thumbnail, node 0, is not a tile
    assert [int(r["node"]) for r in rows] == list(np.flatnonzero(g.level != 0))
    return data


def _svg_root_and_texts(path):
    """The parsed SVG and the strings of its text.

    matplotlib draws text as glyph paths (``svg.fonttype = "path"``) and keeps each string
    only as an XML comment in front of the glyphs, so the comments are the text.
    """
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.parse(path, parser).getroot()
    texts = [el.text.strip() for el in root.iter() if el.tag is ET.Comment]
    return root, texts


def _longest_dark_run(img: np.ndarray) -> int:
    """Length of the longest horizontal run of near-black pixels (a scale bar is one)."""
    dark = (img[..., :3] < 60).all(axis=-1)
    best = 0
    for row in dark:
        # Run lengths from the positions where the row switches between dark and not.
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(np.int8), 0]))
        if len(edges):
            best = max(best, int((edges[1::2] - edges[::2]).max()))
    return best


def _check_scale_bar(png, slide, result, kwargs, out, monkeypatch):
    """The widget's PNG differs from the same figure with its scale bar made transparent
    only in the lower part, and there it has a long black bar the other lacks."""
    from napari_higt.export import figure
    from napari_higt.export.bundle import export_result

    draw_bar = figure._scale_bar

    def transparent_bar(ax, *args, **kwargs):
        # Drawn but fully transparent: leaving the bar out would also move the layout.
        before = set(ax.patches) | set(ax.texts)
        draw_bar(ax, *args, **kwargs)
        for artist in (set(ax.patches) | set(ax.texts)) - before:
            artist.set_alpha(0.0)
            if hasattr(artist, "get_bbox_patch") and artist.get_bbox_patch() is not None:
                artist.get_bbox_patch().set_alpha(0.0)

    monkeypatch.setattr(figure, "_scale_bar", transparent_bar)
    bare = imread(export_result(slide, result, out, formats=["png"], **kwargs)["png"])
    monkeypatch.undo()
    with_bar = imread(png)
    assert with_bar.shape == bare.shape
    rows, cols = np.nonzero((with_bar[..., :3] != bare[..., :3]).any(axis=-1))
    h, w = bare.shape[:2]
    assert len(rows) > 500, "the scale bar is missing: the figure equals one drawn without it"
    assert rows.min() > h / 2 and cols.min() > w / 4, "the figures differ outside the bar"
    crop = np.s_[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert _longest_dark_run(with_bar[crop]) > 40 > _longest_dark_run(bare[crop])


def test_export_widget_writes_files_that_read_back(make_napari_viewer, tcga_path, predicted,
                                                   tmp_path, qtbot, notes, monkeypatch):
    from napari_higt.export.geojson import read_geojson
    from napari_higt.ui.app import save_screenshot
    from napari_higt.ui.layers import apply_slide_scale, slide_of_layer
    from napari_higt.ui.results import show_result

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    (layer,) = viewer.open(str(tcga_path), plugin="napari-higt")
    _, w = viewer.window.add_plugin_dock_widget("napari-higt", "Export")
    assert not w.run() and "run inference" in notes[-1][1]
    slide = slide_of_layer(layer)
    slide.set_mpp(1.0)
    apply_slide_scale(viewer, slide)
    show_result(viewer, layer, predicted)
    w.out_dir.setText(str(tmp_path / "out"))
    w.formats["pdf"].setChecked(True)
    w.object_type.setCurrentText("detection")
    w.run_button.click()
    assert w.running
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert w.last_error is None, w.last_error
    assert set(w.written) == {"png", "svg", "pdf", "geojson", "csv", "report"}
    assert w.status.text() == "Wrote PNG, SVG, PDF, GeoJSON, CSV, report.md to out/"
    # Screenshot of the widget beside the slide with its scores painted (README).
    viewer.reset_view()
    qtbot.wait(100)
    save_screenshot(viewer, SCREENSHOTS / "export_widget.png")
    _check_outputs(w.written, predicted, object_type="detection")
    assert w.written["pdf"].read_bytes()[:5] == b"%PDF-"

    # The SVG: an <svg> with the slide as an image, the title, the colour bar's score name,
    # the scale bar's length and the bar itself (the rectangle export/ tags "scalebar").
    root, texts = _svg_root_and_texts(w.written["svg"])
    assert root.tag == f"{SVG}svg"
    assert root.find(f".//{SVG}image") is not None
    prob = predicted.probs[predicted.pred]
    assert any(t.startswith(f"{predicted.slide_id}: {predicted.pred} (p = {prob:.2f})")
               for t in texts), texts
    assert any(t.startswith(f"{SCORES['node_importance'].display_name} (x10)")
               for t in texts), texts
    assert any(t.endswith("µm (assumed scale)") for t in texts), texts
    bar = root.find(f".//{SVG}g[@id='scalebar']")
    assert bar is not None and bar.find(f"{SVG}path") is not None

    kwargs = {"score": w.score.currentData(), "level": w.level.currentText(),
              "opacity": w.opacity.value(), "dpi": w.dpi.value()}
    _check_scale_bar(w.written["png"], slide, predicted, kwargs, tmp_path / "bare",
                     monkeypatch)

    # The GeoJSON round-trips into napari Shapes at the same place as the graph's tiles.
    tiles = read_geojson(w.written["geojson"])
    shapes = viewer.add_shapes(tiles.napari_shapes(), shape_type="polygon",
                               scale=layer.scale, name="qupath tiles")
    g = predicted.graph
    first = np.flatnonzero(g.level != 0)[0]
    np.testing.assert_allclose(shapes.data[0].min(axis=0), g.coords[first][::-1])
    np.testing.assert_allclose(shapes.scale, layer.scale)

    # "Current view": zoomed on a part of the slide, the figure covers what is on screen.
    from napari_higt.ui.export_widget import view_region

    viewer.layers.remove(shapes)
    cam = viewer.scene.camera
    cam.center, cam.zoom = (1000.0, 1500.0), 1.0  # (y, x) µm at 1 µm/px
    qtbot.wait(50)
    h, wd = viewer.canvas.size
    x0, y0, x1, y1 = view_region(viewer, slide)
    assert (x0 + x1) / 2 == pytest.approx(1500, abs=2) and (y0 + y1) / 2 == pytest.approx(1000, abs=2)
    assert x1 - x0 == pytest.approx(wd, abs=2) and y1 - y0 == pytest.approx(h, abs=2)
    w.current_view.setChecked(True)
    w.out_dir.setText(str(tmp_path / "view"))
    w.run_button.click()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert w.last_error is None, w.last_error
    from PIL import Image

    view_png = np.asarray(Image.open(w.written["png"]).convert("RGB"))
    full_png = np.asarray(Image.open(tmp_path / "out" / f"{slide.slide_id}.png").convert("RGB"))
    # same settings, other extent: a figure identical to the whole-slide one would mean the
    # view was ignored
    assert view_png.shape != full_png.shape or not np.array_equal(view_png, full_png)



def test_export_without_slide_notifies_and_writes_nothing(make_napari_viewer, tmp_path, qtbot,
                                                          notes):
    from napari_higt.ui.export_widget import ExportWidget

    viewer = make_napari_viewer()
    w = ExportWidget(viewer)
    qtbot.addWidget(w)
    out = tmp_path / "out"
    w.out_dir.setText(str(out))
    viewer.add_image(np.zeros((64, 64), np.uint8), name="not a slide")
    for _ in range(2):  # a viewer with a non-slide layer, then an empty one
        w.run_button.click()
        assert not w.running
        assert notes[-1][0] == "show_warning" and "No slide selected" in notes[-1][1]
        viewer.layers.clear()
    assert len(notes) == 2 and not out.exists() and w.written == {}


def test_export_cli(tmp_path, tcga_path, predicted, capsys):
    out = tmp_path / "cli"
    rc = main(["export", str(tcga_path), str(predicted.feature_path), "--out", str(out),
               "--mpp", "1.0", "--formats", "png", "--markers", "--region", "0,0,2000,2000"])
    assert rc == 0
    files = {"png": out / f"{predicted.slide_id}.png",
             "geojson": out / f"{predicted.slide_id}.geojson",
             "csv": out / f"{predicted.slide_id}_nodes.csv"}
    _check_outputs(files, predicted)
    assert main(["export", str(tcga_path), str(predicted.feature_path), "--out", str(out),
                 "--formats", "jpg"]) == 1
    assert "must be a comma list of png, svg, pdf" in capsys.readouterr().err


def test_export_refuses_unwritable_folder(tmp_path, tcga_path, predicted):
    import os

    from napari_higt.errors import UserFacingError
    from napari_higt.export.bundle import export_result
    from napari_higt.slide import Slide

    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        with Slide(tcga_path, mpp=1.0) as s:
            if os.access(ro, os.W_OK):  # root ignores permissions: use a file as folder
                ro = tmp_path / "file"
                ro.write_text("x")
            with pytest.raises(UserFacingError, match="folder"):
                export_result(s, predicted, ro)
    finally:
        os.chmod(tmp_path / "ro", 0o700)
