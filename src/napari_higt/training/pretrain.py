"""Self-supervised pretraining of the H-MGDM patch encoder (no Qt, no napari).

Pipeline: slides -> x10 patches over tissue (`napari_higt.slide.tiling`) -> SLIC entity
graphs (`napari_higt.graph.entities`, worker pool + cache) -> `HMGDM` trained with
dynamic entity masking and latent graph diffusion -> a checkpoint the ``hmgdm`` extractor
loads.

`pretrain_hmgdm` reports progress through a callback and checks a cancel callable every
step, so the CLI (tqdm) and a napari worker thread can both drive it. Checkpoints are
written atomically (tmp + rename) after every epoch and on cancel; ``resume=`` continues
from one (model, optimiser, scheduler, epoch, history). CPU, CUDA and AMP (CUDA float16
with a GradScaler; bfloat16 autocast on CPU) are supported.

CHOICES where the spec is silent or does not fit a few-minute CPU run:
* ``lr=1e-3`` in the small preset (the paper's 1e-4 is kept for the GPU preset): the
  small model and a few hundred steps on 2 CPU cores need the larger step.
* Random flips/transposes of the entity positions per graph (``augment=True``): the
  handcrafted entity features are invariant to them, so it is a free augmentation.
* ReduceLROnPlateau is stepped once per epoch on the epoch's mean loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from napari_higt.devices import cpu_heap_blocks, resolve_device
from napari_higt.errors import CheckpointError, GraphError
from napari_higt.levels import PATCH, PATCH_SIZE, tile_size0
from napari_higt.models.hmgdm import HMGDM, HMGDMConfig, load_hmgdm_checkpoint
from napari_higt.models.hmgdm import save_hmgdm_checkpoint

__all__ = [
    "PretrainConfig",
    "PretrainResult",
    "collect_patches",
    "build_entity_graphs",
    "pretrain_hmgdm",
    "train_step",
]


@dataclass
class PretrainConfig:
    """Optimisation settings (spec section 5, with the CPU choices of the module doc)."""

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    plateau_factor: float = 0.6
    plateau_patience: int = 10
    min_lr: float = 1e-5
    amp: bool = False
    device: str = "auto"
    seed: int = 0
    augment: bool = True

    @classmethod
    def small(cls, **kw) -> PretrainConfig:
        return cls(**kw)

    @classmethod
    def gpu(cls, **kw) -> PretrainConfig:
        """Paper settings: Adam 1e-4, batch 32, AMP on CUDA."""
        base = dict(epochs=100, batch_size=32, lr=1e-4, amp=True, device="auto")
        base.update(kw)
        return cls(**base)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PretrainConfig:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


@dataclass
class PretrainResult:
    model: HMGDM
    history: list[dict] = field(default_factory=list)  # per epoch: mean losses, lr, seconds
    epochs_done: int = 0
    wall_time: float = 0.0  # seconds of training in this call (graph building excluded)
    cancelled: bool = False
    checkpoint: Path | None = None


# ---------------------------------------------------------------------------------------
# Data


def collect_patches(
    slides: Sequence[str | Path],
    mpp: float | None = None,
    max_patches: int | None = None,
    min_patches: int = 0,
    patch_size: int = PATCH_SIZE,
    level: str = PATCH,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """x10 patches over the tissue of ``slides`` (tiling module grid), as RGB arrays.

    ``mpp`` is used for slides whose file records no scale (nor objective power). With
    ``max_patches``, grid patches are drawn uniformly at random (seeded) over all slides
    before any pixel is read. CHOICE: when the grid holds fewer than ``min_patches``
    patches (a small sample slide has two at x10), extra patches at random positions over
    tissue are added (overlapping the grid; same magnification and tissue threshold), spread
    over the slides in proportion to their tissue area.
    """
    from napari_higt.slide import Slide, tissue_mask
    from napari_higt.slide.tiling import read_tile, read_tiles, tile_slide
    from napari_higt.slide.tissue import mask_size_for

    rng = np.random.default_rng(seed)
    plans = []
    for path in slides:
        with Slide(path) as s:
            if s.mpp is None and s.objective_power is None and mpp is not None:
                s.set_mpp(mpp)
            # the mask preprocess makes (same tissue fractions; a full-size one takes seconds)
            size = (mask_size_for(s.dimensions, tile_size0(level, s.mpp[0], patch_size))
                    if s.mpp else 2048)
            mask = tissue_mask(s, max_size=size)
            tiling = tile_slide(s, mask, patch_size=patch_size, levels=(level,))
            plans.append({"path": Path(path), "mpp": s.mpp, "mask": mask,
                          "grid": tiling.levels[level], "threshold": tiling.tissue_threshold,
                          "dims": s.dimensions})
    total = sum(len(p["grid"]) for p in plans)
    chosen = np.arange(total)
    if max_patches is not None and max_patches < total:
        chosen = np.sort(rng.choice(total, max_patches, replace=False))
    want_extra = max(0, min(min_patches, max_patches or min_patches) - len(chosen))
    # Extra random positions over tissue (see CHOICE above).
    weights = np.array([p["mask"].fraction * p["dims"][0] * p["dims"][1] for p in plans])
    extra_n = (np.zeros(len(plans), np.int64) if want_extra == 0 or weights.sum() <= 0 else
               rng.multinomial(want_extra, weights / weights.sum()))
    extra_xy = []
    for p, k in zip(plans, extra_n):
        xy = np.zeros((0, 2), np.int64)
        size0 = p["grid"].size0
        w, h = p["dims"]
        if k > 0 and w >= size0 and h >= size0:
            cand = np.stack([rng.uniform(0, w - size0, 50 * k), rng.uniform(0, h - size0, 50 * k)],
                            1).astype(np.int64)
            ok = p["mask"].region_fraction(cand, size0) > p["threshold"]
            xy = cand[ok][:k]
        extra_xy.append(xy)
    n_all = len(chosen) + sum(len(x) for x in extra_xy)
    if n_all == 0:
        raise GraphError(f"no {level} patch with tissue in {len(plans)} slide(s); nothing to "
                         "pretrain on")
    out: list[np.ndarray] = []
    start = 0
    for p, xy in zip(plans, extra_xy):
        grid = p["grid"]
        idx = chosen[(chosen >= start) & (chosen < start + len(grid))] - start
        start += len(grid)
        if len(idx) == 0 and len(xy) == 0:
            continue
        with Slide(p["path"], mpp=p["mpp"]) as s:
            for k in range(0, len(idx), 16):
                out.extend(read_tiles(s, grid, idx[k:k + 16]))
                if progress is not None:
                    progress(len(out), n_all)
            for c in xy:
                out.append(read_tile(s, grid, c))
                if progress is not None:
                    progress(len(out), n_all)
    return out


def build_entity_graphs(patches, entity: dict | None = None, n_jobs: int = 1,
                        cache_dir=None, progress=None) -> list:
    """Entity graphs of patches with the model config's entity settings (no label images)."""
    from napari_higt.graph.entity_batch import entity_graphs

    entity = dict(HMGDMConfig().entity if entity is None else entity)
    return entity_graphs(patches, n_jobs=n_jobs, cache_dir=cache_dir, keep_label_image=False,
                         progress=progress, **entity)


