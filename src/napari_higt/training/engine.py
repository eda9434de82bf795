"""The train / evaluate loop and k-fold cross-validation (no Qt; CLI and widgets share it).

``train_cross_validation(dataset, config, out_dir, callbacks=..., cancel=...) -> CVResult``
trains one model per (seed, fold): Adam, slide batches via PyG batching, cross-entropy with
optional class weights, gradient clipping, AMP on CUDA; after every epoch the validation
fold is scored (AUC, ACC) and the best epoch (highest validation AUC, ties -> lower loss)
is kept. Checkpoints ``best.pt`` and ``last.pt`` per fold; ``resume=True`` continues from the
last completed epoch and gives the same metrics as an uninterrupted run, because nothing
random depends on the history: the initial weights come from ``(seed, fold)``, the batch
order and the dropout stream of epoch ``e`` from ``(seed, fold, e)``.

Under ``torchrun`` (``torch.distributed`` initialised) every batch of slides is split over
the ranks and the model is wrapped in ``DistributedDataParallel``; the per-rank loss is
scaled so that the averaged gradient is exactly the gradient of the single-process batch
loss (same losses as one process on the same data). Every rank evaluates the whole
validation fold; rank 0 writes the files and calls the callbacks.

Reported metrics: the best epoch is chosen on the validation fold it is reported on (as in
the HIGT paper and most MIL work), which is optimistic; the metrics of the last epoch are
reported beside them as the unselected figure.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_higt.errors import CheckpointError, UserFacingError
from napari_higt.training.callbacks import (
    CancelToken,
    EpochInfo,
    FoldInfo,
    StepInfo,
    TrainingCancelled,
    dispatch,
)
from napari_higt.training.checkpoint import config_differences, load_checkpoint, save_checkpoint
from napari_higt.training.metrics import accuracy, auc_score, mean_std

__all__ = ["TrainConfig", "FoldResult", "CVResult", "DistContext", "make_splits",
           "train_fold", "train_cross_validation", "predict_probs", "init_distributed"]


@dataclass
class TrainConfig:
    """Training settings (JSON-able).

    ``model`` holds ``build_model`` keys (``model``: higt | abmil | mean, ``hidden``,
    ablation switches ...); ``in_dim`` and ``n_classes`` come from the dataset.
    ``class_weights``: None, ``"balanced"`` (inverse class frequency of the training fold)
    or one weight per class. ``amp``: None = on CUDA only. ``folds`` is ignored when the
    labels CSV has a fold column (those folds are used).
    """

    model: dict[str, Any] = field(default_factory=lambda: {"model": "higt"})
    epochs: int = 50
    lr: float = 5e-4
    weight_decay: float = 1e-5
    batch_size: int = 8
    class_weights: str | list[float] | None = None
    grad_clip: float | None = 1.0
    amp: bool | None = None
    device: str = "auto"
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: int = 5
    eval_batch_size: int = 8
    save_checkpoints: bool = True

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share (everything that changes the numbers
        except ``epochs``, which may grow, and the device)."""
        d = asdict(self)
        for k in ("epochs", "device", "amp", "eval_batch_size", "save_checkpoints"):
            d.pop(k)
        return json.loads(json.dumps(d))

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.folds < 2:
            raise UserFacingError(
                f"epochs and batch size must be >= 1 and folds >= 2 (got epochs={self.epochs}, "
                f"batch_size={self.batch_size}, folds={self.folds})")
        if not self.lr > 0:
            raise UserFacingError(f"the learning rate must be > 0, got {self.lr}")
        if not self.seeds:
            raise UserFacingError("give at least one seed")
        cw = self.class_weights
        if cw is not None and cw != "balanced" and not isinstance(cw, (list, tuple)):
            raise UserFacingError(f"class_weights must be None, 'balanced' or a list, got {cw!r}")


