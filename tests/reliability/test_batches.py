"""Batch commands process every input they can, name each bad one, exit 1; two preprocess
runs on one folder share the work instead of doing it twice."""

from __future__ import annotations

import threading
import time

from tests.reliability.conftest import CMU, assert_refused, leftovers


def test_preprocess_names_each_bad_slide_and_writes_the_good_one(run_cli, tmp_path):
    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"II*\x00 not really a tiff")
    out = tmp_path / "features"
    res = run_cli("preprocess", tmp_path / "missing.svs", broken, CMU, "--out", out)
    assert_refused(res, "missing.svs", lines=2)
    assert_refused(res, "broken", lines=2)
    assert (out / "cmu-1-small-region.h5").is_file()
    assert "1 done, 0 up to date, 2 failed" in res.out
    assert not leftovers(out)


def test_a_second_preprocess_run_waits_for_the_slide_the_first_is_writing(run_cli, tmp_path):
    from napari_higt.commands.preprocess import _one

    out = tmp_path / "features"
    out.mkdir()
    first: dict = {}
    kw = dict(out_dir=out, extractor="handcrafted")

    def slow_progress(done, total):
        time.sleep(0.3)  # keep the claim long enough for the second run to meet it

    worker = threading.Thread(target=lambda: first.update(_one(str(CMU), kw, slow_progress)))
    worker.start()
    deadline = time.monotonic() + 60
    while not (out / ".cmu-1-small-region.h5.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    res = run_cli("preprocess", CMU, "--out", out)
    worker.join()
    assert first["status"] == "done"
    assert res.rc == 0, res.err
    assert "another preprocess run is writing it; waiting" in res.out + res.err
    assert "0 done, 1 up to date, 0 failed" in res.out  # reused, not computed twice
    assert not leftovers(out)
