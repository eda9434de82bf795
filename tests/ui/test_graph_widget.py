"""The Graph overlay widget driven as a user would, on the real TCGA sample slide."""

from pathlib import Path

import numpy as np

from napari_higt.ui.app import save_screenshot
from napari_higt.ui.layers import apply_slide_scale, slide_of_layer
from tests.ui.conftest import SCREENSHOTS, open_slide



def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-higt", "Graph overlay")
    return widget


def test_build_graph_shows_it_in_um(make_napari_viewer, qtbot, tmp_path, notes, tcga_path,
                                    tcga_graph):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 950)
    w = _dock(viewer)
    assert not w.run()  # no slide
    assert notes[-1][0] == "show_warning" and "No slide selected" in notes[-1][1]
    image = open_slide(viewer, tcga_path)
    assert not w.run()  # no scale: names the Slide widget's field
    assert "'Pixel size' field of the Slide widget" in notes[-1][1]
    assert "scale unknown" in w.slide_label.text()
    slide = slide_of_layer(image)
    slide.set_mpp(1.0)
    apply_slide_scale(viewer, slide)  # what the Slide widget's Set scale does
    # The Graph tab follows at once: the scale, marked as stated rather than read.
    assert "1 µm/px, assumed" in w.slide_label.text(), w.slide_label.text()

    w.features_dir.setText(str(tmp_path / "feats"))
    w.extractor.setCurrentText("handcrafted")
    w.threshold.setValue(0.25)
    w.run_button.click()
    assert w.running and not w.run_button.isEnabled() and w.cancel_button.isEnabled()
    assert not w.run()  # a second Run while one runs
    assert "already running" in notes[-1][1]
    qtbot.waitUntil(lambda: not w.running, timeout=30000)
    assert w.last_error is None, w.last_error
    assert (tmp_path / "feats" / f"{slide.slide_id}.h5").is_file()

    _, tiling = tcga_graph
    names = [ly.name.split(" · ")[0] for ly in w.layers]
    assert names == ["patch grid", "graph edges", "graph nodes"]
    nodes = w.layers[2]
    level = nodes.features["level"].to_numpy()
    assert (level == "thumbnail").sum() == 1
    assert (level == "x10").sum() == len(tiling.levels["x10"]) == 37
    assert (level == "x5").sum() == len(tiling.levels["x5"])
    for layer in w.layers:
        assert tuple(layer.units) == ("um", "um") or str(layer.units[0]) in ("micrometer", "um")
    np.testing.assert_allclose(nodes.scale, (1.0, 1.0))
    tf = nodes.features["tissue_fraction"].to_numpy()[level == "x10"]
    assert tf.min() > 0.25 and tf.max() <= 1.0
    # the tissue fractions are the tiler's own
    np.testing.assert_allclose(np.sort(tf), np.sort(tiling.levels["x10"].tissue), atol=0.05)
    assert "37 patches" in w.status.text()
    # The tissue past the last whole tile (right and bottom strips) is marked, not blank.
    strip = viewer.layers[f"tissue not scored (slide edge) · {slide.slide_id}"]
    ds = float(strip.scale[0])  # µm per strip pixel at 1 µm/px = level-0 px per pixel
    marked = np.argwhere(strip.data[..., 3] > 0)
    assert len(marked) > 100
    size = tiling.levels["x10"].size0
    beyond_x = (marked[:, 1] + 0.5) * ds >= (4443 // size) * size
    beyond_y = (marked[:, 0] + 0.5) * ds >= (3567 // size) * size
    assert (beyond_x | beyond_y).all() and beyond_x.any() and beyond_y.any()
    # The legend names every mark; the check boxes switch the parts.
    for word in ("x10 patch", "x5 region", "whole-slide", "spatial edge", "scale edge"):
        assert word in w.legend.text()
    before = nodes.features["level"].value_counts()
    w.parts["x5"].setChecked(False)
    after = nodes.features["level"].value_counts()
    assert before["x5"] > 0 and "x5" not in after and after["x10"] == before["x10"]
    w.parts["x5"].setChecked(True)
    assert nodes.features["level"].value_counts().equals(before)
    w.parts["grid"].setChecked(False)
    assert not w.layers[0].visible
    w.parts["grid"].setChecked(True)

    # Screenshot of the widget in use, zoomed on the tissue.
    viewer.reset_view()
    viewer.scene.camera.center = tuple(np.asarray(nodes.data).mean(0))
    qtbot.wait(200)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    save_screenshot(viewer, SCREENSHOTS / "graph_widget.png")

    # Run again: the feature file is up to date, so it is not recomputed; layers replaced.
    n_layers = len(viewer.layers)
    w.run_button.click()
    qtbot.waitUntil(lambda: not w.running, timeout=30000)
    assert "features up to date" in w.status.text()
    assert len(viewer.layers) == n_layers


def test_cancel_and_close_while_running(make_napari_viewer, qtbot, tmp_path, notes, tcga_path):
    viewer = make_napari_viewer()
    open_slide(viewer, tcga_path, mpp=1.0)
    w = _dock(viewer)
    w.features_dir.setText(str(tmp_path / "a"))
    assert w.run()
    w.cancel_button.click()
    qtbot.waitUntil(lambda: not w.running, timeout=30000)
    assert "Cancelled" in w.status.text() and ("show_info", "Cancelled.") in notes
    assert not list((tmp_path / "a").glob("*.h5")) and w.layers == []
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()

    # A bad extractor option is a warning with the core's message, not a traceback.
    w.extractor.setCurrentText("cnn")
    w.model_file.setText(str(tmp_path / "missing.pt"))
    w.features_dir.setText(str(tmp_path / "b"))
    w.run_button.click()
    qtbot.waitUntil(lambda: not w.running, timeout=30000)
    assert notes[-1][0] == "show_warning" and w.last_error

    # Closing the viewer while a worker runs: it is told to stop, nothing crashes.
    w.extractor.setCurrentText("handcrafted")
    w.features_dir.setText(str(tmp_path / "c"))
    assert w.run()
    worker = w.worker
    with qtbot.waitSignal(worker.finished, timeout=30000):
        viewer.close()
    assert not list((tmp_path / "c").glob("*.h5"))