@dataclass
class FoldResult:
    """Outcome of one (seed, fold)."""

    seed: int
    fold: int
    best_epoch: int
    auc: float
    acc: float
    last_auc: float
    last_acc: float
    epochs_done: int
    n_train: int
    n_val: int
    val_slide_ids: list[str] = field(default_factory=list)
    val_labels: list[int] = field(default_factory=list)
    val_probs: list[list[float]] = field(default_factory=list)  # at the best epoch
    history: list[dict[str, float]] = field(default_factory=list)
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CVResult:
    """All folds of all seeds plus the summary; ``cancelled`` when stopped early."""

    folds: list[FoldResult]
    class_names: list[str]
    config: dict[str, Any]
    n_folds: int
    cancelled: bool = False
    seconds: float = 0.0
    out_dir: str | None = None

    def summary(self) -> dict[str, Any]:
        """Mean ± std over every fold of every seed, per-seed means and their spread."""
        out: dict[str, Any] = {}
        for key in ("auc", "acc", "last_auc", "last_acc"):
            m, s = mean_std([getattr(f, key) for f in self.folds])
            out[key] = {"mean": m, "std": s}
        seeds = sorted({f.seed for f in self.folds})
        per_seed = {}
        for sd in seeds:
            fs = [f for f in self.folds if f.seed == sd]
            per_seed[str(sd)] = {k: mean_std([getattr(f, k) for f in fs])[0]
                                 for k in ("auc", "acc", "last_auc", "last_acc")}
        out["per_seed"] = per_seed
        vals = [v["auc"] for v in per_seed.values()]
        fin = [v for v in vals if math.isfinite(v)]
        out["seed_spread_auc"] = {
            "std": mean_std(vals)[1], "min": min(fin) if fin else float("nan"),
            "max": max(fin) if fin else float("nan")}
        out["n_runs"] = len(self.folds)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"class_names": self.class_names, "config": self.config, "n_folds": self.n_folds,
                "cancelled": self.cancelled, "seconds": self.seconds,
                "summary": self.summary(), "folds": [f.to_dict() for f in self.folds]}

    def markdown(self, title: str | None = None) -> str:
        """A Markdown table: one row per fold, then mean ± std and the seed spread."""
        lines = []
        if title:
            lines += [f"## {title}", ""]
        lines += ["| seed | fold | best epoch | AUC | ACC | AUC (last epoch) | ACC (last epoch) |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for f in self.folds:
            lines.append(f"| {f.seed} | {f.fold + 1} | {f.best_epoch} | {f.auc:.4f} | "
                         f"{f.acc:.4f} | {f.last_auc:.4f} | {f.last_acc:.4f} |")
        s = self.summary()

        def ms(k: str) -> str:
            return f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}"

        lines.append(f"| **mean ± std** | | | **{ms('auc')}** | **{ms('acc')}** | {ms('last_auc')} "
                     f"| {ms('last_acc')} |")
        sp = s["seed_spread_auc"]
        lines += ["", f"{len(self.folds)} runs ({len({f.seed for f in self.folds})} seed(s) x "
                      f"{self.n_folds} folds); AUC of the per-seed means: std {sp['std']:.4f}, "
                      f"range {sp['min']:.4f}-{sp['max']:.4f}. The best epoch is chosen on the "
                      "validation fold (optimistic); the last-epoch columns are unselected."]
        if self.cancelled:
            lines.append("\n**The run was cancelled: these are the completed folds only.**")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- distributed
@dataclass
class DistContext:
    """Rank layout; ``world_size == 1`` means no ``torch.distributed``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls) -> DistContext:
        import os

        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", dist.get_rank())))
        return cls()

    def all_sum(self, value: float) -> float:
        if self.world_size == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())

    def any(self, flag: bool) -> bool:
        return self.all_sum(1.0 if flag else 0.0) > 0 if self.world_size > 1 else flag


def init_distributed() -> DistContext:
    """Initialise ``torch.distributed`` from the ``torchrun`` environment (gloo on CPU, nccl
    on CUDA); a no-op returning a single-process context outside ``torchrun``."""
    import os

    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return DistContext.current()


# ---------------------------------------------------------------------------- helpers
def _mix(*parts: int) -> int:
    h = 0x9E3779B1
    for p in parts:
        h = (h * 1_000_003 + int(p) + 0x632BE5AB) % (2**31 - 1)
    return h


def make_splits(y: np.ndarray, n_folds: int, seed: int,
                folds: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, validation indices) per fold: the CSV's folds when given, else a
    stratified k-fold shuffled by ``seed``.

    Raises
    ------
    UserFacingError
        A class has fewer slides than folds, or a CSV fold would leave no training slide.
    """
    y = np.asarray(y, dtype=np.int64)
    idx = np.arange(len(y))
    if folds is not None:
        out = []
        for f in sorted(set(int(v) for v in folds)):
            val = idx[folds == f]
            tr = idx[folds != f]
            if len(tr) == 0:
                raise UserFacingError(f"fold {f} of the labels CSV holds every slide: no "
                                      "training data is left; use at least two folds")
            out.append((tr, val))
        if len(out) < 2:
            raise UserFacingError("the labels CSV's fold column has one value only; give at "
                                  "least two folds (or drop the column for a stratified split)")
        return out
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y)
    counts = counts[counts > 0]
    if counts.min() < n_folds:
        raise UserFacingError(
            f"{n_folds}-fold stratified CV needs at least {n_folds} slides per class; the "
            f"smallest class has {counts.min()}. Use fewer folds (--folds) or label more slides")
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in skf.split(idx, y)]


