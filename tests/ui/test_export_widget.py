"""Export from the widget and from the command line, then read every file back."""

import csv
import json
import shutil

import numpy as np
import pytest
from skimage.io import imread

from napari_higt.cli import main
from napari_higt.inference import run_inference


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, tcga_path, small_checkpoint):
    ckpt, feats = small_checkpoint
    work = tmp_path_factory.mktemp("pred") / "features"
    shutil.copytree(feats, work)
    return run_inference(tcga_path, ckpt, work, mpp=1.0)


def _check_outputs(files, result):
    g = result.graph
    n_tiles = int((g.level != 0).sum())
    img = imread(files["png"])[..., :3].astype(float)
    assert img.std() > 20
    data = json.loads(files["geojson"].read_text())
    assert len(data["features"]) == n_tiles
    props = data["features"][0]["properties"]
    assert props["objectType"] == "tile" and "node_importance" in props["measurements"]
    rows = list(csv.DictReader(files["csv"].open()))
    assert len(rows) == n_tiles and {"x", "y", "size", "node_importance"} <= set(rows[0])
    return data


def test_export_widget_writes_files_that_read_back(make_napari_viewer, tcga_path, predicted,
                                                   tmp_path, qtbot, notes):
    from napari_higt.export.geojson import read_geojson
    from napari_higt.ui.export_widget import ExportWidget
    from napari_higt.ui.layers import apply_slide_scale, slide_of_layer
    from napari_higt.ui.results import show_result

    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tcga_path), plugin="napari-higt")
    w = ExportWidget(viewer)
    qtbot.addWidget(w)
    assert not w.run() and "run inference" in notes[-1][1]
    slide = slide_of_layer(layer)
    slide.set_mpp(1.0)
    apply_slide_scale(viewer, slide)
    show_result(viewer, layer, predicted)
    w.out_dir.setText(str(tmp_path / "out"))
    w.formats["pdf"].setChecked(True)
    assert w.run()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert w.last_error is None, w.last_error
    assert set(w.written) == {"png", "svg", "pdf", "geojson", "csv"}
    _check_outputs(w.written, predicted)
    # The GeoJSON round-trips into napari Shapes at the same place as the graph's tiles.
    tiles = read_geojson(w.written["geojson"])
    shapes = viewer.add_shapes(tiles.napari_shapes(), shape_type="polygon",
                               scale=layer.scale, name="qupath tiles")
    g = predicted.graph
    first = np.flatnonzero(g.level != 0)[0]
    np.testing.assert_allclose(shapes.data[0].min(axis=0), g.coords[first][::-1])
    np.testing.assert_allclose(shapes.scale, layer.scale)


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
    assert "unknown figure format" in capsys.readouterr().err


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
