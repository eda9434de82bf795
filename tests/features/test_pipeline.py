"""preprocess_slide and `napari-higt preprocess` on slides of known layout and real samples."""

from __future__ import annotations

import numpy as np
import pytest

from napari_higt.errors import FeatureError, SlideError
from napari_higt.errors import Cancelled
from napari_higt.features.pipeline import preprocess_slide, run_slide
from napari_higt.features.store import FeatureStore, read_graph
from napari_higt.graph import EDGE_SPATIAL

from .conftest import CELL, LAYOUT, PATCH


def _expected_patches():
    ys, xs = np.nonzero(LAYOUT)
    return {(int(x) * CELL, int(y) * CELL) for x, y in zip(xs, ys)}


def test_layout_slide_end_to_end(layout_slide, tmp_path):
    calls = []
    p = preprocess_slide(layout_slide, tmp_path, "handcrafted", patch_size=PATCH,
                         batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert p == tmp_path / "layout.h5"
    d = FeatureStore.read(p, extractor="handcrafted", dim=64)
    assert d.counts() == {"thumbnail": 1, "x5": 6, "x10": 14}
    assert set(map(tuple, d.coords["x10"].tolist())) == _expected_patches()
    assert set(map(tuple, (d.coords["x5"] // (2 * CELL)).tolist())) == {
        (0, 0), (2, 0), (2, 1), (3, 1), (2, 2), (3, 2)}
    assert d.level_attrs["x10"]["patch_size_level0"] == pytest.approx(CELL)
    assert d.level_attrs["x5"]["magnification"] == 5.0
    assert calls[0] == (0, 21) and calls[-1] == (21, 21)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)

    g = read_graph(p)
    assert g.counts() == {"thumbnail": 1, "x5": 6, "x10": 14} and g.synthesized_regions == 0
    # children per region: 4, 1, 3 (a hole), 2, 2, 2
    region_of = {tuple((g.coords[i] // (2 * CELL)).tolist()): i for i in np.nonzero(g.level == 1)[0]}
    kids = np.bincount(g.parent_index[g.level == 2], minlength=g.num_nodes)
    assert {r: int(kids[i]) for r, i in region_of.items()} == {
        (0, 0): 4, (2, 0): 1, (2, 1): 3, (3, 1): 2, (2, 2): 2, (3, 2): 2}
    # spatial patch edges: block of 4 (6 pairs), ring of 8 around the hole at (5,3) plus
    # (5,1) touching (4,2) (5,2) (6,2), and (7,5) touching (6,4)
    spatial = g.edge_index[:, g.edge_type == EDGE_SPATIAL]
    pc = {int(i): tuple((g.coords[i] // CELL).tolist()) for i in np.nonzero(g.level == 2)[0]}
    pairs = {frozenset((pc[a], pc[b])) for a, b in spatial.T.tolist() if a in pc}
    ring = [(4, 2), (5, 2), (6, 2), (6, 3), (6, 4), (5, 4), (4, 4), (4, 3)]
    want = {frozenset(p) for p in [((0, 0), (1, 0)), ((0, 0), (0, 1)), ((0, 0), (1, 1)),
                                   ((1, 0), (0, 1)), ((1, 0), (1, 1)), ((0, 1), (1, 1)),
                                   ((5, 1), (4, 2)), ((5, 1), (5, 2)), ((5, 1), (6, 2)),
                                   ((7, 5), (6, 4)), ((5, 2), (4, 3)), ((5, 2), (6, 3)),
                                   ((5, 4), (4, 3)), ((5, 4), (6, 3))]}
    want |= {frozenset((ring[i], ring[(i + 1) % 8])) for i in range(8)}
    assert pairs == want


def test_rerun_skips_and_resumes(layout_slide, tmp_path):
    r1 = run_slide(layout_slide, tmp_path, patch_size=PATCH)
    mtime = r1.path.stat().st_mtime_ns
    r2 = run_slide(layout_slide, tmp_path, patch_size=PATCH)
    assert (r1.status, r2.status) == ("done", "skipped")
    assert r2.counts == r1.counts and r1.path.stat().st_mtime_ns == mtime
    # other tiling settings -> recomputed; an interrupted run leaves nothing behind
    with pytest.raises(Cancelled):
        run_slide(layout_slide, tmp_path / "c", patch_size=PATCH, cancel=lambda: True)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())
    r3 = run_slide(layout_slide, tmp_path, patch_size=PATCH, tissue_threshold=0.5)
    assert r3.status == "done"


def test_other_extractor_in_the_way(layout_slide, tmp_path):
    run_slide(layout_slide, tmp_path, patch_size=PATCH)

    class Tiny:
        name = "tiny"
        dim = 2
        config: dict = {}

        def __call__(self, batch):
            return np.zeros((len(batch), 2), np.float32)

    with pytest.raises(FeatureError, match="written by the 'handcrafted' extractor.*--overwrite"):
        run_slide(layout_slide, tmp_path, Tiny(), patch_size=PATCH)
    r = run_slide(layout_slide, tmp_path, Tiny(), patch_size=PATCH, overwrite=True)
    assert FeatureStore.read(r.path, extractor="tiny", dim=2).dim == 2

    class Liar(Tiny):
        dim = 3

    with pytest.raises(FeatureError, match="declares dim=3"):
        run_slide(layout_slide, tmp_path / "l", Liar(), patch_size=PATCH)


def test_bad_slides(blank_slide, layout_slide, tcga_path, tmp_path):
    with pytest.raises(SlideError, match="no tissue found.*--tissue-threshold"):
        run_slide(blank_slide, tmp_path, patch_size=PATCH)
    with pytest.raises(SlideError, match="smaller than one 512-px x10 patch"):
        run_slide(layout_slide, tmp_path, patch_size=512, mpp=0.25)  # 2048 px patches
    with pytest.raises(SlideError, match="--mpp"):
        run_slide(tcga_path, tmp_path)
    assert not list(tmp_path.glob("*.h5"))


def test_cli_preprocess(layout_slide, tcga_path, cmu1_path, tmp_path, capsys):
    from napari_higt.cli import main

    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"II*\x00" + b"\x00" * 100)
    rc = main(["preprocess", str(cmu1_path), str(tcga_path), str(broken), "--out",
               str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "cmu-1-small-region" in out and "done" in out
    assert "--mpp" in err and "broken" in err
    assert "1 done, 0 up to date, 2 failed" in out
    cmu = read_graph(tmp_path / "out" / "cmu-1-small-region.h5")
    assert cmu.counts() == {"thumbnail": 1, "x5": 1, "x10": 2}

    rc = main(["preprocess", str(tcga_path), str(cmu1_path), "--mpp", "0.5", "--out",
               str(tmp_path / "out"), "--batch-size", "8"])
    out, _ = capsys.readouterr()
    assert rc == 0, out
    g = read_graph(tmp_path / "out" / "tcga-cr-7395-01a-01-ts1.h5")
    assert g.counts() == {"thumbnail": 1, "x5": 4, "x10": 11}
    # cmu keeps its own 0.499 µm/px: unchanged, so up to date; --force-mpp recomputes it
    assert "1 done, 1 up to date, 0 failed" in out
    rc = main(["preprocess", str(cmu1_path), "--mpp", "0.5", "--force-mpp", "--out",
               str(tmp_path / "out")])
    out, _ = capsys.readouterr()
    assert rc == 0 and "1 done, 0 up to date" in out
    assert FeatureStore.read_attrs(tmp_path / "out" / "cmu-1-small-region.h5")["mpp"] == 0.5


def test_cli_unknown_extractor_and_missing_weights(layout_slide, tmp_path, capsys):
    from napari_higt.cli import main

    assert main(["preprocess", str(layout_slide), "--out", str(tmp_path), "--extractor", "x"]) == 1
    assert "unknown feature extractor 'x'" in capsys.readouterr().err
    assert main(["preprocess", str(layout_slide), "--out", str(tmp_path), "--extractor", "cnn"]) == 1
    assert "--weights" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_dask_scheduler(layout_slide, blank_slide, tmp_path, capsys):
    """The distributed path, on an in-process cluster given as --scheduler."""
    from distributed import Client, LocalCluster

    from napari_higt.cli import main

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster):
        rc = main(["preprocess", str(layout_slide), str(blank_slide), "--out", str(tmp_path),
                   "--scheduler", cluster.scheduler_address, "--extractor-arg", "work_size=64",
                   "--patch-size", str(PATCH)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "no tissue found" in err
    d = FeatureStore.read(tmp_path / "layout.h5")
    assert d.counts() == {"thumbnail": 1, "x5": 6, "x10": 14}
    assert '"work_size": 64' in d.attrs["extractor_config"]