def _collate(dataset, indices) -> Any:
    from torch_geometric.data import Batch

    return Batch.from_data_list([dataset[int(i)] for i in indices])


def _autocast(device, enabled: bool):
    import contextlib

    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def predict_probs(model, dataset, indices: Sequence[int], device, batch_size: int = 8,
                  amp: bool = False) -> tuple[np.ndarray, float]:
    """Class probabilities (n, C) of ``dataset[indices]`` and their mean cross-entropy."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    probs, losses = [], []
    with torch.no_grad():
        for s in range(0, len(indices), batch_size):
            b = _collate(dataset, indices[s:s + batch_size]).to(device)
            with _autocast(device, amp):
                logits = model(b).logits.float()
            losses.append(F.cross_entropy(logits, b.y, reduction="sum").item())
            probs.append(torch.softmax(logits, -1).cpu().numpy())
    model.train(was_training)
    n = max(len(indices), 1)
    return (np.concatenate(probs) if probs else np.zeros((0, dataset.n_classes))), sum(losses) / n


def _class_weight_tensor(config: TrainConfig, y_train: np.ndarray, n_classes: int, device):
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


def _resolve_device(config: TrainConfig, dist: DistContext):
    import torch

    from napari_higt.devices import resolve_device

    dev = resolve_device(config.device)
    if dist.world_size > 1 and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
    return dev


# ---------------------------------------------------------------------------- one fold
def train_fold(
    dataset,
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
) -> FoldResult:
    """Train one model on ``train_idx`` and score ``val_idx`` after every epoch.

    Raises
    ------
    TrainingCancelled
        When ``cancel`` is set (checked before every step); ``last.pt`` then holds the last
        completed epoch (or the initial weights when none was), a usable, resumable checkpoint.
    CheckpointError
        ``resume`` with a ``last.pt`` made for other settings.
    """
    import torch
    import torch.nn.functional as F

    from napari_higt.models import build_model
    from napari_higt.models.norm import fit_standardizer

    t0 = time.perf_counter()
    dist = dist or DistContext.current()
    device = _resolve_device(config, dist)
    amp = bool(config.amp) if config.amp is not None else device.type == "cuda"
    amp = amp and device.type == "cuda"
    train_idx = np.asarray(train_idx, dtype=np.int64)
    val_idx = np.asarray(val_idx, dtype=np.int64)
    fold_dir = Path(fold_dir) if fold_dir is not None else None
    write = dist.is_main and fold_dir is not None and config.save_checkpoints

    mcfg = {**config.model, "in_dim": int(dataset.in_dim), "n_classes": int(dataset.n_classes)}
    torch.manual_seed(_mix(seed, fold, 0))
    model = build_model(mcfg)
    # Label-free statistics of the training fold only: no leak from the validation slides.
    fit_standardizer(model, (dataset[int(i)] for i in train_idx))
    model = model.to(device)
    ckpt_config = {
        "model": model.config, "class_names": list(dataset.class_names),
        "extractor": dataset.extractor, "in_dim": int(dataset.in_dim),
        "train": {**config.fingerprint(), "seed": seed, "fold": fold},
        **({"run": run_config} if run_config else {}),
    }
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start_epoch, history = 1, []
    best = {"epoch": 0, "auc": -math.inf, "loss": math.inf, "acc": float("nan"), "probs": []}
    last_path = fold_dir / "last.pt" if fold_dir is not None else None
    best_path = fold_dir / "best.pt" if fold_dir is not None else None

    if resume and last_path is not None and last_path.is_file():
        ck = load_checkpoint(last_path, map_location="cpu")
        diffs = config_differences(ck["config"], ckpt_config)
        if diffs:
            raise CheckpointError(
                f"{last_path} was made with other settings, so the run cannot be resumed with "
                "these: " + "; ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else "")
                + ". Resume with the original settings or start a new run (another --out)")
        st = ck.get("state") or {}
        model.load_state_dict(ck["state_dict"])
        if st.get("optimizer"):
            opt.load_state_dict(st["optimizer"])
        if st.get("scaler") and amp:
            scaler.load_state_dict(st["scaler"])
        start_epoch = int(st.get("epoch", 0)) + 1
        history = list(st.get("history", []))
        best = dict(st.get("best", best))
    elif write:
        # epoch 0: the initial weights, so that a run cancelled in its first epoch still
        # leaves a loadable (and resumable) checkpoint
        _save_last(last_path, model, ckpt_config, opt, scaler, 0, history, best)

    net = model
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # Which parameters does this model leave unused (ablations)? One probe
        # forward/backward on a training slide tells; the gradients are discarded, and the
        # random streams are reseeded per epoch, so the run itself is unchanged.
        probe = model(_collate(dataset, train_idx[:1]).to(device)).logits.float().sum()
        probe.backward()
        unused = any(p.requires_grad and p.grad is None for p in model.parameters())
        opt.zero_grad(set_to_none=True)
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=unused)
    cw = _class_weight_tensor(config, dataset.y[train_idx], dataset.n_classes, device)
    y_all = torch.as_tensor(dataset.y, dtype=torch.long)
    n_train = len(train_idx)
    bs = int(config.batch_size)
    steps = max(1, math.ceil(n_train / bs))

    for epoch in range(start_epoch, config.epochs + 1):
        te = time.perf_counter()
        g = torch.Generator().manual_seed(_mix(seed, fold, epoch))
        perm = train_idx[torch.randperm(n_train, generator=g).numpy()]
        torch.manual_seed(_mix(seed, fold, epoch, 1))  # dropout stream of this epoch
        if device.type == "cuda":
            torch.cuda.manual_seed_all(_mix(seed, fold, epoch, 1))
        model.train()
        loss_sum, w_sum = 0.0, 0.0
        for step in range(1, steps + 1):
            stop = bool(cancel()) if callable(cancel) else bool(getattr(cancel, "cancelled", False))
            if dist.any(stop):
                raise TrainingCancelled(f"cancelled in epoch {epoch}, step {step}")
            bidx = perm[(step - 1) * bs: step * bs]
            yb = y_all[bidx]
            wb = cw.cpu()[yb] if cw is not None else torch.ones(len(bidx))
            denom = float(wb.sum().clamp(min=1e-12))
            local = bidx[dist.rank::dist.world_size]
            dummy = len(local) == 0
            if dummy:  # fewer slides than ranks in the last batch: a zero-weight stand-in
                local = bidx[:1]
            batch = _collate(dataset, local).to(device)
            with _autocast(device, amp):
                logits = net(batch).logits.float()
            ce = F.cross_entropy(logits, batch.y, reduction="none")
            w = cw[batch.y] if cw is not None else torch.ones_like(ce)
            if dummy:
                w = w * 0
            local_sum = (ce * w).sum()
            loss = local_sum * (dist.world_size / denom)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(opt)
            scaler.update()
            batch_loss = dist.all_sum(float(local_sum.detach())) / denom
            loss_sum += batch_loss * denom
            w_sum += denom
            if dist.is_main:
                dispatch(callbacks, "on_step", StepInfo(seed, fold, epoch, step, steps, batch_loss))
        train_loss = loss_sum / max(w_sum, 1e-12)
        probs, val_loss = predict_probs(model, dataset, val_idx, device,
                                        config.eval_batch_size, amp)
        yv = dataset.y[val_idx]
        auc, acc = auc_score(yv, probs), accuracy(yv, probs)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "val_auc": auc, "val_acc": acc, "seconds": time.perf_counter() - te})
        score = auc if math.isfinite(auc) else -math.inf
        if score > best["auc"] or (score == best["auc"] and val_loss < best["loss"]) \
                or best["epoch"] == 0:
            best = {"epoch": epoch, "auc": score, "loss": val_loss, "acc": acc,
                    "probs": probs.tolist()}
            if write:
                save_checkpoint(best_path, model.state_dict(), ckpt_config,
                                {"epoch": epoch, "val_auc": auc, "val_acc": acc,
                                 "val_loss": val_loss})
        if write:
            _save_last(last_path, model, ckpt_config, opt, scaler, epoch, history, best)
        if dist.is_main:
            dispatch(callbacks, "on_epoch", EpochInfo(
                seed, fold, epoch, config.epochs, train_loss, val_loss, auc, acc,
                best["epoch"], best["auc"], time.perf_counter() - te))

    last = history[-1] if history else {}
    b_auc = best["auc"] if math.isfinite(best["auc"]) else float("nan")
    return FoldResult(
        seed=seed, fold=fold, best_epoch=int(best["epoch"]), auc=float(b_auc),
        acc=float(best["acc"]), last_auc=float(last.get("val_auc", float("nan"))),
        last_acc=float(last.get("val_acc", float("nan"))), epochs_done=len(history),
        n_train=n_train, n_val=len(val_idx),
        val_slide_ids=[dataset.slide_ids[i] for i in val_idx],
        val_labels=[int(v) for v in dataset.y[val_idx]], val_probs=best["probs"],
        history=history,
        best_checkpoint=str(best_path) if write else None,
        last_checkpoint=str(last_path) if write else None,
        seconds=time.perf_counter() - t0,
    )


def _save_last(path, model, ckpt_config, opt, scaler, epoch, history, best) -> None:
    save_checkpoint(path, model.state_dict(), ckpt_config, {
        "epoch": int(epoch), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
        "history": history, "best": best,
    })


# ---------------------------------------------------------------------------- CV
def train_cross_validation(
    dataset,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    *,
    callbacks: Sequence[Any] | None = None,
    cancel: CancelToken | Any | None = None,
    resume: bool = False,
    overwrite: bool = False,
    title: str | None = None,
) -> CVResult:
    """k-fold cross-validation of ``config`` on ``dataset``, repeated over ``config.seeds``.

    Writes under ``out_dir`` (when given): ``run.json`` (settings, slides, splits),
    ``seed<S>/fold<K>/{best,last}.pt`` and ``result.json`` per finished fold,
    ``results.json`` and ``results.md``. A cancelled run returns the finished folds with
    ``cancelled=True`` and can be continued with ``resume=True``.

    Raises
    ------
    CheckpointError
        ``out_dir`` holds another run (without ``resume``/``overwrite``) or a run with
        other settings (with ``resume``).
    """
    from napari_higt.export.io import atomic_write_text

    config = config or TrainConfig()
    config.validate()
    t0 = time.perf_counter()
    dist = DistContext.current()
    out = Path(out_dir) if out_dir is not None else None
    csv_folds = dataset.folds
    n_folds = len(set(csv_folds.tolist())) if csv_folds is not None else config.folds
    splits = {sd: make_splits(dataset.y, config.folds, sd, csv_folds) for sd in config.seeds}
    run = {
        "train": config.fingerprint(), "class_names": list(dataset.class_names),
        "slides": list(dataset.slide_ids), "labels": [int(v) for v in dataset.y],
        "splits": {str(sd): [[dataset.slide_ids[i] for i in va] for _, va in sp]
                   for sd, sp in splits.items()},
    }
    if out is not None:
        rj = out / "run.json"
        if rj.is_file():
            prev = json.loads(rj.read_text())
            if resume:
                diffs = config_differences(
                    {k: prev.get(k) for k in run}, run)
                if diffs:
                    raise CheckpointError(
                        f"{out} holds a run with other settings or slides, so it cannot be "
                        "resumed with these: " + "; ".join(diffs[:5])
                        + ". Use the original settings or another --out folder")
            elif not overwrite:
                raise CheckpointError(
                    f"{out} already holds a training run; pass --resume to continue it, "
                    "--overwrite to start it again, or choose another --out folder")
        if dist.world_size > 1:  # every rank has looked at run.json before rank 0 rewrites it
            import torch.distributed as tdist

            tdist.barrier()
        if dist.is_main:
            atomic_write_text(rj, json.dumps({**run, "config": asdict(config)}, indent=1))
    results: list[FoldResult] = []
    cancelled = False
    try:
        for sd in config.seeds:
            for k, (tr, va) in enumerate(splits[sd]):
                fdir = out / f"seed{sd}" / f"fold{k}" if out is not None else None
                done = fdir / "result.json" if fdir is not None else None
                if resume and done is not None and done.is_file():
                    fr = FoldResult(**json.loads(done.read_text()))
                else:
                    fr = train_fold(dataset, tr, va, config, seed=sd, fold=k, n_folds=n_folds,
                                    fold_dir=fdir, callbacks=callbacks, cancel=cancel,
                                    resume=resume, dist=dist)
                    if done is not None and dist.is_main:
                        atomic_write_text(done, json.dumps(fr.to_dict(), indent=1))
                results.append(fr)
                if dist.is_main:
                    dispatch(callbacks, "on_fold", FoldInfo(
                        sd, k, n_folds, fr.best_epoch, fr.auc, fr.acc, fr.last_auc, fr.last_acc,
                        fr.best_checkpoint, fr.history))
    except TrainingCancelled:
        cancelled = True
    res = CVResult(results, list(dataset.class_names), asdict(config), n_folds, cancelled,
                   time.perf_counter() - t0, str(out) if out is not None else None)
    if out is not None and dist.is_main:
        atomic_write_text(out / "results.json", json.dumps(_finite(res.to_dict()), indent=1,
                                                           default=_json_default))
        atomic_write_text(out / "results.md", res.markdown(title))
    return res


def _finite(v: Any) -> Any:
    """Strict JSON: non-finite floats (AUC of a one-class fold, ...) become null."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
