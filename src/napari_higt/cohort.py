"""A cohort of slides as one table: files, feature files, predictions and labels joined.

Qt-free: the cohort browser widget (``napari_higt.ui.cohort_widget``) shows what
:func:`scan_cohort` returns, and a notebook can use it just as well.

>>> cohort = scan_cohort("slides/", predictions="preds.csv", labels="labels.csv")  # doctest: +SKIP
>>> [(r.slide_id, r.pred, r.prob, r.label, r.status) for r in cohort.rows]          # doctest: +SKIP

* Slides: every file in the folder (not its subfolders) with a slide extension
  (``napari_higt.slide.reader.SLIDE_EXTENSIONS``), keyed by file stem (``slide_id``).
* Feature files: ``<features_dir>/<slide_id>.h5`` (default ``<folder>/features``).
  *features* = the file exists and is readable; *graph* = it has x10 patches, so the
  hierarchical graph can be built from it; *prediction* = a row of the predictions CSV or
  model scores cached in the file's ``explain/`` group.
* Predictions CSV: ``slide_id,pred,prob_<class>...``; ``prob`` is the probability of the
  predicted class (``prob_<pred>``; the largest ``prob_*`` when that column is absent).
* Labels CSV: ``slide_id,label[,fold]``, read by `napari_higt.labels.read_labels` with the
  rules training uses (one class is enough here).

Prediction rows whose slide is not in the folder, duplicate slide ids and malformed rows
are not errors: they are reported in ``Cohort.warnings`` so one bad line does not hide the
cohort; so are labelled slides not in the folder. A missing or unreadable CSV, one without
the required columns, or a labels CSV that breaks the labels rules raises
:class:`CohortError` (a ``UserFacingError``) saying what is wrong.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from napari_higt.errors import UserFacingError
from napari_higt.labels import LabelError, read_labels

__all__ = ["Cohort", "CohortError", "CohortRow", "scan_cohort", "read_predictions",
           "feature_file_status"]


class CohortError(UserFacingError):
    """A cohort folder or CSV the user must fix."""


@dataclass
class CohortRow:
    """One slide of a cohort."""

    slide_id: str
    path: Path
    feature_path: Path | None = None  # the feature file when it exists
    has_features: bool = False
    has_graph: bool = False
    has_prediction: bool = False
    has_cached_scores: bool = False  # model scores cached in the feature file (explain/)
    feature_mpp: float | None = None  # µm/px the features were computed at
    n_patches: int | None = None  # x10 patches in the feature file
    pred: str | None = None
    prob: float | None = None  # probability of the predicted class
    probs: dict[str, float] = field(default_factory=dict)
    label: str | None = None

    @property
    def status(self) -> str:
        """Short summary for a table cell: which of features / graph / prediction exist."""
        parts = [name for name, ok in (("features", self.has_features),
                                       ("graph", self.has_graph),
                                       ("prediction", self.has_prediction)) if ok]
        return ", ".join(parts) if parts else "slide only"

    @property
    def correct(self) -> bool | None:
        """Prediction equals the true label; None when either is unknown."""
        if self.pred is None or self.label is None:
            return None
        return self.pred == self.label

    def matches(self, text: str) -> bool:
        """Case-insensitive filter over slide id, prediction, label and status.

        Space-separated terms must all match; ``key:value`` restricts a term to one column
        (``pred:``, ``label:``, ``status:``, ``slide:``); ``wrong`` / ``right`` select
        misclassified / correctly classified slides.
        """
        cols = {"slide": self.slide_id, "pred": self.pred or "", "label": self.label or "",
                "status": self.status}
        for term in text.lower().split():
            if term == "wrong":
                if self.correct is not False:
                    return False
                continue
            if term == "right":
                if self.correct is not True:
                    return False
                continue
            key, sep, value = term.partition(":")
            if sep and key in cols:
                if value not in cols[key].lower():
                    return False
            elif not any(term in v.lower() for v in cols.values()):
                return False
        return True


@dataclass
class Cohort:
    """What :func:`scan_cohort` returns."""

    folder: Path
    features_dir: Path
    rows: list[CohortRow]
    classes: list[str] = field(default_factory=list)  # from the prob_<class> columns
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, slide_id: str) -> CohortRow:
        for r in self.rows:
            if r.slide_id == slide_id:
                return r
        raise KeyError(slide_id)


def _read_csv(path: Path, required: tuple[str, ...], what: str) -> tuple[list[str], list[dict]]:
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"{what} CSV not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() if isinstance(v, str) else v
                     for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CohortError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise CohortError(
            f"{path}: the {what} CSV needs the column(s) {', '.join(missing)} "
            f"(expected header: {','.join(required)}{',...' if what == 'predictions' else ''}); "
            f"found: {','.join(header) or 'no header'}"
        )
    return header, rows


def _slide_rows(path: Path, rows: list[dict],
                warnings: list[str]) -> Iterator[tuple[int, str, dict]]:
    """(line number, slide_id, row) of the rows with a slide_id seen for the first time;
    the others are skipped with a warning."""
    seen: set[str] = set()
    for i, r in enumerate(rows, start=2):
        sid = r.get("slide_id") or ""
        if not sid:
            warnings.append(f"{path.name} line {i}: no slide_id; row skipped")
            continue
        if sid in seen:
            warnings.append(f"{path.name} line {i}: {sid} listed again; the first row is kept")
            continue
        seen.add(sid)
        yield i, sid, r


def read_predictions(path: str | os.PathLike) -> tuple[list[str], dict[str, dict], list[str]]:
    """Read ``slide_id,pred,prob_<class>...`` -> (classes, {slide_id: row}, warnings).

    Each row is ``{"pred": str, "probs": {class: float}, "prob": float | None}``.
    """
    path = Path(path)
    header, rows = _read_csv(path, ("slide_id", "pred"), "predictions")
    classes = [h[len("prob_"):] for h in header if h.startswith("prob_")]
    out: dict[str, dict] = {}
    warnings: list[str] = []
    for i, sid, r in _slide_rows(path, rows, warnings):
        probs: dict[str, float] = {}
        for c in classes:
            v = r.get(f"prob_{c}")
            if v in (None, ""):
                continue
            try:
                p = float(v)
            except ValueError:
                warnings.append(f"{path.name} line {i}: prob_{c}={v!r} is not a number")
                continue
            if math.isfinite(p):
                probs[c] = p
        pred = r.get("pred") or None
        prob = probs.get(pred) if pred is not None else None
        if prob is None and probs:
            prob = max(probs.values())
        out[sid] = {"pred": pred, "probs": probs, "prob": prob}
    return classes, out, warnings


def feature_file_status(path: str | os.PathLike) -> dict:
    """What a feature file offers, read from its structure only (no feature arrays).

    Returns ``{"readable", "n_patches", "has_cached_scores", "mpp"}``; a missing or
    unreadable file gives ``readable=False``.
    """
    import h5py

    out = {"readable": False, "n_patches": None, "has_cached_scores": False, "mpp": None}
    try:
        with h5py.File(path, "r") as h5:
            out["readable"] = True
            g = h5.get("x10")
            if isinstance(g, h5py.Group) and "coords" in g:
                out["n_patches"] = int(g["coords"].shape[0])
            elif isinstance(h5.get("coords"), h5py.Dataset):  # CLAM/TRIDENT single level
                out["n_patches"] = int(h5["coords"].shape[0])
            out["has_cached_scores"] = isinstance(h5.get("explain"), h5py.Group)
            mpp = h5.attrs.get("mpp")
            try:
                mpp = float(mpp) if mpp is not None else None
            except (TypeError, ValueError):
                mpp = None
            out["mpp"] = mpp if mpp is not None and math.isfinite(mpp) and mpp > 0 else None
    except (OSError, KeyError):
        pass
    return out


def scan_cohort(
    folder: str | os.PathLike,
    features_dir: str | os.PathLike | None = None,
    predictions: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
) -> Cohort:
    """Join the slides of ``folder`` with their feature files, predictions and labels.

    Rows are sorted by slide id. Raises :class:`CohortError` when ``folder`` is not a folder
    or holds no slide, or a given CSV is missing / malformed.
    """
    from napari_higt.slide.reader import SLIDE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise CohortError(f"not a folder: {folder}")
    fdir = Path(features_dir) if features_dir else folder / "features"
    slides = sorted((p for p in folder.iterdir()
                     if p.suffix.lower() in SLIDE_EXTENSIONS and p.is_file()),
                    key=lambda p: p.stem)
    if not slides:
        raise CohortError(
            f"{folder} holds no slide files (looked for {', '.join(SLIDE_EXTENSIONS)})"
        )
    warnings: list[str] = []
    rows: list[CohortRow] = []
    seen: set[str] = set()
    for p in slides:
        if p.stem in seen:
            warnings.append(f"{p.name}: another file is also called {p.stem}; skipped")
            continue
        seen.add(p.stem)
        row = CohortRow(slide_id=p.stem, path=p)
        fp = fdir / f"{p.stem}.h5"
        if fp.is_file():
            st = feature_file_status(fp)
            row.feature_path = fp
            row.has_features = st["readable"]
            row.n_patches = st["n_patches"]
            row.has_graph = bool(st["n_patches"])
            row.has_cached_scores = st["has_cached_scores"]
            row.has_prediction = st["has_cached_scores"]
            row.feature_mpp = st["mpp"]
            if not st["readable"]:
                warnings.append(f"{fp.name}: not a readable feature file")
        rows.append(row)
    by_id = {r.slide_id: r for r in rows}

    classes: list[str] = []
    if predictions:
        classes, preds, w = read_predictions(predictions)
        warnings += w
        for sid, pr in preds.items():
            row = by_id.get(sid)
            if row is None:
                warnings.append(f"{Path(predictions).name}: {sid} has no slide in {folder}")
                continue
            row.pred, row.prob, row.probs = pr["pred"], pr["prob"], pr["probs"]
            row.has_prediction = True
    if labels:
        try:
            labs = read_labels(labels, min_classes=1).as_dict()
        except LabelError as exc:
            raise CohortError(str(exc)) from None
        for sid, lab in labs.items():
            row = by_id.get(sid)
            if row is None:
                warnings.append(f"{Path(labels).name}: {sid} has no slide in {folder}")
                continue
            row.label = lab
    return Cohort(folder=folder, features_dir=fdir, rows=rows, classes=classes,
                  warnings=warnings)
