"""Dock widget: build the selected slide's hierarchical graph and draw it over the slide.

"Build graph" runs the Qt-free preprocessing (`napari_higt.features.pipeline.run_slide`,
which returns at once when the feature file is up to date) in a background thread with a
progress bar and a Cancel button, builds the `HierarchicalGraph`
(`features.slide_graph.build_slide_graph`) and, still in that thread, the overlay's arrays
(`napari_higt.ui.overlays.graph_layer_data`) and the tissue no tile covers; the GUI thread
only adds the layers. A legend names every mark, and check boxes show or hide the patch
grid, each level's nodes and each edge type.
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
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
)

from napari_higt.features.base import MODEL_FILE_OPTION
from napari_higt.features.slide_graph import GraphBuild, build_slide_graph
from napari_higt.ui.follow import follow_slide
from napari_higt.ui.forms import scroll_layout
from napari_higt.ui.layers import features_folder, find_slide_layer, slide_of_layer
from napari_higt.ui.overlays import GRAPH_PARTS, legend_html, part_visible, set_graph_part
from napari_higt.ui.steps import mark_done, next_step_button
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
        self.parts = {part: QCheckBox(label) for part, label in GRAPH_PARTS.items()}
        shown = QGridLayout()
        for i, (part, box) in enumerate(self.parts.items()):
            box.setChecked(True)
            box.toggled.connect(lambda on, part=part: self._toggle(part, on))
            shown.addWidget(box, i // 2, i % 2)
        self.legend = QLabel(legend_html())
        self.legend.setWordWrap(True)
        self.next_button = next_step_button(self, "Graph overlay")
        layout = scroll_layout(self)
        layout.addWidget(self.slide_label)
        layout.addLayout(form)
        layout.addWidget(self.overwrite)
        layout.addWidget(self._controls())
        layout.addWidget(QLabel("<b>Show</b> (dimmed while a score map is shown)"))
        layout.addLayout(shown)
        layout.addWidget(self.legend)
        layout.addWidget(self.next_button)
        layout.addStretch(1)
        self.graph = None  # the last graph shown
        self.layers: list = []
        self.run_button.clicked.connect(self.run)
        self.extractor.currentTextChanged.connect(self._extractor_changed)
        self._extractor_changed(self.extractor.currentText())
        follow_slide(self.viewer, self, self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        """Name the selected slide and its scale; the toggles show its graph's state."""
        layer = find_slide_layer(self.viewer)
        slide = slide_of_layer(layer)
        if slide is None:
            self.slide_label.setText("No slide open.")
            return
        scale = f"{slide.mpp[0]:.4g} µm/px" if slide.mpp else "scale unknown"
        if slide.mpp and not slide.mpp_from_file:
            scale += ", assumed"
        self.slide_label.setText(f"<b>{slide.slide_id}</b> ({scale})")
        have = part_visible(self.viewer, str(slide.path))
        for part, box in self.parts.items():
            if part in have:
                box.blockSignals(True)
                box.setChecked(have[part])
                box.blockSignals(False)
        mark_done(self.next_button, bool(have))

    def _toggle(self, part: str, visible: bool) -> None:
        slide = slide_of_layer(find_slide_layer(self.viewer))
        if slide is not None:
            set_graph_part(self.viewer, str(slide.path), part, visible)

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
            from napari_higt.ui.overlays import graph_layer_data
            from napari_higt.ui.paint import edge_strip, slide_mask

            build = build_slide_graph(path, out_dir, name, mpp=mpp, extractor_config=config,
                                      tissue_threshold=threshold, overwrite=overwrite,
                                      progress=progress, cancel=cancelled)
            # The overlay's arrays here, in the worker: the GUI thread only adds layers.
            data = graph_layer_data(build.graph, slide, build.tissue_fraction)
            size0 = float(build.graph.patch_size["x10"])
            slide_mask(path, size0, build.mask)  # the inference widget reuses it
            return build, data, edge_strip(path, size0, slide.dimensions)

        return self._start(work, lambda out: self._show(slide, *out), "Building the graph")

    def _show(self, slide, build: GraphBuild, data: list, strip) -> None:
        """Add the overlay one layer per event-loop turn (a generator: `WorkerWidget`)."""
        from napari_higt.ui.heatmaps import add_unscored_strip
        from napari_higt.ui.layers import SLIDE_KEY
        from napari_higt.ui.overlays import iter_graph_overlay

        if not any(ly.metadata.get(SLIDE_KEY) == str(slide.path)
                   and ly.metadata.get("higt_role") == "slide" for ly in self.viewer.layers):
            show_info(f"{slide.slide_id} was closed while its graph was built; the features "
                      f"are in {build.result.path}.")
            return
        self.graph = build.graph
        self.layers = []
        shown = {part: box.isChecked() for part, box in self.parts.items()}
        for layer in iter_graph_overlay(self.viewer, data, slide, shown=shown):
            self.layers.append(layer)
            yield
        if add_unscored_strip(self.viewer, strip, slide) is not None:
            yield  # a layer too: its own turn
        c = build.graph.counts()
        how = ("features up to date" if build.result.status == "skipped"
               else f"features computed in {build.result.seconds:.1f} s")
        self.status.setText(f"{c['x5']} regions (x5), {c['x10']} patches (x10); {how} "
                            f"({build.result.path.name}).")
        mark_done(self.next_button)
