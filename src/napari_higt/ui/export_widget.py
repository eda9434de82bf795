"""Dock widget: export the selected slide's result as a figure, QuPath GeoJSON and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from napari_higt.explain.registry import SCORES, default_score, score_keys
from napari_higt.export.bundle import export_result
from napari_higt.ui.follow import follow_slide
from napari_higt.ui.layers import camera, find_slide_layer, slide_of_layer, unit_scale
from napari_higt.ui.results import RESULT_KEY
from napari_higt.ui.worker import WorkerWidget

if TYPE_CHECKING:  # pragma: no cover
    import napari

#: How the status line names an output kind (default: its key in capitals).
_KIND_NAMES = {"geojson": "GeoJSON", "report": "report.md"}

__all__ = ["ExportWidget", "view_region"]


def view_region(viewer, slide) -> tuple[int, int, int, int]:
    """The part of the slide in view, as (x0, y0, x1, y1) level-0 px."""
    h, w = viewer.canvas.size  # (height, width) in screen px, kept current by the Qt canvas
    cam = camera(viewer)
    cy, cx = cam.center[-2:]
    half_w, half_h = w / cam.zoom / 2, h / cam.zoom / 2
    uy, ux = unit_scale(slide)
    return (int((cx - half_w) / ux), int((cy - half_h) / uy),
            int((cx + half_w) / ux), int((cy + half_h) / uy))


class ExportWidget(WorkerWidget):
    """Figure (PNG/SVG/PDF) of the whole slide or the current view, GeoJSON and CSV.

    Everything is written by `napari_higt.export.bundle.export_result` in a worker; the
    widget only gathers its arguments (score, level, formats, opacity, DPI, region, node
    markers, QuPath object type) and reports what was written in ``written``.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, "Export")
        self.out_dir = QLineEdit()
        self.out_dir.setPlaceholderText("<slide folder>/export")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.out_dir)
        row.addWidget(browse)
        self.score = QComboBox()
        for key in score_keys("export"):
            self.score.addItem(SCORES[key].display_name, key)
            self.score.setItemData(self.score.count() - 1, SCORES[key].meaning, Qt.ToolTipRole)
        self.score.setCurrentIndex(max(0, self.score.findData(default_score())))
        self.level = QComboBox()
        self.level.addItems(["x10", "x5"])
        self.formats = {f: QCheckBox(f.upper()) for f in ("png", "svg", "pdf")}
        self.formats["png"].setChecked(True)
        self.formats["svg"].setChecked(True)
        fmt_row = QHBoxLayout()
        for box in self.formats.values():
            fmt_row.addWidget(box)
        self.opacity = QDoubleSpinBox()
        self.opacity.setRange(0.0, 1.0)
        self.opacity.setSingleStep(0.05)
        self.opacity.setValue(1.0)
        self.opacity.setToolTip("Scales the score colours' opacity, which rises with the "
                                "score; 1 = as on the canvas")
        self.dpi = QSpinBox()
        self.dpi.setRange(50, 1200)
        self.dpi.setValue(150)
        self.object_type = QComboBox()
        self.object_type.addItems(["tile", "detection"])
        # The same choice as `napari-higt export --object-type`: which QuPath tools pick
        # the nodes up (e.g. object classifiers work on detections) is the user's call.
        self.object_type.setToolTip("QuPath object type of the GeoJSON features")
        self.current_view = QCheckBox("Current view only")
        self.markers = QCheckBox("Mark nodes")
        self.raw = QCheckBox("Raw values (not percentiles)")
        self.raw.setToolTip("Write the raw scores instead of their percentiles within the "
                            "slide and level; the column names say which")
        form = QFormLayout()
        form.addRow("Folder", row)
        form.addRow("Score", self.score)
        form.addRow("Level", self.level)
        form.addRow("Figure", fmt_row)
        form.addRow("Opacity", self.opacity)
        form.addRow("DPI", self.dpi)
        form.addRow("QuPath object", self.object_type)
        form.addRow(self.current_view)
        form.addRow(self.markers)
        form.addRow(self.raw)
        self.slide_label = QLabel()
        self.slide_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.slide_label)
        layout.addLayout(form)
        layout.addWidget(self._controls())
        layout.addStretch(1)
        self.run_button.clicked.connect(self.run)
        self.written: dict[str, Path] = {}
        follow_slide(self.viewer, self, self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Say which slide (and whether a result of it) an export would write."""
        layer = find_slide_layer(self.viewer)
        slide = slide_of_layer(layer)
        if slide is None:
            self.slide_label.setText("No slide open.")
        elif layer.metadata.get(RESULT_KEY) is None:
            self.slide_label.setText(f"<b>{slide.slide_id}</b>: no result to export yet "
                                     "(3 Inference).")
        else:
            self.slide_label.setText(f"Exports <b>{slide.slide_id}</b>'s result.")

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export folder")
        if d:
            self.out_dir.setText(d)

    def run(self) -> bool:
        """Export the selected slide's last result (False, with a notification, if none)."""
        layer = find_slide_layer(self.viewer)
        if layer is None:
            show_warning("No slide selected: open a slide and select its layer.")
            return False
        result = layer.metadata.get(RESULT_KEY)
        if result is None:
            show_warning("Nothing to export yet: run inference on this slide first "
                         "(Inference widget), or open it from the cohort browser.")
            return False
        slide = slide_of_layer(layer)
        text = self.out_dir.text().strip()
        out = Path(text).expanduser() if text else slide.path.parent / "export"
        formats = [f for f, box in self.formats.items() if box.isChecked()]
        region = view_region(self.viewer, slide) if self.current_view.isChecked() else None
        kwargs = {"score": self.score.currentData(), "level": self.level.currentText(),
                  "formats": formats, "opacity": self.opacity.value(), "dpi": self.dpi.value(),
                  "region": region, "markers": self.markers.isChecked(),
                  "object_type": self.object_type.currentText(), "raw": self.raw.isChecked()}

        def work(progress, cancelled):
            return export_result(slide, result, out, **kwargs)

        return self._start(work, self._done, "Export")

    def _done(self, written: dict[str, Path]) -> None:
        self.written = written
        folder = next(iter(written.values())).parent
        kinds = ", ".join(_KIND_NAMES.get(k, k.upper()) for k in written)
        # The dock is narrow and a wrapped label gets clipped: the status names the kinds and
        # the folder; its tooltip and the notification give the full paths.
        self.status.setText(f"Wrote {kinds} to {folder.name}/")
        self.status.setToolTip("\n".join(str(p) for p in written.values()))
        show_info(f"Exported {len(written)} file(s) to {folder}")
