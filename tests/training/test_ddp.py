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
