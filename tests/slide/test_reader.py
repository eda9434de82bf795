import threading

import numpy as np
import pytest

from napari_higt.slide import Slide, SlideError
from napari_higt.slide.pyramid import TileCache


def test_cmu1_metadata(cmu1_path):
    with Slide(cmu1_path) as s:
        assert s.level_count == 1
        assert s.dimensions == (2220, 2967)
        assert s.mpp == pytest.approx((0.499, 0.499), abs=1e-3)
        assert s.mpp_from_file
        assert s.objective_power == 20
        assert s.vendor == "aperio"
        assert s.slide_id == "cmu-1-small-region"


def test_tcga_has_no_scale_until_stated(tcga_path):
    with Slide(tcga_path) as s:
        assert s.mpp is None and s.objective_power is None
        assert s.level_dimensions == ((4443, 3567), (2221, 1783))
        with pytest.raises(SlideError, match="--mpp"):
            s.require_mpp()
        s.set_mpp(0.5)
        assert s.require_mpp() == (0.5, 0.5)
    with Slide(tcga_path, mpp=(0.25, 0.26)) as s:
        assert s.mpp == (0.25, 0.26) and not s.mpp_from_file


@pytest.mark.parametrize("bad", [0, -1, float("nan"), (1, 2, 3)])
def test_bad_mpp_argument(cmu1_path, bad):
    with pytest.raises(SlideError, match="mpp"):
        Slide(cmu1_path, mpp=bad)


def test_read_region_rgb_and_white_outside(cmu1_path):
    with Slide(cmu1_path) as s:
        px = s.read_region((2100, 2900), 0, (200, 100))
        assert px.shape == (100, 200, 3) and px.dtype == np.uint8
        # Beyond the slide's edge OpenSlide gives transparent pixels: shown as white.
        assert (px[:, 150:] == 255).all()
        tissue = s.read_region((1000, 2200), 0, (256, 256))
        assert tissue.std() > 20 and tissue.mean() < 220  # H&E, not glass
        with pytest.raises(SlideError, match="level 3"):
            s.read_region((0, 0), 3, (10, 10))


def test_generated_tiff_reads_scale_and_levels(tiled_tiff):
    with Slide(tiled_tiff) as s:
        assert s.mpp == pytest.approx((0.5, 0.5))
        assert s.level_dimensions == ((2048, 1536), (1024, 768), (512, 384))
        assert s.best_level_for_downsample(3) == 1
        assert s.best_level_for_downsample(100) == 2


def test_pyramid_single_level_gets_lazy_levels(cmu1_path):
    with Slide(cmu1_path) as s:
        pyr = s.pyramid()
        shapes = [a.shape for a in pyr]
        assert shapes[0] == (2967, 2220, 3)
        assert len(pyr) >= 3
        for a, b in zip(shapes, shapes[1:]):
            assert b[0] < a[0] and b[1] < a[1]
        assert all(a.dtype == np.uint8 for a in pyr)
        # Chunks follow the file's tiles (SVS tiles of 240 px here), also as dask.
        th = int(s.properties["openslide.level[0].tile-height"])
        assert pyr[0].chunks[0][0] == th
        dask_level = pyr[1].to_dask()
        assert dask_level.chunks == pyr[1].chunks
        np.testing.assert_array_equal(dask_level[100:300, 50:90].compute(), pyr[1][100:300, 50:90])
        assert pyr[0][5, 7].shape == (3,) and pyr[0][..., 0].shape == (2967, 2220)
        # A lazy level equals block-averaging level 0.
        lvl1 = np.asarray(pyr[1][:200, :300])
        full = s.read_region((0, 0), 0, (600, 400)).astype(float)
        expect = full.reshape(200, 2, 300, 2, 3).mean(axis=(1, 3))
        assert np.abs(lvl1.astype(float) - expect).max() <= 1.0


def test_pyramid_reads_only_tiles_in_view(tiled_tiff):
    with Slide(tiled_tiff) as s:
        pyr = s.pyramid()
        assert len(s.cache) == 0
        view = np.asarray(pyr[0][300:500, 300:500])  # inside tile (1, 1) only
        assert view.shape == (200, 200, 3)
        assert len(s.cache) == 1
        direct = s.read_region((300, 300), 0, (200, 200))
        np.testing.assert_array_equal(view, direct)
        np.asarray(pyr[0][300:500, 300:500])
        assert s.cache.hits >= 1


