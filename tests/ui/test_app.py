"""The README's main job: the workbench on the sample slide, rendered headless."""

from skimage.io import imread

from napari_higt.cli import main


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
