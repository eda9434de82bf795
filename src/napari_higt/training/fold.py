"""Training one (seed, fold): model, optimiser, resume from ``last.pt``, the epoch loop with
validation after every epoch, and the best / last checkpoints.

The initial weights come from ``mix_seed(seed, fold, 0)``; the best epoch is the one with
the highest validation AUC (ties -> lower validation loss), optionally stopping after
``config.patience`` epochs without a better one. With a ``test_idx`` (the ``"inner-val"``
protocol) the validation slides only choose the epoch: the test slides are scored once the
loop has ended, with the weights of the chosen epoch (and, unselected, the last epoch's).
Without one (``"eval-fold"``) the reported figures are the validation slides' at the best
epoch, which chose it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.devices import cpu_heap_blocks
from napari_higt.errors import CheckpointError
from napari_higt.inference.checkpoint import config_differences, load_checkpoint, save_checkpoint
from napari_higt.training.callbacks import CancelToken, EpochInfo, dispatch
from napari_higt.training.card import fold_card, write_fold_card
from napari_higt.training.config import TrainConfig
from napari_higt.training.distributed import DistContext
from napari_higt.training.loop import (
    FoldRun,
    class_weight_tensor,
    collate,
    mix_seed,
    predict_probs,
    train_epoch,
)
from napari_higt.training.metrics import accuracy, auc_score, classification_metrics
from napari_higt.training.results import FoldResult
from napari_higt.training.runs import fold_checkpoint

__all__ = ["train_fold", "fold_device"]


def fold_device(config: TrainConfig, dist: DistContext) -> Any:
    """The torch device of this rank (``config.device``; the local GPU under ``torchrun``)."""
    import torch

    from napari_higt.devices import resolve_device

    dev = resolve_device(config.device)
    if dist.world_size > 1 and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
    return dev


def _new_best() -> dict[str, Any]:
    return {"epoch": 0, "auc": -math.inf, "loss": math.inf, "acc": float("nan"), "probs": []}


def _build(dataset: Any, train_idx: np.ndarray, config: TrainConfig, seed: int, fold: int,
           device: Any, run_config: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """The fold's initial model on ``device`` and the config its checkpoints record."""
    import torch

    from napari_higt.models import build_model
    from napari_higt.models.norm import fit_standardizer

    mcfg = {**config.model, "in_dim": int(dataset.in_dim), "n_classes": int(dataset.n_classes)}
    torch.manual_seed(mix_seed(seed, fold, 0))
    model = build_model(mcfg)
    # Label-free statistics of the training fold only: no leak from the validation slides.
    # (bags: one gather of every training row instead of a batch per slide)
    fit_standardizer(model, [dataset.collate(train_idx)] if hasattr(dataset, "collate")
                     else (dataset[int(i)] for i in train_idx))
    model = model.to(device)
    ckpt_config = {
        "model": model.config, "class_names": list(dataset.class_names),
        "extractor": dataset.extractor, "in_dim": int(dataset.in_dim),
        "train": {**config.fingerprint(), "seed": seed, "fold": fold},
        **({"run": run_config} if run_config else {}),
    }
    return model, ckpt_config


def _resume(last_path: Path, run: FoldRun, ckpt_config: dict[str, Any]
            ) -> tuple[int, list[dict[str, float]], dict[str, Any]]:
    """Model, optimiser and scaler state from ``last.pt``; (first epoch, history, best)."""
    ck = load_checkpoint(last_path, map_location="cpu")
    diffs = config_differences(ck["config"], ckpt_config)
    if diffs:
        raise CheckpointError(
            f"{last_path} was made with other settings, so the run cannot be resumed with "
            "these: " + "; ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else "")
            + ". Resume with the original settings or start a new run (another --out)")
    st = ck.get("state") or {}
    run.model.load_state_dict(ck["state_dict"])
    if st.get("optimizer"):
        run.opt.load_state_dict(st["optimizer"])
    if st.get("scaler") and run.amp:
        run.scaler.load_state_dict(st["scaler"])
    return (int(st.get("epoch", 0)) + 1, list(st.get("history", [])),
            dict(st.get("best", _new_best())))