def test_pyramid_two_levels_file_keeps_file_levels(tcga_path):
    with Slide(tcga_path) as s:
        levels = s.pyramid_levels()
        assert [lv.file_level for lv in levels[:2]] == [0, 1]
        assert levels[0].factor == levels[1].factor == 1
        assert max(levels[-1].shape) <= 1024


def test_thumbnail(cmu1_path):
    with Slide(cmu1_path) as s:
        t = s.thumbnail(256)
        assert max(t.shape[:2]) == 256 and t.shape[2] == 3
        assert t.shape[0] > t.shape[1]  # portrait like the slide


def test_tile_cache_bounded():
    cache = TileCache(max_bytes=3 * 1000)
    for i in range(10):
        cache.put(("k", i), np.zeros(1000, np.uint8))
    assert cache.nbytes <= 3000 and len(cache) == 3
    assert cache.get(("k", 0)) is None and cache.get(("k", 9)) is not None


def test_threaded_reads_agree(tiled_tiff):
    with Slide(tiled_tiff, cache_bytes=2**20) as s:
        arr = s.pyramid()[0]
        expect = s.read_region((0, 0), 0, (2048, 1536))
        errors = []

        def work(seed):
            rng = np.random.default_rng(seed)
            for _ in range(20):
                y, x = rng.integers(0, 1300), rng.integers(0, 1800)
                got = np.asarray(arr[y:y + 200, x:x + 200])
                if not np.array_equal(got, expect[y:y + 200, x:x + 200]):
                    errors.append((y, x))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors


# -- bad input ------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(SlideError, match="not found"):
        Slide(tmp_path / "nope.svs")


def test_directory(tmp_path):
    with pytest.raises(SlideError, match="folder"):
        Slide(tmp_path)


def test_broken_svs_from_shared_data(tmp_path):
    from tests.conftest import SHARED_DATA

    broken = SHARED_DATA / "slides" / "broken.svs"
    if not broken.exists():  # the repo's tests do not need shared/; recreate its kind
        broken = tmp_path / "broken.svs"
        broken.write_bytes(b"II*\x00" + b"\x00" * 997)
    with pytest.raises(SlideError) as info:
        Slide(broken)
    assert str(broken) in str(info.value)


def test_valid_tiff_header_then_garbage(tmp_path, tiled_tiff):
    bad = tmp_path / "truncated.tif"
    data = tiled_tiff.read_bytes()
    bad.write_bytes(data[:16] + np.random.default_rng(0).bytes(5000))
    with pytest.raises(SlideError):
        Slide(bad)


def test_truncated_slide_fails_cleanly(tmp_path, tiled_tiff):
    cut = tmp_path / "cut.tif"
    data = tiled_tiff.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    try:
        s = Slide(cut)
    except SlideError:
        return
    # Opened (directory intact) but tiles missing: reading must fail as SlideError.
    with pytest.raises(SlideError):
        for level in range(s.level_count):
            w, h = s.level_dimensions[level]
            s.read_region((0, 0), level, (w, h))


def test_plain_png_is_not_a_slide(tmp_path, tissue_rgb):
    from skimage.io import imsave

    png = tmp_path / "tile.png"
    imsave(png, tissue_rgb)
    with pytest.raises(SlideError, match="tiled pyramidal TIFF"):
        Slide(png)


def test_untiled_tiff_is_refused(tmp_path, tissue_rgb):
    import tifffile

    p = tmp_path / "strip.tif"
    tifffile.imwrite(p, tissue_rgb, photometric="rgb")
    with pytest.raises(SlideError):
        Slide(p)


def test_file_vanishing_while_open(tmp_path, tiled_tiff):
    import shutil

    p = tmp_path / "gone.tif"
    shutil.copy(tiled_tiff, p)
    s = Slide(p)
    p.unlink()
    try:
        px = s.read_region((1024, 1024), 0, (256, 256))
        assert px.shape == (256, 256, 3)  # still readable through the open handle
    except SlideError as exc:
        assert "vanished" in str(exc)
    s.close()
    with pytest.raises(SlideError, match="closed"):
        s.read_region((0, 0), 0, (8, 8))


def test_empty_level_and_empty_region_are_refused(cmu1_path, monkeypatch):
    import openslide

    with Slide(cmu1_path) as s:
        with pytest.raises(SlideError, match="both sides must be positive"):
            s.read_region((0, 0), 0, (0, 10))
    monkeypatch.setattr(openslide.OpenSlide, "level_dimensions", property(lambda self: ((0, 0),)))
    with pytest.raises(SlideError, match="empty level"):
        Slide(cmu1_path)
