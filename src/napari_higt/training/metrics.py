"""Slide-level metrics: AUC (binary, or macro one-vs-rest), accuracy, balanced accuracy,
macro F1 and the confusion matrix; mean ± std over runs."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["auc_score", "accuracy", "balanced_accuracy", "macro_f1", "confusion",
           "classification_metrics", "mean_std"]


def auc_score(y: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC of class probabilities ``probs`` (N, C) against labels ``y`` (N,).

    Two classes: the AUC of ``probs[:, 1]``. More: the macro average of the one-vs-rest AUCs
    over the classes that occur in ``y`` with at least one negative (a class absent from a
    small validation fold is left out rather than failing). NaN when no class qualifies
    (e.g. a fold with one class only).
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if len(y) == 0 or probs.ndim != 2:
        return float("nan")
    n_classes = probs.shape[1]
    if n_classes == 2:
        if len(np.unique(y)) < 2:
            return float("nan")
        return float(roc_auc_score(y, probs[:, 1]))
    aucs = []
    for c in range(n_classes):
        pos = y == c
        if pos.any() and (~pos).any():
            aucs.append(roc_auc_score(pos.astype(np.int64), probs[:, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


def accuracy(y: np.ndarray, probs: np.ndarray) -> float:
    """Fraction of slides whose arg-max class is the label."""
    y = np.asarray(y).reshape(-1)
    if len(y) == 0:
        return float("nan")
    return float((np.asarray(probs).argmax(1) == y).mean())


def confusion(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Confusion matrix (C, C) of the arg-max class: rows true class, columns predicted."""
    probs = np.asarray(probs)
    n_classes = probs.shape[1] if probs.ndim == 2 else 0
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    pred = probs.argmax(1) if len(y) else np.zeros(0, np.int64)
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (y, pred), 1)
    return out


def balanced_accuracy(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (NaN without slides)."""
    cm = confusion(y, probs)
    support = cm.sum(1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(cm)[present] / support[present]).mean())


def macro_f1(y: np.ndarray, probs: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in ``y`` or predicted (sklearn's macro
    F1 with ``zero_division=0``; NaN without slides)."""
    cm = confusion(y, probs)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)  # 2 tp + fp + fn
    used = denom > 0
    if not used.any():
        return float("nan")
    return float((2 * tp[used] / denom[used]).mean())


def classification_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, object]:
    """AUC, accuracy, balanced accuracy, macro F1 (floats) and the confusion matrix (list)."""
    return {"auc": auc_score(y, probs), "acc": accuracy(y, probs),
            "balanced_acc": balanced_accuracy(y, probs), "f1": macro_f1(y, probs),
            "confusion": confusion(y, probs).tolist()}


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for one value) over the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
