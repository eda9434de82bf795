"""Body of one rank of the DDP test (spawned by torch.multiprocessing, gloo on CPU)."""

from __future__ import annotations

import json


def no_dropout_config(epochs: int = 2):
    from napari_higt.training.config import TrainConfig

    return TrainConfig(model={"model": "higt", "hidden": 16, "n_blocks": 1, "block_layers": 1,
                              "dropout": 0.0, "gnn_dropout": 0.0, "attn_dropout": 0.0},
                       epochs=epochs, lr=5e-3, batch_size=4, save_checkpoints=False)


def run_fold(dist=None):
    """Train on 9 slides (batches of 4, 4, 1) and return the step losses and epoch losses."""
    import numpy as np

    from napari_higt.training.dataset import SlideGraphDataset
    from napari_higt.training.fold import train_fold
    from tests.training._synth import make_graphs

    g, y = make_graphs(12, seed=3)
    ds = SlideGraphDataset.from_graphs(g, y)
    steps = []

    class Rec:
        def on_step(self, info):
            steps.append(info.loss)

    fr = train_fold(ds, np.arange(9), np.arange(9, 12), no_dropout_config(), seed=0, fold=0,
                    callbacks=[Rec()], dist=dist)
    return {"steps": steps, "epochs": [h["train_loss"] for h in fr.history],
            "val_auc": [h["val_auc"] for h in fr.history]}


def worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                             world_size=world)
    try:
        from napari_higt.training.distributed import DistContext

        res = run_fold(DistContext(rank, world, rank))
        if rank == 0:
            with open(out_file, "w") as fh:
                json.dump(res, fh)
    finally:
        tdist.destroy_process_group()
