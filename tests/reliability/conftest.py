"""Fixtures of the bad-input battery: a small cohort, a checkpoint, a predicted real slide,
read-only and full folders, and `run_cli`, which runs ``napari-higt`` in-process.

Read-only folders are a read-only tmpfs when running as root (root writes through chmod),
else a chmod 0555 folder; full folders are a 2 MB tmpfs filled up to a few kB (root only:
the full-disk cases are skipped otherwise).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLE

CMU = SAMPLE / "cmu-1-small-region.svs"
TCGA = SAMPLE / "tcga-cr-7395-01a-01-ts1.svs"
DIM = 64  # handcrafted features, so the checkpoint also runs on the real slide


@dataclass
class Result:
    """What one in-process ``napari-higt`` call gave."""

    rc: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ": error: " in ln]


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*argv) -> Result``: ``napari_higt.cli.main`` with captured output."""
    from napari_higt.cli import main

    def run(*argv) -> Result:
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        cap = capsys.readouterr()
        return Result(rc, cap.out, cap.err)

    return run


def assert_refused(res: Result, *names: str, rc: int = 1, lines: int | None = 1) -> str:
    """Exit ``rc``, no traceback, ``lines`` error lines (None: any), one naming ``names``."""
    text = res.out + res.err
    assert res.rc == rc, text
    assert "Traceback" not in text, text
    if lines is not None:
        assert len(res.errors) == lines, text
    hit = [ln for ln in res.errors if all(n in ln for n in names)]
    assert hit, f"no error line names {names}:\n{text}"
    return hit[0]


def leftovers(*folders: Path) -> list[str]:
    """Temporary or lock files left under ``folders`` (none may be)."""
    out = []
    for d in folders:
        if Path(d).is_dir():
            out += [str(p) for p in Path(d).rglob(".*") if ".tmp" in p.name or
                    p.name.endswith(".lock")]
    return out


# --------------------------------------------------------------------------- data
@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """20 synthetic 64-dim feature files s000..s019 and their labels (benign / tumour)."""
    from tests.training._synth import write_feature_files

    folder, labels = write_feature_files(tmp_path_factory.mktemp("cohort") / "features",
                                         n=20, dim=DIM, extractor="handcrafted")
    return folder, labels


@pytest.fixture
def cohort_copy(cohort, tmp_path):
    """A copy of the cohort this test may change."""
    folder, labels = cohort
    dst = tmp_path / "features"
    shutil.copytree(folder, dst)
    return dst, shutil.copy(labels, tmp_path / "labels.csv")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A small HIGT classifier checkpoint (random weights) for 64-dim handcrafted features."""
    import torch

    from napari_higt.inference.checkpoint import save_checkpoint
    from napari_higt.models import build_model, resolve_config

    cfg = resolve_config({"model": "higt", "in_dim": DIM, "n_classes": 2, "hidden": 16,
                          "n_blocks": 1, "block_layers": 1})
    torch.manual_seed(0)
    model = build_model(cfg)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", model.state_dict(),
                           {"model": cfg, "class_names": ["benign", "tumour"],
                            "extractor": "handcrafted", "in_dim": DIM})


@pytest.fixture(scope="session")
def cmu_features(tmp_path_factory, checkpoint) -> Path:
    """The CMU-1 sample's feature file with predictions cached (``explain/``)."""
    from napari_higt.features.pipeline import preprocess_slide
    from napari_higt.inference.predict import predict_slides

    path = preprocess_slide(CMU, tmp_path_factory.mktemp("cmu"), "handcrafted")
    predict_slides(checkpoint, [path], device="cpu")
    return path


def write_level_file(path: Path, coords, features, **attrs) -> Path:
    """A feature file written with raw h5py (anything may be stored, as a foreign tool)."""
    import h5py

    with h5py.File(path, "w") as h5:
        for k, v in {"extractor": "handcrafted", "dim": DIM, **attrs}.items():
            h5.attrs[k] = v
        g = h5.create_group("x10")
        g["coords"] = coords
        g["features"] = features
    return path


def nan_copy(src: Path, dst: Path, row: int = 1) -> Path:
    """``src`` with one NaN value in row ``row`` of its x10 features."""
    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as h5:
        f = h5["x10/features"][()]
        f[row, 3] = np.nan
        h5["x10/features"][...] = f
    return dst


# --------------------------------------------------------------------------- folders
def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def _tmpfs(path: Path, size: str = "2m"):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody can write into (a read-only tmpfs as root, chmod 0555 otherwise)."""
    d = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    if os.geteuid() == 0:
        with _tmpfs(d):
            (d / "existing").mkdir()
            if not _mount("-o", "remount,ro", str(d)):
                pytest.skip("cannot remount the tmpfs read-only")
            yield d
        return
    d.mkdir()
    (d / "existing").mkdir()
    d.chmod(0o555)
    (d / "existing").chmod(0o555)
    if os.access(d, os.W_OK):
        pytest.skip("this user can write into a chmod 0555 folder")
    yield d
    d.chmod(0o755)


@pytest.fixture
def full_disk(tmp_path):
    """``fill(free_bytes) -> folder`` on a 2 MB tmpfs with about ``free_bytes`` left."""
    d = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    with _tmpfs(d):
        def fill(free: int = 0) -> Path:
            left = shutil.disk_usage(d).free - free
            with open(d / "filler", "wb") as fh:
                with contextlib.suppress(OSError):
                    fh.write(b"\0" * max(left, 0))
            return d

        yield fill
