"""Dock widget: review a cohort slide after slide.

A folder of slides joined with their feature files, a predictions CSV
(``slide_id,pred,prob_<class>...``) and a labels CSV (``slide_id,label``) by the Qt-free
`napari_higt.cohort.scan_cohort`, shown as a sortable, filterable table. Double-click (or
Enter) opens a slide, replacing the slide opened before from the cohort together with its
overlays; Up / Down in the table (or Previous / Next) step to the neighbouring row in the
current sort order and open it. A slide whose feature file caches model scores shows them
again (``napari_higt.ui.results.show_cached_results``, when that module is installed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QEvent, Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from napari_higt.cohort import Cohort, CohortRow, scan_cohort
from napari_higt.errors import UserFacingError
from napari_higt.ui.forms import path_row, scroll_layout
from napari_higt.ui.layers import SLIDE_KEY, release_slide

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["CohortWidget", "COLUMNS"]

COLUMNS = ("slide", "predicted", "probability", "label", "status")
_ROW_ROLE = Qt.UserRole + 1  # index into cohort.rows, stored on the slide item


class _NumberItem(QTableWidgetItem):
    """A cell that sorts by its number (empty cells last)."""

    def __init__(self, value: float | None, text: str):
        super().__init__(text)
        self.value = value

    def __lt__(self, other):  # noqa: D105
        if isinstance(other, _NumberItem):
            a = self.value if self.value is not None else float("inf")
            b = other.value if other.value is not None else float("inf")
            return a < b
        return super().__lt__(other)


def _path_row(label: str, edit: QLineEdit, browse) -> QWidget:
    button = QPushButton("…")
    button.setMaximumWidth(32)
    button.setToolTip(f"Choose the {label}")
    button.clicked.connect(browse)
    return path_row(edit, button)


class CohortWidget(QWidget):
    """Cohort table: slide, predicted class, probability, true label, status."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("folder of slides")
        self.features_dir = QLineEdit()
        self.features_dir.setPlaceholderText("<folder>/features")
        self.predictions = QLineEdit()
        self.predictions.setPlaceholderText("optional: slide_id,pred,prob_<class>...")
        self.labels = QLineEdit()
        self.labels.setPlaceholderText("optional: slide_id,label")
        self.load_button = QPushButton("Load cohort")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter: text, pred:X, label:Y, status:graph, wrong")
        self.filter.setClearButtonEnabled(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().setVisible(False)
        # The slide column takes what the others leave (its ids elide in the middle), so
        # Status stays in view in a narrow dock.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setStretchLastSection(False)
        self.table.setTextElideMode(Qt.ElideMiddle)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.table.setMinimumHeight(160)
        self.info = QLabel("Choose a folder of slides and press 'Load cohort'.")
        self.info.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Slides", _path_row("folder", self.folder, self._browse_folder))
        form.addRow("Features", _path_row("features folder", self.features_dir,
                                          self._browse_features))
        form.addRow("Predictions", _path_row("predictions CSV", self.predictions,
                                             lambda: self._browse_csv(self.predictions)))
        form.addRow("Labels", _path_row("labels CSV", self.labels,
                                        lambda: self._browse_csv(self.labels)))
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        layout = scroll_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.load_button)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)
        layout.addLayout(nav)
        layout.addWidget(self.info)

        self.cohort: Cohort | None = None
        self.current: CohortRow | None = None  # the slide open from the cohort
        self.load_button.clicked.connect(self.load)
        self.filter.textChanged.connect(self.apply_filter)
        self.table.cellDoubleClicked.connect(lambda r, c: self.open_table_row(r))
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(+1))
        self.table.installEventFilter(self)

    # ------------------------------------------------------------------ choosing files
    def _browse_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder of slides")
        if d:
            self.folder.setText(d)

    def _browse_features(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder of feature files")
        if d:
            self.features_dir.setText(d)

    def _browse_csv(self, edit: QLineEdit) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "CSV file", "", "CSV (*.csv);;All (*)")
        if f:
            edit.setText(f)

    # ------------------------------------------------------------------ table
    def load(self) -> bool:
        """Scan the folder and fill the table; a notification says what is wrong if not."""
        folder = self.folder.text().strip()
        if not folder:
            show_warning("Choose the folder of slides first.")
            return False
        try:
            cohort = scan_cohort(folder, self.features_dir.text().strip() or None,
                                 self.predictions.text().strip() or None,
                                 self.labels.text().strip() or None)
        except UserFacingError as exc:
            show_warning(str(exc))
            self.info.setText(str(exc))
            return False
        self.set_cohort(cohort)
        if cohort.warnings:
            shown = "; ".join(cohort.warnings[:3])
            more = f" (and {len(cohort.warnings) - 3} more)" if len(cohort.warnings) > 3 else ""
            show_warning(f"Cohort loaded with {len(cohort.warnings)} warning(s): {shown}{more}")
        return True

    def set_cohort(self, cohort: Cohort) -> None:
        self.cohort = cohort
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(cohort.rows))
        for i, row in enumerate(cohort.rows):
            slide = QTableWidgetItem(row.slide_id)
            slide.setData(_ROW_ROLE, i)
            slide.setToolTip(str(row.path))
            pred = QTableWidgetItem(row.pred or "")
            prob = _NumberItem(row.prob, "" if row.prob is None else f"{row.prob:.3f}")
            if row.probs:
                prob.setToolTip(", ".join(f"{k}: {v:.3f}" for k, v in row.probs.items()))
            label = QTableWidgetItem(row.label or "")
            if row.correct is False:
                for it in (pred, label):
                    it.setForeground(QColor("#ff5252"))
            status = QTableWidgetItem(row.status)
            if row.feature_path is not None:
                status.setToolTip(str(row.feature_path))
            for c, it in enumerate((slide, pred, prob, label, status)):
                self.table.setItem(i, c, it)
        self.table.setSortingEnabled(True)
        self.apply_filter(self.filter.text())
        n_pred = sum(r.pred is not None for r in cohort.rows)
        n_feat = sum(r.has_features for r in cohort.rows)
        self.info.setText(f"{len(cohort)} slides: {n_feat} with features, {n_pred} with "
                          "predictions. Double-click a slide to open it; Up/Down step.")

    def row_of(self, table_row: int) -> CohortRow:
        item = self.table.item(table_row, 0)
        return self.cohort.rows[int(item.data(_ROW_ROLE))]

    def table_row_of(self, slide_id: str) -> int:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).text() == slide_id:
                return r
        return -1

    def visible_rows(self) -> list[int]:
        """Table rows shown by the filter, in display (sort) order."""
        return [r for r in range(self.table.rowCount()) if not self.table.isRowHidden(r)]

    def apply_filter(self, text: str = "") -> None:
        if self.cohort is None:
            return
        for r in range(self.table.rowCount()):
            self.table.setRowHidden(r, not self.row_of(r).matches(text))

    # ------------------------------------------------------------------ navigation
    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if obj is self.table and event.type() == QEvent.KeyPress:
            key = event.key()
            if key in (Qt.Key_Up, Qt.Key_Down):
                self.step(-1 if key == Qt.Key_Up else 1)
                return True
            if key in (Qt.Key_Return, Qt.Key_Enter) and self.table.currentRow() >= 0:
                self.open_table_row(self.table.currentRow())
                return True
        return super().eventFilter(obj, event)

    def step(self, delta: int) -> bool:
        """Open the next (+1) or previous (-1) shown slide after the current one."""
        rows = self.visible_rows()
        if not rows:
            show_info("No slide to step to: load a cohort (or loosen the filter).")
            return False
        cur = self.table_row_of(self.current.slide_id) if self.current is not None else -1
        if cur < 0:
            cur = self.table.currentRow()
        if cur in rows:
            pos = rows.index(cur) + delta
        else:  # nothing open yet (or filtered away): start at the first / last shown row
            later = [r for r in rows if r > cur] if delta > 0 else [r for r in rows if r < cur]
            pos = rows.index(later[0] if delta > 0 else later[-1]) if later else (
                0 if delta > 0 else len(rows) - 1)
        if not 0 <= pos < len(rows):
            show_info("That was the " + ("last" if delta > 0 else "first") + " slide.")
            return False
        return self.open_table_row(rows[pos])

    def open_table_row(self, table_row: int) -> bool:
        self.table.setCurrentCell(table_row, 0)
        return self.open_row(self.row_of(table_row))

    # ------------------------------------------------------------------ opening slides
    def open_row(self, row: CohortRow) -> bool:
        """Open ``row``'s slide in the viewer in place of the previous cohort slide."""
        from napari_higt.slide import Slide
        from napari_higt.ui.reader import read_slide

        mpp = None
        try:
            with Slide(row.path) as s:
                if s.mpp is None and row.feature_mpp is not None:
                    mpp = row.feature_mpp  # the scale its features were computed at
            layers = read_slide(str(row.path), mpp=mpp)
        except UserFacingError as exc:
            show_warning(str(exc))
            return False
        self.close_current()
        self._hide_other_slides()
        layer = None
        for data, kwargs, _ in layers:
            kwargs = dict(kwargs)
            kwargs["metadata"] = {**kwargs.get("metadata", {}), "higt_cohort": True}
            layer = self.viewer.add_image(data, **kwargs)
        self.current = row
        self.viewer.reset_view()
        self.viewer.layers.selection.active = layer
        note = ""
        if row.has_cached_scores and row.feature_path is not None:
            note = self._show_cached(layer, row.feature_path)
        pred = f"; predicted {row.pred} ({row.prob:.2f})" if row.pred and row.prob is not None \
            else (f"; predicted {row.pred}" if row.pred else "")
        lab = f"; label {row.label}" if row.label else ""
        self.info.setText(f"<b>{row.slide_id}</b>{pred}{lab}. {note}".strip())
        return True

    def _show_cached(self, layer, feature_path: Path) -> str:
        try:
            from napari_higt.ui.results import show_cached_results
        except ImportError:
            return ""
        try:
            show_cached_results(self.viewer, layer, feature_path)
        except UserFacingError as exc:
            show_warning(f"{feature_path.name}: cached results not shown: {exc}")
            return ""
        return "Cached model scores shown."

    def _hide_other_slides(self) -> None:
        """Hide the layers of slides opened outside the cohort: the slide being opened is
        then the only one on the canvas (they stay in the layer list)."""
        for layer in self.viewer.layers:
            if layer.metadata.get(SLIDE_KEY):
                layer.visible = False

    def close_current(self) -> None:
        """Remove the slide opened from the cohort and every layer drawn on it."""
        if self.current is None:
            return
        path = str(self.current.path)
        with self.viewer.layers.batched_update():  # one garbage collection for all
            for layer in [ly for ly in self.viewer.layers if ly.metadata.get(SLIDE_KEY) == path]:
                self.viewer.layers.remove(layer)
        self.current = None
        release_slide(path)

