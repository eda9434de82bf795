"""What a training run returns: one `FoldResult` per (seed, fold) and the `CVResult`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from napari_higt.training.metrics import mean_std

__all__ = ["FoldResult", "CVResult", "strict_json", "fmt_metric", "fold_rows"]


@dataclass
class FoldResult:
    """Outcome of one (seed, fold).

    ``auc``, ``acc``, ``balanced_acc``, ``f1``, ``confusion`` and ``val_*`` are on the slides
    the fold reports: the evaluation fold, scored once at the chosen epoch (``protocol``
    ``"inner-val"``: ``select_auc`` is the inner validation AUC that chose it, on
    ``n_select`` slides), or, with ``"eval-fold"``, the evaluation fold that chose it.
    """

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
    protocol: str = "eval-fold"
    n_select: int = 0
    select_auc: float = float("nan")
    balanced_acc: float = float("nan")
    f1: float = float("nan")
    confusion: list[list[int]] = field(default_factory=list)

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
        for key in _SUMMARY_KEYS:
            m, s = mean_std([getattr(f, key) for f in self.folds])
            out[key] = {"mean": m, "std": s}
        cms = [np.asarray(f.confusion) for f in self.folds if f.confusion]
        # every seed scores every slide once: the matrix counts slides x seeds
        out["confusion"] = np.sum(cms, axis=0).tolist() if cms else []
        out["protocols"] = sorted({f.protocol for f in self.folds})
        seeds = sorted({f.seed for f in self.folds})
        per_seed = {}
        for sd in seeds:
            fs = [f for f in self.folds if f.seed == sd]
            per_seed[str(sd)] = {k: mean_std([getattr(f, k) for f in fs])[0]
                                 for k in _SUMMARY_KEYS}
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
        lines += ["| seed | fold | best epoch | AUC | ACC | BAL-ACC | F1 | AUC (last epoch) "
                  "| ACC (last epoch) |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for f in self.folds:
            lines.append(f"| {f.seed} | {f.fold} | {f.best_epoch} | {f.auc:.4f} | "
                         f"{f.acc:.4f} | {f.balanced_acc:.4f} | {f.f1:.4f} | {f.last_auc:.4f} "
                         f"| {f.last_acc:.4f} |")
        s = self.summary()

        def ms(k: str) -> str:
            return f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}"

        lines.append(f"| **mean ± std** | | | **{ms('auc')}** | **{ms('acc')}** | "
                     f"{ms('balanced_acc')} | {ms('f1')} | {ms('last_auc')} | {ms('last_acc')} |")
        sp = s["seed_spread_auc"]
        lines += ["", f"{len(self.folds)} runs ({len({f.seed for f in self.folds})} seed(s) x "
                      f"{self.n_folds} folds); AUC of the per-seed means: std {sp['std']:.4f}, "
                      f"range {sp['min']:.4f}-{sp['max']:.4f}. " + _protocol_note(self.folds)]
        if s["confusion"]:
            names = self.class_names
            lines += ["", "Confusion matrix (rows: true class, columns: predicted; slides x "
                          "seeds):", "", "| | " + " | ".join(names) + " |",
                      "|---|" + "---:|" * len(names)]
            lines += [f"| {n} | " + " | ".join(str(v) for v in row) + " |"
                      for n, row in zip(names, s["confusion"])]
        if self.cancelled:
            lines.append("\n**The run was cancelled: these are the completed folds only.**")
        return "\n".join(lines) + "\n"


_SUMMARY_KEYS = ("auc", "acc", "balanced_acc", "f1", "last_auc", "last_acc")


def _protocol_note(folds: list[FoldResult]) -> str:
    """What chose each fold's epoch, in words (the protocol behind the figures)."""
    kinds = {f.protocol for f in folds}
    if kinds == {"inner-val"}:
        return ("Each fold's epoch is chosen on a validation split of its training part; the "
                "evaluation fold is scored once, at that epoch. The last-epoch columns are "
                "unselected.")
    if kinds == {"eval-fold"}:
        return ("The best epoch is chosen on the evaluation fold itself (optimistic); the "
                "last-epoch columns are unselected.")
    return "Folds of both protocols (inner validation and evaluation fold) are mixed."


def strict_json(v: Any) -> Any:
    """``v`` with non-finite floats (AUC of a one-class fold, ...) as None and numpy scalars
    and arrays as Python values, so that ``json.dumps`` writes strict JSON."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (np.integer, np.floating)):
        return strict_json(v.item())
    if isinstance(v, np.ndarray):
        return strict_json(v.tolist())
    if isinstance(v, dict):
        return {k: strict_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [strict_json(x) for x in v]
    return v


def fmt_metric(v: float | None, digits: int = 3) -> str:
    """A metric for display: ``n/a`` when missing or not finite (AUC of a one-class fold)."""
    return f"{v:.{digits}f}" if v is not None and math.isfinite(v) else "n/a"


def fold_rows(result: CVResult) -> list[tuple[str, str, str, str]]:
    """(fold, best epoch, AUC, ACC) per fold, then the mean ± std row (none without folds).

    Folds are named ``k`` for one seed and ``s<seed>/k`` for several.
    """
    seeds = {f.seed for f in result.folds}
    rows = [(f"{f.fold}" if len(seeds) == 1 else f"s{f.seed}/{f.fold}",
             str(f.best_epoch), fmt_metric(f.auc), fmt_metric(f.acc)) for f in result.folds]
    if result.folds:
        s = result.summary()
        rows.append(("mean ± std", "",
                     f"{fmt_metric(s['auc']['mean'])} ± {fmt_metric(s['auc']['std'])}",
                     f"{fmt_metric(s['acc']['mean'])} ± {fmt_metric(s['acc']['std'])}"))
    return rows
