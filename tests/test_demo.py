"""`napari-higt demo`: the whole pipeline on the bundled demo slide, every output checked."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_higt.cli import main
from napari_higt.demo import demo_files
from napari_higt.export.geojson import read_geojson


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_demo_writes_figure_geojson_csv_and_report(demo_run):
    from PIL import Image

    out, printed = demo_run
    meta = json.loads(demo_files()["meta"].read_text())
    assert set(meta["classes"]) == {"clustered", "scattered"}

    png = np.asarray(Image.open(out / "demo_mosaic.png").convert("RGB")).astype(float)
    assert png.shape[0] > 500 and png.std() > 20  # tissue and heatmap, not a blank canvas
    sat = png.max(-1) - png.min(-1)
    assert (sat > 60).mean() > 0.1  # coloured pixels: stained tissue under the heatmap
    svg = (out / "demo_mosaic.svg").read_text()
    assert "<svg" in svg and "assumed scale" in svg  # the scale is not read from the file
    assert "node_importance" in svg

    tiles = read_geojson(out / "demo_mosaic.geojson")
    levels = [p.get("level") for p in tiles.properties]
    with open(out / "demo_mosaic_nodes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    patches = [r for r in rows if r["level"] == "x10"]
    assert levels.count("x10") == len(patches) > 20  # one feature per patch
    assert levels.count("x5") == sum(r["level"] == "x5" for r in rows)
    assert all(p["objectType"] == "tile" for p in tiles.properties)
    imp = tiles.measurements["node_importance"]
    assert np.isfinite(imp).all() and imp.min() >= 0 and imp.max() == pytest.approx(1.0)
    assert {"bi_region_to_patch", "bi_patch_to_region"} <= set(tiles.measurements)
    # tile polygons are 512 px (1.0 µm/px at x10 on a 2.0 µm/px slide = 256 px) squares
    side = np.ptp(tiles.polygons[levels.index("x10")], axis=0)
    np.testing.assert_allclose(side, [256, 256])

    report = (out / "report.md").read_text()
    pred = next(c for c in ("clustered", "scattered") if f"**{c}**" in report)
    assert "prediction" in report and "assumed" in report and "| total |" in report
    assert f"prediction: {pred}" in printed


def test_demo_reports_a_missing_slide_in_one_line(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path / "o"), "--slide", str(tmp_path / "none.svs")])
    err = capsys.readouterr().err
    assert rc != 0 and "none.svs" in err and "Traceback" not in err
