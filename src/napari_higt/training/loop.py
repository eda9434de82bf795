"""The inner loop of the training engine: slide batches, seeding, one epoch of optimisation
steps and the scoring of a validation fold.

Nothing random depends on the history of a run: the batch order and the dropout stream of
epoch ``e`` come from ``mix_seed(seed, fold, e)``, which is what makes a resumed run give
the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_higt.errors import UserFacingError
from napari_higt.errors import Cancelled
from napari_higt.training.callbacks import StepInfo, dispatch
from napari_higt.training.config import TrainConfig
from napari_higt.training.distributed import DistContext

__all__ = ["mix_seed", "collate", "autocast", "predict_probs", "class_weight_tensor",
           "FoldRun", "train_epoch", "cancel_requested"]


def mix_seed(*parts: int) -> int:
    """A seed in ``[0, 2**31 - 1)`` that depends on every part (seed, fold, epoch, ...)."""
    h = 0x9E3779B1
    for p in parts:
        h = (h * 1_000_003 + int(p) + 0x632BE5AB) % (2**31 - 1)
    return h


def collate(dataset: Any, indices: Sequence[int]) -> Any:
    """One batch of ``dataset[indices]``: the dataset's own ``collate`` when it has one (bags,
    gathered from one cached tensor), else a PyG batch of its graphs."""
    if hasattr(dataset, "collate"):
        return dataset.collate(indices)
    from torch_geometric.data import Batch

    return Batch.from_data_list([dataset[int(i)] for i in indices])


def autocast(device: Any, enabled: bool) -> Any:
    """float16 autocast on ``device`` when ``enabled``, else a no-op context."""
    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def predict_probs(model: Any, dataset: Any, indices: Sequence[int], device: Any,
                  batch_size: int = 8, amp: bool = False) -> tuple[np.ndarray, float]:
    """Class probabilities (n, C) of ``dataset[indices]`` and their mean cross-entropy."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    probs, losses = [], []
    with torch.no_grad():
        for s in range(0, len(indices), batch_size):
            b = collate(dataset, indices[s:s + batch_size]).to(device)
            with autocast(device, amp):
                logits = model(b).logits.float()
            losses.append(F.cross_entropy(logits, b.y, reduction="sum").item())
            probs.append(torch.softmax(logits, -1).cpu().numpy())
    model.train(was_training)
    n = max(len(indices), 1)
    return (np.concatenate(probs) if probs else np.zeros((0, dataset.n_classes))), sum(losses) / n


def class_weight_tensor(config: TrainConfig, y_train: np.ndarray, n_classes: int,
                        device: Any) -> Any:
    """The loss weight of every class (None: unweighted); ``"balanced"`` is the inverse
    class frequency of the training fold."""
    import torch

    cw = config.class_weights
    if cw is None:
        return None
    if cw == "balanced":
        counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
        w = np.where(counts > 0, len(y_train) / (n_classes * np.maximum(counts, 1)), 0.0)
    else:
        w = np.asarray(cw, dtype=np.float64)
        if len(w) != n_classes:
            raise UserFacingError(f"{len(w)} class weights for {n_classes} classes")
    return torch.tensor(w, dtype=torch.float32, device=device)


def cancel_requested(cancel: Any) -> bool:
    """The state of a cancel callable or token (None: never)."""
    return bool(cancel()) if callable(cancel) else bool(getattr(cancel, "cancelled", False))


@dataclass
class FoldRun:
    """What stays fixed while one fold trains: data, model (``net`` is the DDP wrapper or
    the model itself), optimiser, device and the rank layout."""

    dataset: Any
    train_idx: np.ndarray
    config: TrainConfig
    model: Any
    net: Any
    opt: Any
    scaler: Any
    device: Any
    amp: bool
    dist: DistContext
    class_weights: Any
    seed: int
    fold: int


def train_epoch(run: FoldRun, epoch: int, callbacks: Sequence[Any] | None = None,
                cancel: Any = None) -> float:
    """One epoch of optimisation steps; returns the weighted mean training loss.

    Every batch of slides is split over the ranks; the per-rank loss is scaled so that the
    averaged gradient is the gradient of the single-process batch loss.

    Raises
    ------
    napari_higt.errors.Cancelled
        ``cancel`` was set on any rank (checked before every step).
    """
    import torch
    import torch.nn.functional as F

    cfg, dist, device, cw = run.config, run.dist, run.device, run.class_weights
    n_train, bs = len(run.train_idx), int(cfg.batch_size)
    steps = max(1, math.ceil(n_train / bs))
    y_all = torch.as_tensor(run.dataset.y, dtype=torch.long)
    g = torch.Generator().manual_seed(mix_seed(run.seed, run.fold, epoch))
    perm = run.train_idx[torch.randperm(n_train, generator=g).numpy()]
    torch.manual_seed(mix_seed(run.seed, run.fold, epoch, 1))  # dropout stream of this epoch
    if device.type == "cuda":
        torch.cuda.manual_seed_all(mix_seed(run.seed, run.fold, epoch, 1))
    run.model.train()
    loss_sum, w_sum = 0.0, 0.0
    for step in range(1, steps + 1):
        if dist.any(cancel_requested(cancel)):
            raise Cancelled(f"cancelled in epoch {epoch}, step {step}")
        bidx = perm[(step - 1) * bs: step * bs]
        yb = y_all[bidx]
        wb = cw.cpu()[yb] if cw is not None else torch.ones(len(bidx))
        denom = float(wb.sum().clamp(min=1e-12))
        local = bidx[dist.rank::dist.world_size]
        dummy = len(local) == 0
        if dummy:  # fewer slides than ranks in the last batch: a zero-weight stand-in
            local = bidx[:1]
        batch = collate(run.dataset, local).to(device)
        with autocast(device, run.amp):
            out = run.net(batch)
        logits = out.logits.float()
        ce = F.cross_entropy(logits, batch.y, reduction="none")
        w = cw[batch.y] if cw is not None else torch.ones_like(ce)
        if dummy:
            w = w * 0
        local_sum = (ce * w).sum()
        loss = local_sum * (dist.world_size / denom)
        if out.aux_loss is not None:  # a model's own training term (CLAM's instance loss)
            loss = loss + out.aux_loss.float()
        run.opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.grad_clip:
            run.scaler.unscale_(run.opt)
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        run.scaler.step(run.opt)
        run.scaler.update()
        batch_loss = dist.all_sum(float(local_sum.detach())) / denom
        loss_sum += batch_loss * denom
        w_sum += denom
        if dist.is_main:
            dispatch(callbacks, "on_step",
                     StepInfo(run.seed, run.fold, epoch, step, steps, batch_loss))
    return loss_sum / max(w_sum, 1e-12)
