"""The settings form of the Training widget: data, model and ablations, optimisation.

``add_training_fields(widget)`` creates the input widgets as attributes of ``widget``
(``features_dir``, ``labels_csv``, ``out_dir``, ``model``, ``conv``, ``attention``,
``interaction``, ``fusion``, ``blocks``, ``hidden``, ``epochs``, ``lr``, ``batch_size``,
``folds``, ``device``) and returns the form laid out.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLineEdit,
    QPushButton,
    QSpinBox,
)

from napari_higt.devices import available_devices
from napari_higt.ui.forms import path_row

__all__ = ["add_training_fields", "model_config"]


def _combo(items: list[str], tip: str | None = None) -> QComboBox:
    box = QComboBox()
    box.addItems(items)
    if tip:
        box.setToolTip(tip)
    return box


def _spin(lo: int, hi: int, value: int, tip: str | None = None) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    if tip:
        box.setToolTip(tip)
    return box


def _path_field(w, placeholder: str, title: str, folder: bool) -> tuple[QLineEdit, QPushButton]:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    button = QPushButton("…")

    def browse() -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(w, title)
        else:
            path, _ = QFileDialog.getOpenFileName(w, title, "", "CSV (*.csv);;All (*)")
        if path:
            edit.setText(path)

    button.clicked.connect(browse)
    return edit, button


def _add_model_fields(w) -> None:
    w.model = _combo(["higt", "abmil", "mean"])
    w.conv = _combo(["raconv+", "raconv"], "graph convolution; raconv = ablation")
    w.attention = _combo(["separable", "full"], "HIViT attention; full = ablation 'w/o SSA'")
    w.interaction = _combo(["bi", "r2p"], "HIViT interaction; r2p = ablation 'w/o BI'")
    w.fusion = QCheckBox("Fusion")
    w.fusion.setChecked(True)
    w.fusion.setToolTip("unchecked = ablation 'w/o Fusion'")
    w.blocks = _spin(1, 12, 3, "HIViT blocks (depth; default 3)")
    w.higt_box = QGroupBox("HIGT")
    hf = QFormLayout(w.higt_box)
    hf.addRow("Blocks", w.blocks)
    hf.addRow("Convolution", w.conv)
    hf.addRow("Attention", w.attention)
    hf.addRow("Interaction", w.interaction)
    hf.addRow(w.fusion)
    w.model.currentTextChanged.connect(lambda m: w.higt_box.setEnabled(m == "higt"))
    w.hidden = _spin(4, 4096, 256)


def _add_optimisation_fields(w) -> None:
    w.epochs = _spin(1, 10000, 50)
    w.lr = QDoubleSpinBox()
    w.lr.setDecimals(6)
    w.lr.setRange(1e-6, 1.0)
    w.lr.setSingleStep(1e-4)
    w.lr.setValue(5e-4)
    w.batch_size = _spin(1, 1024, 8, "slides per optimisation step")
    w.folds = _spin(2, 50, 5, "stratified folds (a 'fold' column in the CSV wins)")
    w.device = _combo(["auto", *available_devices()],
                      "auto = the first of: " + ", ".join(available_devices()))


def add_training_fields(w) -> QFormLayout:
    """Create the settings widgets on ``w`` and return them laid out in a form."""
    w.features_dir, b_feat = _path_field(w, "folder of <slide_id>.h5 feature files",
                                         "Folder of feature files", folder=True)
    w.labels_csv, b_csv = _path_field(w, "CSV: slide_id,label[,fold]", "Labels CSV",
                                      folder=False)
    w.out_dir, b_out = _path_field(w, "<features folder>/../runs/<model>-<time>",
                                   "Output folder of the run", folder=True)
    _add_model_fields(w)
    _add_optimisation_fields(w)
    form = QFormLayout()
    form.addRow("Features", path_row(w.features_dir, b_feat))
    form.addRow("Labels CSV", path_row(w.labels_csv, b_csv))
    form.addRow("Output run", path_row(w.out_dir, b_out))
    form.addRow("Model", w.model)
    form.addRow(w.higt_box)
    form.addRow("Hidden size", w.hidden)
    for label, field in (("Epochs", w.epochs), ("Learning rate", w.lr),
                         ("Batch size", w.batch_size), ("Folds", w.folds),
                         ("Device", w.device)):
        form.addRow(label, field)
    return form


def model_config(w) -> dict[str, Any]:
    """The ``build_model`` keys the form of ``w`` describes."""
    m: dict[str, Any] = {"model": w.model.currentText(), "hidden": w.hidden.value()}
    if m["model"] == "higt":
        m.update(n_blocks=w.blocks.value(), conv=w.conv.currentText(),
                 attention=w.attention.currentText(),
                 interaction=w.interaction.currentText(), fusion=w.fusion.isChecked())
    return m
