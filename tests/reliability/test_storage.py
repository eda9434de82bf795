"""Full disks and read-only folders, for every writer: one line naming the folder (and the
space needed), exit 1, never a crash, never a half-written or temporary file."""

from __future__ import annotations

import hashlib

import pytest

from tests.reliability.conftest import CMU, assert_refused, leftovers

TRAIN = ("--model", "higt", "--hidden", "16", "--folds", "2", "--epochs", "1",
         "--device", "cpu")


def _digest(folder) -> str:
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*.h5")):
        h.update(p.read_bytes())
    return h.hexdigest()


def _commands(where, ctx):
    """argv per writer, writing into folder ``where``."""
    folder, labels = ctx["cohort"]
    files = sorted(folder.glob("*.h5"))[:2]
    return {
        "preprocess": ["preprocess", CMU, "--out", where / "features"],
        "train": ["train", folder, labels, "--out", where / "run", *TRAIN],
        "predict": ["predict", ctx["checkpoint"], *files, "--out", where / "preds.csv",
                    "--device", "cpu"],
        "export": ["export", CMU, ctx["cmu"], "--out", where / "fig", "--formats", "png",
                   "--region", "0,0,1024,1024", "--dpi", "30"],
        "demo": ["demo", "--out", where / "demo"],
        "pretrain": ["pretrain", CMU, "--out", where / "enc.pt", "--epochs", "1",
                     "--max-patches", "2", "--min-patches", "2"],
    }


@pytest.fixture
def ctx(cohort_copy, checkpoint, cmu_features):
    return {"cohort": cohort_copy, "checkpoint": checkpoint, "cmu": cmu_features}


@pytest.mark.parametrize("command", ["preprocess", "train", "predict", "export", "demo",
                                     "pretrain"])
def test_read_only_folder(run_cli, read_only, ctx, command):
    before = _digest(ctx["cohort"][0])
    res = run_cli(*_commands(read_only, ctx)[command])
    assert_refused(res, str(read_only), "read-only")
    assert sorted(p.name for p in read_only.iterdir()) == ["existing"]
    assert _digest(ctx["cohort"][0]) == before  # predict rewrote no explain/ group


def test_read_only_existing_folder(run_cli, read_only, ctx):
    res = run_cli("preprocess", CMU, "--out", read_only / "existing")
    assert_refused(res, str(read_only / "existing"), "read-only")


# (command, free bytes left: fits the small files written first, not the big one)
FULL = [("preprocess", 0), ("train", 12_000), ("predict", 0), ("export", 0)]


@pytest.mark.parametrize("command,free", FULL)
def test_full_disk(run_cli, full_disk, ctx, command, free):
    where = full_disk(free)
    before = _digest(ctx["cohort"][0])
    res = run_cli(*_commands(where, ctx)[command])
    line = assert_refused(res, "no space left", str(where), lines=None)
    assert "nothing was written" in line
    assert not leftovers(where, ctx["cohort"][0])
    written = [p for p in where.rglob("*") if p.is_file() and p.name != "filler"]
    for p in written:  # whatever is there is whole
        if p.suffix == ".pt":
            import torch

            torch.load(p, weights_only=True)
        assert p.stat().st_size > 0
    assert _digest(ctx["cohort"][0]) == before


def test_full_disk_during_the_write_itself(run_cli, full_disk, monkeypatch):
    """Even when the free space looked enough (another writer took it meanwhile)."""
    import shutil as real

    from napari_higt import io

    where = full_disk(0)
    monkeypatch.setattr(io.shutil, "disk_usage",
                        lambda p: real._ntuple_diskusage(10**9, 0, 10**9))
    res = run_cli("preprocess", CMU, "--out", where / "features")
    line = assert_refused(res, "no space left", "cmu-1-small-region.h5")
    assert "about" in line and "needed" in line
    assert not leftovers(where)
    assert not list(where.rglob("*.h5"))