def _wrap_ddp(run: FoldRun) -> Any:
    """``DistributedDataParallel`` around the model (under ``torchrun``), else the model."""
    if run.dist.world_size == 1:
        return run.model
    from torch.nn.parallel import DistributedDataParallel as DDP

    model, device = run.model, run.device
    # Which parameters does this model leave unused (ablations)? One probe forward/backward
    # on a training slide tells; the gradients are discarded, and the random streams are
    # reseeded per epoch, so the run itself is unchanged.
    probe = model(collate(run.dataset, run.train_idx[:1]).to(device)).logits.float().sum()
    probe.backward()
    unused = any(p.requires_grad and p.grad is None for p in model.parameters())
    run.opt.zero_grad(set_to_none=True)
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
               find_unused_parameters=unused)


def _save_last(path: Path, run: FoldRun, ckpt_config: dict[str, Any], epoch: int,
               history: list[dict[str, float]], best: dict[str, Any]) -> None:
    save_checkpoint(path, run.model.state_dict(), ckpt_config, {
        "epoch": int(epoch), "optimizer": run.opt.state_dict(),
        "scaler": run.scaler.state_dict(), "history": history, "best": best,
    })


@cpu_heap_blocks()
def train_fold(
    dataset: Any,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    config: TrainConfig,
    *,
    seed: int = 0,
    fold: int = 0,
    n_folds: int = 1,
    fold_dir: str | Path | None = None,
    callbacks: Sequence[Any] | None = None,
    cancel: CancelToken | Any | None = None,
    resume: bool = False,
    dist: DistContext | None = None,
    run_config: dict[str, Any] | None = None,
    test_idx: np.ndarray | None = None,
) -> FoldResult:
    """Train one model on ``train_idx`` and score ``val_idx`` after every epoch.

    ``fold_dir`` (``runs.fold_dir(run_dir, seed, fold)``) receives ``best.pt`` and
    ``last.pt``; ``n_folds`` is informational. ``test_idx``: the slides the reported
    metrics are on, scored after the loop with the best epoch's weights (module docstring);
    None reports ``val_idx`` at the best epoch.

    Raises
    ------
    napari_higt.errors.Cancelled
        When ``cancel`` is set (checked before every step); ``last.pt`` then holds the last
        completed epoch (or the initial weights when none was), a usable, resumable checkpoint.
    CheckpointError
        ``resume`` with a ``last.pt`` made for other settings.
    """
    import torch

    t0 = time.perf_counter()
    dist = dist or DistContext.current()
    device = fold_device(config, dist)
    amp = (bool(config.amp) if config.amp is not None else True) and device.type == "cuda"
    train_idx = np.asarray(train_idx, dtype=np.int64)
    val_idx = np.asarray(val_idx, dtype=np.int64)
    fold_dir = Path(fold_dir) if fold_dir is not None else None
    write = dist.is_main and fold_dir is not None and config.save_checkpoints
    model, ckpt_config = _build(dataset, train_idx, config, seed, fold, device, run_config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run = FoldRun(dataset, train_idx, config, model, model, opt,
                  torch.amp.GradScaler("cuda", enabled=amp), device, amp, dist, None, seed, fold)
    start_epoch, history, best = 1, [], _new_best()
    last_path = fold_checkpoint(fold_dir, "last") if fold_dir is not None else None
    best_path = fold_checkpoint(fold_dir, "best") if fold_dir is not None else None
    if resume and last_path is not None and last_path.is_file():
        start_epoch, history, best = _resume(last_path, run, ckpt_config)
    elif write:
        # epoch 0: the initial weights, so that a run cancelled in its first epoch still
        # leaves a loadable (and resumable) checkpoint
        _save_last(last_path, run, ckpt_config, 0, history, best)
    run.net = _wrap_ddp(run)
    run.class_weights = class_weight_tensor(config, dataset.y[train_idx], dataset.n_classes,
                                            device)
    yv = dataset.y[val_idx]
    best_state = None
    for epoch in range(start_epoch, config.epochs + 1):
        if config.patience and history and epoch - 1 - best["epoch"] >= config.patience:
            break  # early stop (also when resuming a fold that had stopped)
        te = time.perf_counter()
        train_loss = train_epoch(run, epoch, callbacks, cancel)
        probs, val_loss = predict_probs(model, dataset, val_idx, device,
                                        config.eval_batch_size, amp)
        auc, acc = auc_score(yv, probs), accuracy(yv, probs)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "val_auc": auc, "val_acc": acc, "seconds": time.perf_counter() - te})
        score = auc if math.isfinite(auc) else -math.inf
        if score > best["auc"] or (score == best["auc"] and val_loss < best["loss"]) \
                or best["epoch"] == 0:
            best = {"epoch": epoch, "auc": score, "loss": val_loss, "acc": acc,
                    "probs": probs.tolist()}
            if test_idx is not None:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if write:
                save_checkpoint(best_path, model.state_dict(), ckpt_config,
                                {"epoch": epoch, "val_auc": auc, "val_acc": acc,
                                 "val_loss": val_loss})
        if write:
            _save_last(last_path, run, ckpt_config, epoch, history, best)
        if dist.is_main:
            dispatch(callbacks, "on_epoch", EpochInfo(
                seed, fold, epoch, config.epochs, train_loss, val_loss, auc, acc,
                best["epoch"], best["auc"], time.perf_counter() - te))
    rep = _report(run, best, best_state, best_path, val_idx, test_idx, history)
    result = FoldResult(
        seed=seed, fold=fold, best_epoch=int(best["epoch"]), auc=rep["auc"], acc=rep["acc"],
        last_auc=rep["last_auc"], last_acc=rep["last_acc"], epochs_done=len(history),
        n_train=len(train_idx), n_val=len(rep["idx"]),
        val_slide_ids=[dataset.slide_ids[i] for i in rep["idx"]],
        val_labels=[int(v) for v in dataset.y[rep["idx"]]], val_probs=rep["probs"],
        history=history,
        best_checkpoint=str(best_path) if write else None,
        last_checkpoint=str(last_path) if write else None,
        seconds=time.perf_counter() - t0,
        protocol="inner-val" if test_idx is not None else "eval-fold",
        n_select=len(val_idx), select_auc=_finite_or_nan(best["auc"]),
        balanced_acc=rep["balanced_acc"], f1=rep["f1"], confusion=rep["confusion"],
    )
    if write:  # the checkpoints say what the model is and how it was validated
        write_fold_card(fold_card(dataset, train_idx, val_idx, model, result),
                        best_path, last_path)
    return result


