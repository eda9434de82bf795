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
    docked = viewer.window.dock_widgets
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
    docked = viewer.window.dock_widgets
    for name in DOCKED_WIDGETS:
        assert any(name in key for key in docked), docked.keys()
    inference = next(d for k, d in docked.items() if "Inference" in k)
    assert inference.checkpoint.text() == str(files["checkpoint"])

    inference.features_dir.setText(str(tmp_path / "features"))  # keep sample_data clean
    assert inference.run()
    qtbot.waitUntil(lambda: not inference.running, timeout=120_000)
    assert inference.last_error is None, inference.last_error
    assert inference.result.pred in inference.prediction.text()
    imp = next(l for l in viewer.layers
               if f"x10 {SCORES['node_importance'].display_name}" in l.name)
    vals = imp.data[np.isfinite(imp.data)]
    assert vals.size == 64 * 16 and vals.max() == 100.0  # 64 patches, 4 x 4 px; percentiles
    # the x10 heatmap sits on the slide: 512 µm patches (512 px at 1.0 µm/px) / 4 px
    np.testing.assert_allclose(imp.scale, (128.0, 128.0))
    dock = next(k for k in docked if "Inference" in k)
    docked[dock].raise_()
    viewer.window.resize(1600, 1000)
    qtbot.wait(100)
    viewer.reset_view()
    qtbot.wait(200)
    save_screenshot(viewer, SCREENSHOTS / "workbench.png")


def _tab_bars(viewer):
    """The visible tab bars of the window's dock groups, as lists of tab titles."""
    from qtpy.QtWidgets import QTabBar

    main = next(iter(viewer.window.dock_widgets.values())).window()
    return main, [tb for tb in main.findChildren(QTabBar) if tb.isVisible() and tb.count()]


def test_workbench_tabs_are_readable_steps_in_order(make_napari_viewer, qtbot):
    """At 1600 px: the five steps numbered in order in one group, the ML tools in another,
    no title elided, the window not forced taller than asked; Next brings the next step."""
    from napari_higt.ui.app import open_workbench

    viewer = make_napari_viewer(show=True)
    open_workbench(viewer=viewer)
    viewer.window.resize(1600, 1000)
    qtbot.wait(300)
    main, bars = _tab_bars(viewer)
    groups = sorted([bar.tabText(i) for i in range(bar.count())] for bar in bars)
    assert groups == [["1 Slide", "2 Graph", "3 Inference", "4 Inspect", "5 Export"],
                      ["Entities", "Cohort", "Training"]]
    for bar in bars:
        for i in range(bar.count()):
            text = bar.tabText(i)
            # An elided tab is narrower than its text (Qt draws "Sl…").
            assert bar.tabRect(i).width() >= bar.fontMetrics().horizontalAdvance(text) + 8, text
    assert main.height() <= 1000 + 40 and main.width() <= 1600 + 40
    # The next step is a button away, and it is highlighted once the step is done.
    slide = next(w for k, w in viewer.window.dock_widgets.items() if k.startswith("Slide"))
    assert "2 Graph" in slide.next_button.text() and slide.next_button.styleSheet()
    slide.next_button.click()
    qtbot.wait(100)
    steps = next(bar for bar in bars if bar.count() == 5)
    assert steps.tabText(steps.currentIndex()) == "2 Graph"


def test_cached_results_show_on_open_and_prediction_follows_selection(
        make_napari_viewer, qtbot, tmp_path, cmu1_path):
    """A slide whose feature file caches a run shows its maps and prediction as soon as the
    workbench opens it (nothing re-selected, nothing rerun); the prediction text is always
    the selected slide's."""
    import shutil

    from napari_higt.demo import demo_files
    from napari_higt.inference import run_inference
    from napari_higt.ui.app import open_workbench
    from napari_higt.ui.results import RESULT_KEY
    from tests.ui.conftest import open_slide

    files = demo_files()
    slide = tmp_path / "slides" / "demo_mosaic.tif"
    slide.parent.mkdir()
    shutil.copy(files["slide"], slide)
    first = run_inference(slide, files["checkpoint"], slide.parent / "features", mpp=2.0)

    viewer = make_napari_viewer(show=True)
    open_workbench(slide, mpp=2.0, viewer=viewer)
    demo_layer = viewer.layers[0]
    inference = next(w for k, w in viewer.window.dock_widgets.items()
                     if k.startswith("Inference"))
    qtbot.waitUntil(lambda: RESULT_KEY in demo_layer.metadata and not inference.running,
                    timeout=180_000)
    scores = [ly for ly in viewer.layers if ly.metadata.get("higt_role") == "score"]
    assert scores and any(ly.visible for ly in scores)
    assert demo_layer.metadata[RESULT_KEY].pred == first.pred
    text = inference.prediction.text()
    assert f"demo_mosaic: {first.pred}" in text and "cached" in text

    cmu = open_slide(viewer, cmu1_path)  # selected on opening
    qtbot.waitUntil(lambda: "cmu-1-small-region" in inference.prediction.text(),
                    timeout=30_000)
    assert "No prediction" in inference.prediction.text()
    viewer.layers.selection.active = demo_layer
    assert f"demo_mosaic: {first.pred}" in inference.prediction.text()
    viewer.layers.selection.active = cmu
    assert "No prediction for <b>cmu-1-small-region" in inference.prediction.text()
