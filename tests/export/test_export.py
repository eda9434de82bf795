import json

import numpy as np
import pytest
from skimage.io import imread

from napari_higt.explain.rasters import node_raster
from napari_higt.export.figure import FigureSpec, nice_length, save_figure, slide_figure
from napari_higt.export.geojson import nodes_to_geojson, read_geojson, write_geojson
from napari_higt.export.table import write_node_csv
from napari_higt.slide import Slide


@pytest.fixture
def grid_nodes():
    ys, xs = np.mgrid[0:5, 0:4]
    coords = np.stack([xs.ravel() * 512 + 100, ys.ravel() * 512 + 300], axis=1)
    scores = np.linspace(0, 1, len(coords))
    return coords, scores


@pytest.mark.parametrize("t,expect", [(730, 500), (0.33, 0.2), (100, 100), (19, 10)])
def test_nice_length(t, expect):
    assert nice_length(t) == pytest.approx(expect)


def test_figure_png_has_heatmap_and_scale_bar(tmp_path, cmu1_path, grid_nodes):
    coords, scores = grid_nodes
    with Slide(cmu1_path) as s:
        raster = node_raster(coords, 512, scores, s.dimensions)
        spec = FigureSpec(title="tumour (p = 0.91)", score_name="importance", opacity=0.6)
        fig = slide_figure(s, raster, spec, max_pixels=800)
        png = save_figure(fig, tmp_path / "fig.png", dpi=100)
        spec_plain = FigureSpec(title="tumour (p = 0.91)", score_name="importance", opacity=0.6)
        svg = save_figure(slide_figure(s, raster, spec_plain, max_pixels=800), tmp_path / "f.svg")
        pdf = save_figure(slide_figure(s, None, FigureSpec(), max_pixels=400), tmp_path / "f.pdf")
    img = imread(png)[..., :3].astype(float)
    assert img.std() > 20
    assert spec.mpp == pytest.approx((0.499, 0.499), abs=1e-3) and not spec.mpp_assumed
    assert "µm" in svg.read_text() or "m" in svg.read_text()
    assert pdf.read_bytes()[:4] == b"%PDF"
    # The inferno heatmap's warm colours appear (orange/yellow: red high, blue low).
    warm = (img[..., 0] > 180) & (img[..., 2] < 120)
    assert warm.mean() > 0.005


def test_scale_bar_is_drawn(tmp_path, cmu1_path):
    """A crop holding the bar differs from the same crop of a figure without it."""
    from matplotlib.patches import Rectangle

    with Slide(cmu1_path) as s:
        fig = slide_figure(s, None, FigureSpec(), max_pixels=400)
        with_bar = save_figure(fig, tmp_path / "with.png", dpi=100)
        ax = fig.axes[0]
        bar = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "scalebar"]
        assert len(bar) == 1
        bbox = bar[0].get_window_extent()
        for p in bar:
            p.remove()
        for t in ax.texts:
            t.remove()
        without = save_figure(fig, tmp_path / "without.png", dpi=100)
    a, b = imread(with_bar)[..., :3].astype(int), imread(without)[..., :3].astype(int)
    h = a.shape[0]
    x0, x1 = int(bbox.x0), int(bbox.x1) + 1
    y0, y1 = h - int(bbox.y1) - 1, h - int(bbox.y0) + 1  # display y runs upwards
    crop_a, crop_b = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
    assert np.abs(crop_a - crop_b).mean() > 30
    assert crop_a.mean() < crop_b.mean()  # the bar is black


def test_scale_marked_assumed_and_unknown(tmp_path, tcga_path):
    with Slide(tcga_path) as s:
        fig = slide_figure(s, None, FigureSpec(), max_pixels=300)
        assert any("scale unknown" in t.get_text() for t in fig.axes[0].texts)
        s.set_mpp(0.25)
        fig = slide_figure(s, None, FigureSpec(), max_pixels=300)
        assert any("assumed scale" in t.get_text() for t in fig.axes[0].texts)


def test_bad_figure_requests(tmp_path, cmu1_path):
    with Slide(cmu1_path) as s:
        fig = slide_figure(s, None, FigureSpec(), max_pixels=200)
        with pytest.raises(ValueError, match="format"):
            save_figure(fig, tmp_path / "f.jpg")
        with pytest.raises(ValueError, match="outside"):
            slide_figure(s, None, FigureSpec(), region=(5000, 5000, 6000, 6000))
    assert not list(tmp_path.iterdir())


def test_geojson_round_trip_and_qupath_properties(tmp_path, grid_nodes):
    coords, scores = grid_nodes
    levels = ["x10"] * len(coords)
    gj = nodes_to_geojson(coords, 512, levels, {"importance": scores, "bi_r2p": -scores})
    path = write_geojson(tmp_path / "nodes.geojson", gj)
    data = json.loads(path.read_text())
    assert len(data["features"]) == len(coords)
    f = data["features"][3]
    assert f["properties"]["objectType"] == "tile"
    assert f["properties"]["classification"]["name"] == "x10"
    assert f["properties"]["measurements"]["importance"] == pytest.approx(scores[3])
    ring = np.array(f["geometry"]["coordinates"][0])
    assert ring.shape == (5, 2) and (ring[0] == ring[-1]).all()
    back = read_geojson(path)
    assert len(back.polygons) == len(coords)
    np.testing.assert_allclose([p.min(axis=0) for p in back.polygons], coords)
    np.testing.assert_allclose(back.measurements["importance"], scores)
    shapes = back.napari_shapes()
    np.testing.assert_allclose(shapes[0][0], coords[0][::-1])


def test_geojson_reads_qupath_old_measurement_lists(tmp_path):
    feat = {"type": "Feature", "geometry": {"type": "Polygon",
            "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]},
            "properties": {"measurements": [{"name": "a", "value": 2.5}]}}
    p = tmp_path / "q.json"
    p.write_text(json.dumps([feat]))
    assert read_geojson(p).measurements["a"][0] == 2.5
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_geojson(p)


def test_node_csv_rows_equal_nodes(tmp_path, grid_nodes):
    import csv

    coords, scores = grid_nodes
    path = write_node_csv(tmp_path / "n.csv", coords, 512, ["x10"] * len(coords),
                          {"importance": scores}, slide_id="s1")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(coords)
    assert rows[2]["x"] == str(coords[2, 0]) and float(rows[2]["importance"]) == pytest.approx(scores[2])
    with pytest.raises(ValueError, match="3 values"):
        write_node_csv(tmp_path / "bad.csv", coords, 512, ["x10"] * len(coords), {"s": [1, 2, 3]})
    assert not (tmp_path / "bad.csv").exists()


def test_full_disk_leaves_no_half_written_file(tmp_path, monkeypatch, grid_nodes):
    import errno

    from napari_higt import io

    coords, scores = grid_nodes
    target = tmp_path / "nodes.geojson"
    target.write_text("old content")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_geojson(target, nodes_to_geojson(coords, 512, "x10"))
    assert target.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["nodes.geojson"]