def _augment(g, rng: np.random.Generator):
    """Random flips / transpose of the entity positions (features are invariant)."""
    pos = g.pos.clone()
    if rng.random() < 0.5:
        pos[:, 0] = -pos[:, 0]
    if rng.random() < 0.5:
        pos[:, 1] = -pos[:, 1]
    if rng.random() < 0.5:
        pos = pos[:, [1, 0]]
    g = g.clone()
    g.pos = pos
    return g


def _make_batch(graphs, device):
    from torch_geometric.data import Batch

    clean = []
    for g in graphs:
        g = g.clone()
        for key in ("label_image", "centroid"):
            if key in g:
                del g[key]
        clean.append(g)
    return Batch.from_data_list(clean).to(device)


# ---------------------------------------------------------------------------------------
# Training


def train_step(model: HMGDM, optimizer: torch.optim.Optimizer, batch, grad_clip: float = 10.0,
               scaler=None, amp_dtype: torch.dtype | None = None,
               rng: np.random.Generator | None = None, generator=None):
    """One optimisation step on a batch of entity graphs; returns the `HMGDMOutput`."""
    model.train()
    dev = batch.x.device
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        out = model(batch, rng=rng, generator=generator)
    if scaler is not None:
        scaler.scale(out.loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return out


def _make_optim(model: HMGDM, cfg: PretrainConfig):
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                           weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience,
        min_lr=cfg.min_lr)
    return opt, sched


