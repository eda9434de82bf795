"""Dock widget: run a trained checkpoint on the selected slide and paint what it saw."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_higt.devices import available_devices
from napari_higt.ui.worker import WorkerWidget
from napari_higt.ui.results import show_result

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from napari_higt.inference import InferenceResult

__all__ = ["InferenceWidget"]


def _path_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit)
    row.addWidget(button)
    return box


class InferenceWidget(WorkerWidget):
    """Checkpoint, device, features folder; Run computes what is missing and paints scores.

    The prediction (class and probabilities) is shown in the widget; node importance and the
    two BI contribution maps become Image layers with colour bars; results are cached in the
    slide's feature file, so reopening the slide shows them again without rerunning.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, checkpoint: str | None = None):
        super().__init__(napari_viewer, "Run inference")
        self.checkpoint = QLineEdit(checkpoint or "")
        self.checkpoint.setPlaceholderText("a .pt checkpoint from napari-higt train")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse_checkpoint)
        self.device = QComboBox()
        self.device.addItems(["auto", *available_devices()])
        self.device.setToolTip("auto = the first of: " + ", ".join(available_devices()))
        self.features_dir = QLineEdit()
        self.features_dir.setPlaceholderText("<slide folder>/features")
        self.prediction = QLabel("No prediction yet.")
        self.prediction.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Checkpoint", _path_row(self.checkpoint, browse))
        form.addRow("Device", self.device)
        form.addRow("Features", self.features_dir)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self._controls())
        layout.addWidget(self.prediction)
        layout.addStretch(1)
        self.run_button.clicked.connect(self.run)
        self.result: InferenceResult | None = None

    def _browse_checkpoint(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Checkpoint", "", "PyTorch (*.pt *.pth);;All (*)")
        if f:
            self.checkpoint.setText(f)

    def features_folder(self, slide) -> Path:
        text = self.features_dir.text().strip()
        return Path(text).expanduser() if text else slide.path.parent / "features"

    def run(self) -> bool:
        """Start inference on the selected slide (False, with a notification, if it can't)."""
        from napari_higt.inference import run_inference

        if self.running:
            show_warning("Inference is already running; wait for it or press Cancel.")
            return False
        ckpt = self.checkpoint.text().strip()
        if not ckpt or not Path(ckpt).is_file():
            show_warning("Choose a checkpoint file first (the … button); "
                         f"{'not found: ' + ckpt if ckpt else 'none is set'}.")
            return False
        sel = self._selected_slide()
        if sel is None:
            return False
        layer, slide = sel
        path, mpp = slide.path, (slide.mpp[0] if slide.mpp else None)
        out_dir = self.features_folder(slide)
        device = self.device.currentText()
        stages = {"features": 0, "model": 1}

        def work(progress, cancelled):
            # Two stages on one bar: features fill the first half, the model the second.
            def report(stage, done, total):
                progress(stages[stage] * 1000 + int(1000 * done / max(total, 1)), 2000)

            return run_inference(path, ckpt, out_dir, mpp=mpp, device=device,
                                 progress=report, cancel=cancelled)

        return self._start(work, lambda r: self._show(layer, r), "Inference")

    def _show(self, layer, result: InferenceResult) -> None:
        self.result = result
        probs = ", ".join(f"{c}: {p:.2f}" for c, p in
                          sorted(result.probs.items(), key=lambda kv: -kv[1]))
        self.prediction.setText(
            f"<b>{result.pred}</b> ({probs})<br>{result.graph.num_nodes} nodes on "
            f"{result.device}; features {result.timings.get('features', 0):.1f} s, model "
            f"{result.timings.get('model', 0):.1f} s")
        self.status.setText("Done.")
        for note in result.notes:
            show_warning(note)
        show_result(self.viewer, layer, result)
        show_info(f"{result.slide_id}: {result.pred} (p = {result.probs[result.pred]:.2f})")
