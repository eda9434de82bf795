"""The labels CSV, ``slide_id,label[,fold]``, read one way by training, the CLI and the
cohort browser.

Rules: a header naming ``slide_id`` and ``label`` (any case, any column order, extra columns
ignored); ``slide_id`` may be a file name, whose feature / slide extension is dropped; every
row needs a slide id and a label; a slide listed twice must carry the same label (the
repeat is ignored); ``fold``, when present, holds integers. A group column (``case_id``,
named by the caller) needs a value in every row; the slides of a group stay in one fold.

A label names its class after one rule, `normalize_label`: surrounding spaces are dropped,
letters are case-folded and a number is written in its shortest form, so ``TUMOR``,
``Tumor `` and ``tumor`` are one class ``tumor``, and ``1``, ``01`` and ``1.0`` one class
``1``. Spellings merged this way are reported (`napari_higt.errors.warn_user`). Class names
are the distinct normalised labels in sorted order (numbers sort numerically), so class
index ``i`` means ``class_names[i]`` everywhere (logits, checkpoints, prediction CSVs).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_higt.errors import UserFacingError, warn_user

__all__ = ["LabelError", "LabelTable", "read_labels", "class_order", "strip_slide_extension",
           "normalize_label"]

#: Extensions dropped from a ``slide_id`` given as a file name.
SLIDE_ID_EXTENSIONS = (".h5", ".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn")


class LabelError(UserFacingError):
    """The labels CSV cannot be used (missing columns, empty, duplicate slides)."""


@dataclass
class LabelTable:
    """Parsed labels CSV."""

    slide_ids: list[str]
    labels: list[str]
    folds: list[int] | None
    class_names: list[str]
    path: Path | None = None
    groups: list[str] | None = None  # the group column's value per slide, when asked for

    def index(self) -> np.ndarray:
        """Class index of every row."""
        lut = {c: i for i, c in enumerate(self.class_names)}
        return np.array([lut[v] for v in self.labels], dtype=np.int64)

    def as_dict(self) -> dict[str, str]:
        """``{slide_id: label}``."""
        return dict(zip(self.slide_ids, self.labels))


def strip_slide_extension(slide_id: str) -> str:
    """``slide_id`` without a feature-file or slide-file extension (``a.svs`` -> ``a``)."""
    for ext in SLIDE_ID_EXTENSIONS:
        if slide_id.lower().endswith(ext):
            slide_id = slide_id[: -len(ext)]
    return slide_id


def normalize_label(value: str) -> str:
    """The class a label cell names: stripped, case-folded, numbers in shortest form.

    >>> [normalize_label(v) for v in (" Tumor", "TUMOR", "1.0", "01", "0.50", "nan")]
    ['tumor', 'tumor', '1', '1', '0.5', 'nan']
    """
    v = value.strip().casefold()
    try:
        return str(int(v))
    except ValueError:
        pass
    try:
        x = float(v)
    except ValueError:
        return v
    if not math.isfinite(x):  # "nan", "inf": words, not numbers
        return v
    return str(int(x)) if x.is_integer() else repr(x)


def _sort_key(v: str) -> tuple[int, float | str]:
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)


def class_order(labels: Sequence[str]) -> list[str]:
    """The distinct labels in class-index order (numbers numerically, then text)."""
    return sorted(set(labels), key=_sort_key)


def _rows(path: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """(lower-case column name -> header name, the non-blank rows)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            names = {c.strip().lower(): c for c in reader.fieldnames or []}
            rows = [r for r in reader if any((v or "").strip() for v in r.values()
                                             if isinstance(v, str))]
    except UnicodeDecodeError as exc:
        raise LabelError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                         f"offset {exc.start}); save it as UTF-8 ('CSV UTF-8' in Excel)") from None
    except (OSError, csv.Error) as exc:
        raise LabelError(f"{path}: not a readable CSV ({exc})") from None
    if "slide_id" not in names or "label" not in names:
        raise LabelError(f"{path}: the header must name the columns slide_id,label[,fold]; "
                         f"found {list(names.values())}")
    return names, rows


def read_labels(path: str | os.PathLike, min_classes: int = 2,
                group_column: str | None = None) -> LabelTable:
    """Read ``slide_id,label[,fold]`` (rules in the module docstring).

    Parameters
    ----------
    path : the CSV.
    min_classes : fewer distinct labels is an error (2 for training; 1 to browse a cohort).
    group_column : a column (any case) whose value groups slides (a patient, ``case_id``).

    Raises
    ------
    LabelError
        Missing file or columns, no rows, an empty slide id or label, a slide listed twice
        with different labels, fewer than ``min_classes`` classes, non-integer folds, a
        missing group column or an empty group value.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"labels file not found: {path}")
    names, rows = _rows(path)
    gcol = None
    if group_column is not None:
        gcol = names.get(group_column.strip().lower())
        if gcol is None:
            raise LabelError(f"{path}: no column {group_column!r} to group slides by; the "
                             f"columns are {list(names.values())}")
    ids, labels, folds, groups = [], [], [], []
    seen: dict[str, str] = {}
    spellings: dict[str, set[str]] = {}
    has_fold = "fold" in names
    for k, r in enumerate(rows, start=2):
        sid = strip_slide_extension((r[names["slide_id"]] or "").strip())
        raw = (r[names["label"]] or "").strip()
        lab = normalize_label(raw)
        if not sid or not lab:
            raise LabelError(f"{path}, line {k}: empty slide_id or label")
        spellings.setdefault(lab, set()).add(raw)
        if sid in seen:
            if seen[sid] != lab:
                raise LabelError(f"{path}: slide {sid!r} is listed with labels "
                                 f"{seen[sid]!r} and {lab!r}")
            continue
        seen[sid] = lab
        ids.append(sid)
        labels.append(lab)
        if gcol is not None:
            grp = (r[gcol] or "").strip()
            if not grp:
                raise LabelError(f"{path}, line {k}: empty {group_column} for slide {sid!r}")
            groups.append(grp)
        if has_fold:
            f = (r[names["fold"]] or "").strip()
            try:
                fv = float(f)
            except ValueError:
                fv = math.nan
            if not fv.is_integer():  # 0.5 is a typo, not fold 0
                raise LabelError(f"{path}, line {k}: fold {f!r} is not an integer")
            folds.append(int(fv))
    if not ids:
        raise LabelError(f"{path} lists no slides")
    merged = {c: sorted(v) for c, v in spellings.items() if len(v) > 1}
    if merged:
        warn_user(f"{path.name}: labels spelled differently are one class: " + "; ".join(
            f"{', '.join(repr(v) for v in vs)} -> {c!r}" for c, vs in sorted(merged.items())))
    classes = class_order(labels)
    if len(classes) < min_classes:
        raise LabelError(f"{path}: only one class ({classes[0]!r}); training needs at least two")
    return LabelTable(ids, labels, folds if has_fold else None, classes, path,
                      groups if gcol is not None else None)
