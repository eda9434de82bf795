"""The README's main job: the workbench on the sample slide, rendered headless."""

from skimage.io import imread

from napari_higt.cli import main
from napari_higt.explain.registry import SCORES
from tests.ui.conftest import SCREENSHOTS


def test_view_headless_writes_the_workbench_png(tmp_path, cmu1_path):
    import subprocess
    import sys

    out = tmp_path / "wb.png"
    # A fresh process, as the README command runs it (the display is pytest-xvfb's).
    subprocess.run([sys.executable, "-m", "napari_higt.cli", "view", str(cmu1_path),
                    "--headless", "--out", str(out)], check=True, timeout=300)
    img = imread(out)
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    rgb = img[..., :3].astype(float)
    assert rgb.std() > 20
    # The slide is drawn: H&E pink/purple pixels in the canvas area.
    pinkish = (rgb[..., 0] > rgb[..., 1] + 20) & (rgb[..., 2] > rgb[..., 1] + 10)
    assert pinkish.mean() > 0.02


def test_open_workbench_docks_the_widgets(make_napari_viewer, tcga_path):
    from napari_higt.ui.app import DOCKED_WIDGETS, open_workbench

    viewer = make_napari_viewer()
    open_workbench(tcga_path, mpp=0.25, viewer=viewer)
    assert viewer.layers[0].scale[0] == 0.25
    docked = viewer.window._dock_widgets
    for name in DOCKED_WIDGETS:
        assert any(name in key for key in docked), docked.keys()


def test_cli_reports_bad_slide_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.svs"
    bad.write_bytes(b"garbage")
    assert main(["view", str(bad), "--headless", "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "bad.svs" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_workbench_defaults_to_the_demo_and_paints_its_attention(make_napari_viewer, qtbot,
                                                                 tmp_path):
    """The main command's code path: demo slide, widgets docked, demo checkpoint preselected;
    one click on Run paints the attention (the README's screenshot)."""
    from pathlib import Path

    import numpy as np

    from napari_higt.demo import demo_files
    from napari_higt.ui.app import DOCKED_WIDGETS, open_workbench, save_screenshot

    files = demo_files()
    viewer = make_napari_viewer(show=True)
    open_workbench(viewer=viewer)
    assert viewer.layers[0].name == "demo_mosaic"
    assert viewer.layers[0].scale[0] == 2.0  # the demo's assumed scale
    docked = viewer.window._dock_widgets
    for name in DOCKED_WIDGETS:
        assert any(name in key for key in docked), docked.keys()
    inference = next(d for k, d in docked.items() if "Inference" in k).widget()
    assert inference.checkpoint.text() == str(files["checkpoint"])

    inference.features_dir.setText(str(tmp_path / "features"))  # keep sample_data clean
    assert inference.run()
    qtbot.waitUntil(lambda: not inference.running, timeout=120_000)
    assert inference.last_error is None, inference.last_error
    assert inference.result.pred in inference.prediction.text()
    imp = next(l for l in viewer.layers
               if f"{SCORES['node_importance'].display_name} x10" in l.name)
    vals = imp.data[np.isfinite(imp.data)]
    assert vals.size == 64 * 16 and vals.max() == 100.0  # 64 patches, 4 x 4 px; percentiles
    # the x10 heatmap sits on the slide: 512 µm patches (512 px at 1.0 µm/px) / 4 px
    np.testing.assert_allclose(imp.scale, (128.0, 128.0))
    dock = next(k for k in docked if "Inference" in k)
    docked[dock].raise_()
    viewer.window._qt_window.resize(1600, 1000)
    qtbot.wait(100)
    viewer.reset_view()
    qtbot.wait(200)
    save_screenshot(viewer, SCREENSHOTS / "workbench.png")