@cpu_heap_blocks()
def pretrain_hmgdm(
    graphs: Sequence,
    model_config: HMGDMConfig | dict | None = None,
    config: PretrainConfig | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    extra: dict | None = None,
) -> PretrainResult:
    """Pretrain H-MGDM on entity graphs.

    Parameters
    ----------
    graphs : list of entity graphs (`build_entity_graphs`)
    model_config : `HMGDMConfig` (default: small preset); taken from ``resume`` if given
    config : `PretrainConfig`
    out : checkpoint path, written atomically after every epoch, on cancel and at the end
    resume : a checkpoint of an earlier run to continue (same model configuration)
    progress : called after every step with a dict ``{"epoch", "epochs", "step", "steps",
        "loss", "node_loss", "pos_loss", "edge_loss", "kl_loss", "lr"}`` and after every
        epoch with ``"epoch_done": True`` and the epoch means
    should_stop : checked before every step; True -> save and return with ``cancelled``
    extra : JSON-able data stored in the checkpoint (e.g. the slides used)
    """
    cfg = config or PretrainConfig()
    dev = resolve_device(cfg.device)
    graphs = list(graphs)
    if not graphs:
        raise GraphError("no entity graphs to pretrain on")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model, ckpt = _start_model(graphs, model_config, resume)
    start_epoch = int(ckpt.get("epoch", 0)) if ckpt else 0
    history: list[dict] = list(ckpt.get("history", [])) if ckpt else []
    model.to(dev)
    opt, sched = _make_optim(model, cfg)
    if ckpt is not None and "optimizer" in ckpt:
        opt.load_state_dict(ckpt["optimizer"])
        if "scheduler" in ckpt:
            sched.load_state_dict(ckpt["scheduler"])
    amp = _amp(cfg, dev)

    out_path = Path(out) if out is not None else None
    result = PretrainResult(model=model, history=history, epochs_done=start_epoch)

    def save(epoch: int) -> None:
        if out_path is None:
            return
        save_hmgdm_checkpoint(out_path, model, extra={
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
            "history": history, "pretrain": cfg.to_dict(), "n_graphs": len(graphs),
            **(extra or {})})
        result.checkpoint = out_path

    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        te = time.perf_counter()
        means = _pretrain_epoch(model, opt, graphs, cfg, epoch, dev, amp, rng, progress,
                                should_stop)
        if means is None:
            result.cancelled = True
            save(epoch)  # the interrupted epoch is redone on resume
            break
        sched.step(means.get("loss", 0.0))
        history.append({"epoch": epoch + 1, **means, "lr": opt.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - te})
        result.epochs_done = epoch + 1
        save(epoch + 1)
        if progress is not None:
            progress({"epoch": epoch + 1, "epochs": cfg.epochs, "epoch_done": True, **means,
                      "lr": opt.param_groups[0]["lr"]})
    result.wall_time = time.perf_counter() - t0
    model.eval()
    return result


def _start_model(graphs: Sequence, model_config, resume) -> tuple[HMGDM, dict | None]:
    """A fresh model (normaliser fitted on ``graphs``) or the one ``resume`` holds."""
    ckpt = None
    if resume is not None:
        model, ckpt = load_hmgdm_checkpoint(resume, map_location="cpu")
        if model_config is not None:
            want = (HMGDMConfig.from_dict(model_config) if isinstance(model_config, dict)
                    else model_config).to_dict()
            if want != model.cfg.to_dict():
                diff = sorted(k for k in want if want[k] != model.cfg.to_dict().get(k))
                raise CheckpointError(f"{resume}: cannot resume, the model configuration "
                                      f"differs in {diff}")
    else:
        model = HMGDM(model_config if model_config is not None else HMGDMConfig())
        model.fit_normalizer(graphs)
    in_dim = int(graphs[0].x.shape[1])
    if in_dim != model.cfg.in_dim:
        raise GraphError(f"entity graphs have {in_dim}-dim features, the model expects "
                         f"{model.cfg.in_dim} (entity settings {model.cfg.entity})")
    return model, ckpt


def _amp(cfg: PretrainConfig, dev: torch.device) -> tuple:
    """``(autocast dtype, grad scaler)``: fp16 + scaler on CUDA, bf16 elsewhere, or Nones."""
    if not cfg.amp:
        return None, None
    if dev.type == "cuda":
        return torch.float16, torch.amp.GradScaler("cuda")
    return torch.bfloat16, None


def _pretrain_epoch(model, opt, graphs: Sequence, cfg: PretrainConfig, epoch: int, dev,
                    amp: tuple, rng: np.random.Generator, progress, should_stop,
                    ) -> dict[str, float] | None:
    """One epoch over ``graphs`` in shuffled batches: the mean losses, None when stopped."""
    amp_dtype, scaler = amp
    n = len(graphs)
    steps = max(1, math.ceil(n / cfg.batch_size))
    order = rng.permutation(n)
    sums: dict[str, float] = {}
    done = 0
    for step in range(steps):
        if should_stop is not None and should_stop():
            return None
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        if len(idx) == 0:
            continue
        chunk = [graphs[i] for i in idx]
        if cfg.augment:
            chunk = [_augment(g, rng) for g in chunk]
        batch = _make_batch(chunk, dev)
        o = train_step(model, opt, batch, cfg.grad_clip, scaler, amp_dtype, rng)
        losses = o.loss_dict()
        if not math.isfinite(losses["loss"]):
            if scaler is not None:  # fp16 overflow: the scaler skipped the step
                continue
            raise FloatingPointError(f"non-finite loss at epoch {epoch + 1} step {step + 1}"
                                     f": {losses}")
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        done += 1
        if progress is not None:
            progress({"epoch": epoch + 1, "epochs": cfg.epochs, "step": step + 1,
                      "steps": steps, "lr": opt.param_groups[0]["lr"], **losses})
    return {k: v / max(done, 1) for k, v in sums.items()}