def _finite_or_nan(v: float) -> float:
    return float(v) if math.isfinite(v) else float("nan")


def _report(run: FoldRun, best: dict[str, Any], best_state: dict[str, Any] | None,
            best_path: Path | None, val_idx: np.ndarray, test_idx: np.ndarray | None,
            history: list[dict[str, float]]) -> dict[str, Any]:
    """The reported figures of a fold: the test slides scored once with the chosen epoch's
    weights (and the last epoch's), or the validation slides at the best epoch."""
    ds, cfg = run.dataset, run.config
    if test_idx is None:
        last = history[-1] if history else {}
        probs = np.asarray(best["probs"], dtype=np.float64).reshape(-1, ds.n_classes)
        return {"idx": val_idx, "probs": best["probs"],
                "last_auc": float(last.get("val_auc", float("nan"))),
                "last_acc": float(last.get("val_acc", float("nan"))),
                **_metrics(ds.y[val_idx], probs)}
    test_idx = np.asarray(test_idx, dtype=np.int64)
    yt = ds.y[test_idx]
    last_probs, _ = predict_probs(run.model, ds, test_idx, run.device, cfg.eval_batch_size,
                                  run.amp)
    if best_state is None and best_path is not None and best_path.is_file():
        best_state = load_checkpoint(best_path, map_location="cpu")["state_dict"]
    if best_state is not None:
        run.model.load_state_dict(best_state)
    probs, _ = predict_probs(run.model, ds, test_idx, run.device, cfg.eval_batch_size, run.amp)
    return {"idx": test_idx, "probs": probs.tolist(), "last_auc": auc_score(yt, last_probs),
            "last_acc": accuracy(yt, last_probs), **_metrics(yt, probs)}


def _metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    m = classification_metrics(y, probs)
    return {"auc": float(m["auc"]), "acc": float(m["acc"]),
            "balanced_acc": float(m["balanced_acc"]), "f1": float(m["f1"]),
            "confusion": m["confusion"]}
