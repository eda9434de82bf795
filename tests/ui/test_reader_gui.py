"""napari's own machinery opening slides through the plugin, in a shown viewer (Xvfb)."""

import numpy as np
import pytest

from napari_higt.ui.layers import slide_of_layer
from napari_higt.ui.reader import get_reader


def test_viewer_open_sample_with_plugin(make_napari_viewer, cmu1_path, qtbot):
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(cmu1_path), plugin="napari-higt")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.multiscale and layer.rgb
    assert len(layer.data) >= 3
    # µm: level-0 pixel of 0.499 µm.
    np.testing.assert_allclose(layer.scale, (0.499, 0.499), atol=1e-3)
    assert layer.metadata["slide_info"]["mpp"] == pytest.approx([0.499, 0.499], abs=1e-3)
    assert viewer.canvas.overlays.scale_bar.visible
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    rgb = shot[..., :3].astype(float)
    assert rgb.std() > 10, "screenshot is blank"
    # H&E: some pixels are pink/purple (red and blue above green), not just grey.
    pinkish = (rgb[..., 0] > rgb[..., 1] + 20) & (rgb[..., 2] > rgb[..., 1] + 10)
    assert pinkish.mean() > 0.01


def test_slide_without_scale_opens_in_pixels_and_notifies(make_napari_viewer, tcga_path,
                                                          monkeypatch):
    from napari_higt.ui import reader

    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", messages.append)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tcga_path), plugin="napari-higt")
    np.testing.assert_allclose(layer.scale, (1.0, 1.0))
    assert [str(u) for u in layer.units] == ["pixel", "pixel"]
    assert messages and "--mpp" in messages[0] and "widget" in messages[0]
    assert reader is not None


def test_stating_the_scale_switches_every_layer_to_um(make_napari_viewer, tcga_path, qtbot):
    from napari_higt.ui.commands import add_tissue_mask
    from napari_higt.ui.slide_widget import SlideWidget

    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tcga_path), plugin="napari-higt")
    mask = add_tissue_mask(viewer)
    ds = mask.metadata["higt_px_scale"]
    np.testing.assert_allclose(mask.scale, (ds, ds))
    widget = SlideWidget(viewer)
    qtbot.addWidget(widget)
    assert "unknown" in widget.info.text()
    viewer.layers.selection.active = layer
    widget.mpp.setValue(0.25)
    widget.set_scale_button.click()
    np.testing.assert_allclose(layer.scale, (0.25, 0.25))
    np.testing.assert_allclose(mask.scale, (0.25 * ds, 0.25 * ds))
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    assert [str(u) for u in mask.units] == ["micrometer", "micrometer"]
    assert "0.2500" in widget.info.text()
    # The mask covers the same tissue as the image: its extent matches the slide's.
    assert mask.extent.world[1][1] == pytest.approx(layer.extent.world[1][1], rel=0.02)


def test_tissue_mask_command_adds_labels(make_napari_viewer, cmu1_path):
    from napari_higt.ui.commands import add_tissue_mask

    viewer = make_napari_viewer()
    assert add_tissue_mask(viewer) is None  # no slide: a notification, no error
    viewer.open(str(cmu1_path), plugin="napari-higt")
    labels = add_tissue_mask(viewer)
    assert labels.data.dtype == np.uint8 and set(np.unique(labels.data)) == {0, 1}
    assert 0.2 < labels.data.mean() < 0.95
    assert slide_of_layer(labels) is not None


def test_sample_data_contributions(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-higt", "cmu1")
    viewer.open_sample("napari-higt", "tcga")
    assert [l.name for l in viewer.layers] == ["cmu-1-small-region", "tcga-cr-7395-01a-01-ts1"]


def test_reader_declines_what_it_cannot_open(tmp_path, tissue_rgb):
    from skimage.io import imsave

    (tmp_path / "notes.svs").write_text("not a slide")
    assert get_reader(str(tmp_path / "notes.svs")) is None
    imsave(tmp_path / "x.png", tissue_rgb)
    assert get_reader(str(tmp_path / "x.png")) is None
    assert get_reader(str(tmp_path / "missing.tif")) is None
    assert get_reader([str(tmp_path / "a.svs"), str(tmp_path / "b.svs")]) is None


def test_opening_a_corrupt_slide_in_the_viewer_does_not_raise_a_traceback(
        make_napari_viewer, tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", messages.append)
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00" + b"\x00" * 997)
    viewer = make_napari_viewer()
    # napari finds no reader willing to open it: its own clear error, no crash in ours.
    with pytest.raises(ValueError, match="refused the file"):
        viewer.open(str(bad), plugin="napari-higt")
    assert len(viewer.layers) == 0
    assert any("broken.svs" in m and "corrupt" in m for m in messages)


def test_slide_failing_while_on_screen_draws_blank_and_warns_once(make_napari_viewer, tmp_path,
                                                                 tcga_path, qtbot, monkeypatch):
    """The file behind an open slide becomes unreadable: napari keeps drawing (white tiles,
    no traceback in the viewer) and one notification says what happened."""
    import shutil

    import napari.utils.notifications as nt

    warned = []
    monkeypatch.setattr(nt, "show_warning", lambda msg: warned.append(str(msg)))
    path = tmp_path / "moving.svs"
    shutil.copy(tcga_path, path)
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(path), plugin="napari-higt")
    qtbot.wait(50)
    slide = slide_of_layer(layer)
    slide.close()  # what a vanished or truncated file ends in: every read raises SlideError
    viewer.scene.camera.zoom *= 3
    layer.refresh()
    qtbot.wait(100)
    level = layer.data[0]
    np.testing.assert_array_equal(level[100:110, 200:230], 255)
    assert level[5:9].shape == (4, layer.data[0].shape[1], 3)
    blank = [w for w in warned if "blank tiles" in w]
    assert len(blank) == 1 and "moving.svs" in blank[0] and "open the slide again" in blank[0]
    from napari_higt.slide import SlideError

    with pytest.raises(SlideError, match="closed"):  # the core level underneath still raises
        level._level[0:4, 0:4]
