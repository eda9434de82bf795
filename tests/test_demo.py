"""`napari-higt demo`: the whole pipeline on the bundled demo slide, every output checked."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_higt.cli import main
from napari_higt.demo import demo_files
from napari_higt.explain.registry import SCORES, default_score
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
    default = SCORES[default_score()]
    assert default.display_name in svg and "percentile within this slide" in svg

    tiles = read_geojson(out / "demo_mosaic.geojson")
    levels = [p.get("level") for p in tiles.properties]
    with open(out / "demo_mosaic_nodes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    patches = [r for r in rows if r["level"] == "x10"]
    assert levels.count("x10") == len(patches) > 20  # one feature per patch
    assert levels.count("x5") == sum(r["level"] == "x5" for r in rows)
    assert all(p["objectType"] == "tile" for p in tiles.properties)
    imp = tiles.measurements[default.label()]
    assert np.isfinite(imp).all() and imp.min() == 0 and imp.max() == pytest.approx(100.0)
    assert {SCORES[k].label() for k in ("bi_region_to_patch", "bi_patch_to_region")} \
        <= set(tiles.measurements)
    # tile polygons are 512 px (1.0 µm/px at x10 on a 2.0 µm/px slide = 256 px) squares
    side = np.ptp(tiles.polygons[levels.index("x10")], axis=0)
    np.testing.assert_allclose(side, [256, 256])

    report = (out / "report.md").read_text()
    pred = next(c for c in ("clustered", "scattered") if f"**{c}**" in report)
    assert "prediction" in report and "assumed" in report and "| total |" in report
    assert f"prediction: {pred}" in printed
    # the model card: a demonstration on a constructed task, wherever the prediction is
    assert "DEMONSTRATION model on a constructed task" in report
    assert "CONSTRUCTED" in report and "eval-fold" in report  # labels and protocol
    assert "[demonstration model, constructed task]" in printed
    assert "WARNING: out of domain? the slide's scale (2 µm/px) was stated" in printed
    assert "## What the numbers mean" in report and default.meaning in report


def test_demo_reports_a_missing_slide_in_one_line(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path / "o"), "--slide", str(tmp_path / "none.svs")])
    err = capsys.readouterr().err
    assert rc != 0 and "none.svs" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def demo_result(demo_run):
    """The demo's result as the Python API returns it (cached in its feature file)."""
    from napari_higt.inference import load_cached_result

    out, _ = demo_run
    return load_cached_result(out / "features" / "demo_mosaic.h5", demo_files()["slide"])


def _csv_rows(path):
    with open(path, newline="") as fh:
        return {int(r["node"]): r for r in csv.DictReader(fh)}


def _features(path):
    data = json.loads(path.read_text())
    return {f["properties"]["node_index"]: f for f in data["features"]}


def test_one_node_has_one_id_in_api_csv_geojson_and_inspector(demo_run, demo_result):
    """Follow x10 node j: Python API -> CSV row -> GeoJSON feature -> inspector text."""
    from napari_higt.explain.inspect import node_text
    from napari_higt.explain.normalise import node_values
    from napari_higt.levels import LEVEL_IDS

    out, _ = demo_run
    g = demo_result.graph
    j = int(np.flatnonzero(g.level == LEVEL_IDS["x10"])[11])  # not the first: ids differ
    x, y = (int(v) for v in g.coords[j])
    key = default_score()
    shown = node_values(g.level, demo_result.scores)[key][j]  # the API's value, as shown
    row = _csv_rows(out / "demo_mosaic_nodes.csv")[j]
    assert (row["level"], int(row["x"]), int(row["y"])) == ("x10", x, y)
    assert float(row[SCORES[key].label()]) == pytest.approx(shown)
    feat = _features(out / "demo_mosaic.geojson")[j]
    assert feat["id"] == str(j) and feat["properties"]["name"] == f"x10 node {j}"
    assert feat["geometry"]["coordinates"][0][0] == [x, y]
    assert feat["properties"]["measurements"][SCORES[key].label()] == pytest.approx(shown)
    lines = node_text(demo_result, j)
    assert lines[0] == f"x10 node {j} at x={x}, y={y} px"
    assert f"{SCORES[key].display_name}: {shown:.0f} (percentile" in "\n".join(lines)


def test_scores_missing_for_a_node_are_missing_everywhere(demo_run, demo_result):
    from napari_higt.explain.inspect import node_text
    from napari_higt.levels import LEVEL_IDS

    out, _ = demo_run
    g = demo_result.graph
    rows, feats = _csv_rows(out / "demo_mosaic_nodes.csv"), _features(out / "demo_mosaic.geojson")
    r2p, p2r = SCORES["bi_region_to_patch"], SCORES["bi_patch_to_region"]
    x5 = np.flatnonzero(g.level == LEVEL_IDS["x5"])
    x10 = np.flatnonzero(g.level == LEVEL_IDS["x10"])
    assert np.isnan(demo_result.scores["bi_region_to_patch"][x5]).all()  # API: NaN, not 0
    for j in x5:
        assert rows[j][r2p.label()] == "" and rows[j][p2r.label()] != ""  # CSV: empty cell
        assert r2p.label() not in feats[j]["properties"]["measurements"]  # GeoJSON: absent
    for j in x10:
        assert rows[j][p2r.label()] == "" and rows[j][r2p.label()] != ""
        assert p2r.label() not in feats[j]["properties"]["measurements"]
    text = "\n".join(node_text(demo_result, int(x5[0])))
    assert f"{r2p.display_name}: n/a (exists for x10 patches only)" in text  # inspector
    assert f"{p2r.display_name}: n/a" not in text


def test_demo_figure_title_says_demonstration(demo_result):
    from napari_higt.export.bundle import result_figure
    from napari_higt.slide import Slide

    with Slide(demo_files()["slide"], mpp=2.0) as s:
        fig = result_figure(s, demo_result)
    title = fig.axes[0].get_title()
    assert title.startswith(f"demo_mosaic: {demo_result.pred} (p = ")
    assert "[demonstration model, constructed task]" in title
    assert "DEMONSTRATION model on a constructed task" in title
    assert "WARNING: out of domain? the slide's scale" in title  # assumed, not read
    assert "percentile" in fig.get_supxlabel()  # what the colours mean
    bar = fig.axes[1].get_ylabel()
    assert SCORES[default_score()].display_name in bar and "percentile" in bar


def test_demo_on_a_slide_without_a_pixel_size_refuses_like_preprocess(tcga_path, tmp_path,
                                                                      capsys):
    main(["preprocess", str(tcga_path), "--out", str(tmp_path / "f")])
    pre = capsys.readouterr().err
    why = pre.split("error: ", 1)[1].strip()
    rc = main(["demo", "--slide", str(tcga_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("napari-higt demo: error: ")
    msg = err.split("error: ", 1)[1]
    assert msg in why and "--mpp" in msg and "pixel size" in msg  # preprocess's message
    assert not (tmp_path / "o").exists()  # refused before writing anything
