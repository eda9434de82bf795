"""The Entity overlay widget on real tissue: SLIC entities of the x10 patch in view."""

from pathlib import Path

import numpy as np
import pytest

from napari_higt.slide.tiling import tile_origin_at
from napari_higt.ui.app import save_screenshot
from napari_higt.ui.layers import slide_of_layer
from tests.ui.conftest import SCREENSHOTS, open_slide



@pytest.fixture(scope="module")
def encoder(tmp_path_factory, tissue_rgb):
    """A small H-MGDM checkpoint (untrained weights, normaliser fitted on real entities)."""
    from napari_higt.graph.entities import entity_graph
    from napari_higt.models.hmgdm import HMGDM, HMGDMConfig, save_hmgdm_checkpoint

    model = HMGDM(HMGDMConfig.small(hidden=32, latent=16, timesteps=100))
    model.fit_normalizer([entity_graph(tissue_rgb[:512, :512], n_segments=60)])
    return save_hmgdm_checkpoint(tmp_path_factory.mktemp("enc") / "enc.pt", model)


def test_entities_of_the_patch_in_view(make_napari_viewer, qtbot, notes, tcga_path, encoder):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    _, w = viewer.window.add_plugin_dock_widget("napari-higt", "Entity overlay")
    assert not w.run()
    assert "No slide selected" in notes[-1][1]
    image = open_slide(viewer, tcga_path, mpp=1.0)
    slide = slide_of_layer(image)
    # Centre the view on a tissue point: at 1.0 µm/px an x10 patch is 512 px = 512 µm.
    target = (2000.0, 1700.0)  # (y, x) µm
    viewer.scene.camera.center = target
    origin = tile_origin_at(slide, target[::-1])
    assert origin == (1536, 1536)
    w.n_segments.setValue(80)
    w.compactness.setValue(15.0)
    w.encoder.setText(str(encoder))
    w.run_button.click()
    assert not w.run() and "already running" in notes[-1][1]
    qtbot.waitUntil(lambda: not w.running, timeout=60000)
    assert w.last_error is None, w.last_error

    lab = w.layers["entities"]
    n = w.result.graph.num_nodes
    assert lab.data.shape == (512, 512) and lab.contour == 1
    assert 20 < n <= 200 and lab.data.max() == n and lab.data.min() >= 0
    np.testing.assert_allclose(lab.scale, (1.0, 1.0))
    # pixel (0, 0) of the patch sits at its level-0 origin, in µm
    np.testing.assert_allclose(lab.data_to_world((0, 0)), (1536.0, 1536.0))
    edges = w.layers["entity edges"]
    n_edges = int((w.result.graph.edge_index[0] < w.result.graph.edge_index[1]).sum())
    assert edges.data.shape == (n_edges, 2, 2) and n_edges >= n - 1
    np.testing.assert_allclose(edges.scale, lab.scale)
    np.testing.assert_allclose(edges.translate, lab.translate)
    # edge starts are entity centroids inside the patch
    assert edges.data[:, 0].min() >= 0 and edges.data[:, 0].max() < 512

    err = w.layers["entity error"]
    vals = err.data[lab.data > 0]
    assert np.isfinite(vals).mean() > 0.9 and np.nanmin(vals) >= 0
    assert np.isnan(err.data[lab.data == 0]).all()
    lo, hi = err.contrast_limits
    assert np.nanmin(vals) <= lo < hi <= np.nanmax(vals)
    mask = w.layers["entity mask"]
    assert set(np.unique(mask.data)) <= {0, 1, 2} and {1, 2} <= set(np.unique(mask.data))
    assert (mask.data[lab.data > 0] > 0).all()
    assert "masked" in w.status.text()

    viewer.scene.camera.zoom = 1.2 * viewer.scene.camera.zoom * 4
    viewer.scene.camera.center = (1536 + 256, 1536 + 256)
    qtbot.wait(200)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    save_screenshot(viewer, SCREENSHOTS / "entity_widget.png")

    # A slide at 0.499 µm/px: the x10 patch is resampled, the layers still land in µm.
    cmu = open_slide(viewer, Path(tcga_path).with_name("cmu-1-small-region.svs"))
    viewer.layers.selection.active = cmu
    viewer.scene.camera.center = (800.0, 700.0)
    w.encoder.setText("")
    w.run_button.click()
    qtbot.waitUntil(lambda: not w.running, timeout=60000)
    lab2 = w.layers["entities"]
    assert lab2.name.startswith("cmu-1") and "entity error" not in w.layers
    np.testing.assert_allclose(lab2.scale, (1.0, 1.0), rtol=1e-6)
    x0, y0 = w.result.origin
    s10 = 512 / 0.499
    assert (x0, y0) == (round(s10), round(s10))
    np.testing.assert_allclose(lab2.data_to_world((0, 0)),
                               (y0 * 0.499 + (s10 / 512 - 1) / 2 * 0.499,
                                x0 * 0.499 + (s10 / 512 - 1) / 2 * 0.499))
    assert "tcga-cr-7395-01a-01-ts1 entities" in viewer.layers  # the other slide's stay


def test_cancel_and_bad_encoder(make_napari_viewer, qtbot, notes, tcga_path, tmp_path):
    viewer = make_napari_viewer()
    open_slide(viewer, tcga_path, mpp=1.0)
    _, w = viewer.window.add_plugin_dock_widget("napari-higt", "Entity overlay")
    assert w.run()
    w.cancel_button.click()
    qtbot.waitUntil(lambda: not w.running, timeout=60000)
    assert "Cancelled" in w.status.text() and w.layers == {}
    w.encoder.setText(str(tmp_path / "none.pt"))
    assert not w.run() and "not found" in notes[-1][1]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    w.encoder.setText(str(bad))
    w.run_button.click()
    qtbot.waitUntil(lambda: not w.running, timeout=60000)
    assert notes[-1][0] == "show_warning" and "checkpoint" in notes[-1][1]
    assert w.layers == {}
