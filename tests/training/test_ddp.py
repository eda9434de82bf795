"""DistributedDataParallel on 2 gloo processes gives the losses of one process."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.multiprocessing as mp


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_single_process(tmp_path):
    import torch.distributed as tdist

    if not tdist.is_available():
        pytest.skip("torch.distributed is not available")
    from tests.training._ddp_worker import run_fold, worker

    single = run_fold()
    out = tmp_path / "ddp.json"
    mp.start_processes(worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2,
                       join=True, start_method="fork" if sys.platform.startswith("linux") else "spawn")
    ddp = json.loads(out.read_text())
    assert len(ddp["steps"]) == len(single["steps"]) == 6  # 2 epochs x batches of 4, 4, 1
    assert ddp["steps"] == pytest.approx(single["steps"], rel=1e-4, abs=1e-6)
    assert ddp["epochs"] == pytest.approx(single["epochs"], rel=1e-4, abs=1e-6)
    assert ddp["val_auc"] == pytest.approx(single["val_auc"], abs=1e-6)
    assert torch.get_num_threads() >= 1


@pytest.mark.slow
def test_torchrun_cli_train_matches_one_process(feature_folder, tmp_path):
    """The README's multi-GPU command, on CPU: `torchrun --nproc-per-node 2 -m
    napari_higt.cli train ...` (gloo) gives the metrics of the same command in one process,
    and only rank 0 writes the run folder."""
    import os
    import subprocess

    folder, labels = feature_folder
    args = ["train", str(folder), str(labels), "--model", "higt", "--hidden", "16",
            "--folds", "2", "--epochs", "2", "--batch-size", "4", "--device", "cpu",
            "--dropout", "0", "--gnn-dropout", "0"]  # dropout streams differ per rank
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "napari_higt.cli", *args, "--out",
                          str(tmp_path / "one")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "napari_higt.cli", *args, "--out",
                          str(tmp_path / "two")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a = json.loads((tmp_path / "one" / "results.json").read_text())
    b = json.loads((tmp_path / "two" / "results.json").read_text())
    for fa, fb in zip(a["folds"], b["folds"], strict=True):
        assert fb["best_epoch"] == fa["best_epoch"]
        assert fb["auc"] == pytest.approx(fa["auc"], abs=1e-6)
        assert [h["train_loss"] for h in fb["history"]] == pytest.approx(
            [h["train_loss"] for h in fa["history"]], rel=1e-4, abs=1e-6)
    assert (tmp_path / "two" / "seed0" / "fold1" / "best.pt").is_file()
