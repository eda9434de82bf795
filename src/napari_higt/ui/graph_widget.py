"""Dock widget: build the selected slide's hierarchical graph and draw it over the slide.

"Build graph" runs the Qt-free preprocessing (`napari_higt.features.pipeline.run_slide`,
which returns at once when the feature file is up to date) in a background thread with a
progress bar and a Cancel button, builds the `HierarchicalGraph` (`features.slide_graph.build_slide_graph`) and
shows it with `napari_higt.ui.overlays.add_graph_overlay`: one Points layer per level (squares
the size of the tile, tissue fraction in ``layer.features``) and one Vectors layer per edge
type, all in µm.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_info
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
    QVBoxLayout,
)

from napari_higt.features.base import MODEL_FILE_OPTION
from napari_higt.features.slide_graph import GraphBuild, build_slide_graph
from napari_higt.ui.layers import features_folder, find_slide_layer, slide_of_layer
from napari_higt.ui.worker import WorkerWidget

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["GraphWidget"]


class GraphWidget(WorkerWidget):
    """Build and show the hierarchical graph of the selected slide."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, "Build graph")
        from napari_higt.features import available_extractors

        self.slide_label = QLabel("No slide open.")
        self.slide_label.setWordWrap(True)
        self.features_dir = QLineEdit()
        self.features_dir.setPlaceholderText("<slide folder>/features")
        self.features_dir.setToolTip("Folder of the feature files (<slide_id>.h5); empty = "
                                     "a 'features' folder next to the slide")
        browse = QPushButton("…")
        browse.setMaximumWidth(32)
        browse.clicked.connect(self._browse_features)
        self.extractor = QComboBox()
        self.extractor.addItems(available_extractors())
        if self.extractor.findText("handcrafted") >= 0:
            self.extractor.setCurrentText("handcrafted")
        self.model_file = QLineEdit()
        self.model_file.setPlaceholderText("weights (cnn) / encoder (hmgdm)")
        model_browse = QPushButton("…")
        model_browse.setMaximumWidth(32)
        model_browse.clicked.connect(self._browse_model)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 0.99)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.25)
        self.threshold.setToolTip("A tile is kept when its tissue fraction is above this")
        self.overwrite = QCheckBox("Recompute features even when up to date")

        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.features_dir)
        row.addWidget(browse)
        form.addRow("Features", row)
        form.addRow("Extractor", self.extractor)
        row = QHBoxLayout()
        row.addWidget(self.model_file)
        row.addWidget(model_browse)
        form.addRow("Model file", row)
        form.addRow("Tissue threshold", self.threshold)
        layout = QVBoxLayout(self)
        layout.addWidget(self.slide_label)
        layout.addLayout(form)
        layout.addWidget(self.overwrite)
        layout.addWidget(self._controls())
        layout.addStretch(1)
        self.graph = None  # the last graph shown
        self.layers: list = []
        self.run_button.clicked.connect(self.run)
        self.extractor.currentTextChanged.connect(self._extractor_changed)
        self._extractor_changed(self.extractor.currentText())
        self.viewer.layers.selection.events.active.connect(self.refresh)
        self.viewer.layers.events.inserted.connect(self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        layer = find_slide_layer(self.viewer)
        slide = slide_of_layer(layer)
        if slide is None:
            self.slide_label.setText("No slide open.")
            return
        scale = f"{slide.mpp[0]:.4g} µm/px" if slide.mpp else "scale unknown"
        self.slide_label.setText(f"<b>{slide.slide_id}</b> ({scale})")

    def _extractor_changed(self, name: str) -> None:
        self.model_file.setEnabled(name in MODEL_FILE_OPTION)

    def _browse_features(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder of feature files")
        if d:
            self.features_dir.setText(d)

    def _browse_model(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Model file", "", "PyTorch (*.pt *.pth);;All (*)")
        if f:
            self.model_file.setText(f)

    def features_folder(self, slide) -> Path:
        """The chosen folder, else ``<slide folder>/features``."""
        return features_folder(self.features_dir.text(), slide)

    def run(self) -> bool:
        """Preprocess (if needed) and show the graph of the selected slide."""
        if self._busy("Building a graph"):
            return False
        sel = self._selected_slide()
        if sel is None:
            return False
        _, slide = sel
        name = self.extractor.currentText()
        config: dict = {}
        opt = MODEL_FILE_OPTION.get(name)
        if opt and self.model_file.text().strip():
            config[opt] = self.model_file.text().strip()
        path, mpp = slide.path, slide.mpp
        out_dir = self.features_folder(slide)
        threshold = float(self.threshold.value())
        overwrite = self.overwrite.isChecked()

        def work(progress, cancelled):
            return build_slide_graph(path, out_dir, name, mpp=mpp, extractor_config=config,
                                     tissue_threshold=threshold, overwrite=overwrite,
                                     progress=progress, cancel=cancelled)

        return self._start(work, lambda b: self._show(slide, b), "Building the graph")

    def _show(self, slide, build: GraphBuild) -> None:
        from napari_higt.ui.layers import SLIDE_KEY
        from napari_higt.ui.overlays import add_graph_overlay

        if not any(ly.metadata.get(SLIDE_KEY) == str(slide.path)
                   and ly.metadata.get("higt_role") == "slide" for ly in self.viewer.layers):
            show_info(f"{slide.slide_id} was closed while its graph was built; the features "
                      f"are in {build.result.path}.")
            return
        self.graph = build.graph
        self.layers = add_graph_overlay(self.viewer, build.graph, slide, build.tissue_fraction)
        c = build.graph.counts()
        how = ("features up to date" if build.result.status == "skipped"
               else f"features computed in {build.result.seconds:.1f} s")
        self.status.setText(f"{c['x5']} regions (x5), {c['x10']} patches (x10); {how} "
                            f"({build.result.path.name}).")
