"""Dock widget: SLIC entities of one x10 patch drawn where the patch lies on the slide.

The patch is the x10 tile of the tiler's grid (`napari_higt.slide.tiling.tile_origin_at`)
under the centre of the view, or the selected x10 node of the slide's "graph nodes" layer
(Graph widget) when that layer is active and has one selected. In a background thread
`napari_higt.features.patch_entities.compute_patch_entities` reads the patch and builds its
entity graph; the widget adds

* ``<slide> entities``: a Labels layer of the superpixels (boundaries only, ``contour``),
* ``<slide> entity edges``: the region-adjacency edges as a Vectors layer,

both placed on the patch in µm. With an H-MGDM encoder file chosen it also adds
``<slide> entity error`` (each entity painted with its reconstruction error,
`napari_higt.models.hmgdm.reconstruction_error`) and ``<slide> entity mask`` (one sampled
dynamic mask: green visible / amber masked).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_warning
from qtpy.QtWidgets import (
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

from napari_higt.explain.registry import SEQUENTIAL_CMAP
from napari_higt.features.patch_entities import PatchEntities, compute_patch_entities
from napari_higt.slide.tiling import tile_origin_at
from napari_higt.ui.worker import WorkerWidget
from napari_higt.ui.layers import SLIDE_KEY, camera, slide_layer_kwargs, unit_scale
from napari_higt.ui.screen import keep_screen_width

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["EntityWidget"]

MASK_COLOURS = {None: "transparent", 0: "transparent", 1: "#00c853", 2: "#ffab00"}
#: Entity outlines (all one colour), their adjacency edges (width in screen px).
OUTLINE_COLOURS = {None: "#ffffff", 0: "transparent"}
EDGE_COLOUR = "#18ffff"
EDGE_PX = 1.5
#: The reconstruction error is painted like a score (opacity rising with the error).
ERROR_CMAP = SEQUENTIAL_CMAP


class EntityWidget(WorkerWidget):
    """SLIC entities (and, with an encoder, their reconstruction error) of one x10 patch."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, "Show entities")
        self.n_segments = QSpinBox()
        self.n_segments.setRange(2, 2000)
        self.n_segments.setValue(150)
        self.n_segments.setToolTip("SLIC: approximate number of superpixels in the patch")
        self.compactness = QDoubleSpinBox()
        self.compactness.setRange(0.01, 1000.0)
        self.compactness.setDecimals(2)
        self.compactness.setValue(10.0)
        self.compactness.setToolTip("SLIC: higher = more regular, square superpixels")
        self.encoder = QLineEdit()
        self.encoder.setPlaceholderText("optional: H-MGDM encoder .pt")
        browse = QPushButton("…")
        browse.setMaximumWidth(32)
        browse.clicked.connect(self._browse)
        self.where = QLabel("Patch: the x10 patch under the centre of the view, or the "
                            "selected x10 node of the 'graph nodes' layer.")
        self.where.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Segments", self.n_segments)
        form.addRow("Compactness", self.compactness)
        row = QHBoxLayout()
        row.addWidget(self.encoder)
        row.addWidget(browse)
        form.addRow("Encoder", row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.where)
        layout.addLayout(form)
        layout.addWidget(self._controls())
        layout.addStretch(1)
        self.result: PatchEntities | None = None
        self.layers: dict[str, object] = {}
        self.run_button.clicked.connect(self.run)

    def _browse(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "H-MGDM encoder", "",
                                           "PyTorch (*.pt *.pth);;All (*)")
        if f:
            self.encoder.setText(f)

    def target_origin(self, slide) -> tuple[tuple[int, int], str]:
        """Level-0 origin of the patch to show and where it came from."""
        active = self.viewer.layers.selection.active
        if (active is not None and active.metadata.get(SLIDE_KEY) == str(slide.path)
                and active.metadata.get("higt_role") == "graph-nodes"):
            level = active.features["level"].to_numpy()
            picked = [i for i in sorted(active.selected_data) if level[i] == "x10"]
            if picked:
                row, col = np.asarray(active.data[picked[0]], float)  # level-0 px centre
                return tile_origin_at(slide, (col, row)), "the selected x10 node"
        uy, ux = unit_scale(slide)
        cy, cx = camera(self.viewer).center[-2:]
        return tile_origin_at(slide, (cx / ux, cy / uy)), "the centre of the view"

    def run(self) -> bool:
        if self._busy("Computing entities"):
            return False
        sel = self._selected_slide()
        if sel is None:
            return False
        _, slide = sel
        origin, source = self.target_origin(slide)
        enc = self.encoder.text().strip() or None
        if enc is not None and not Path(enc).expanduser().is_file():
            show_warning(f"Encoder file not found: {enc}")
            return False
        path, mpp = slide.path, slide.mpp
        n_seg, comp = self.n_segments.value(), self.compactness.value()
        self.where.setText(f"Patch at ({origin[0]}, {origin[1]}) px, {source}.")

        def work(progress, cancelled):
            progress(0, 1)
            out = compute_patch_entities(path, mpp, origin, n_seg, comp, enc, cancelled)
            progress(1, 1)
            return out

        return self._start(work, lambda r: self._show(slide, r), "Computing entities")

    def _show(self, slide, res: PatchEntities) -> None:
        from napari.utils.colormaps import DirectLabelColormap

        from napari_higt.ui.heatmaps import napari_colormap

        self.result = res
        ds0 = res.size0 / res.rgb.shape[0]
        uy, ux = unit_scale(slide)
        x0, y0 = res.origin

        def kwargs(role: str, name: str) -> dict:
            kw = slide_layer_kwargs(slide, ds0, higt_role=role, higt_patch_origin=[x0, y0])
            ty, tx = kw["translate"]
            kw["translate"] = (ty + y0 * uy, tx + x0 * ux)
            kw["name"] = f"{slide.slide_id} {name}"
            return kw

        labels = np.asarray(res.graph.label_image, np.int32) + 1  # 0 = background
        new: dict[str, tuple] = {}
        # One colour for every outline: random label colours include the stains' pinks.
        new["entities"] = (labels, {**kwargs("entities", "entities"), "opacity": 0.85,
                                    "colormap": DirectLabelColormap(
                                        color_dict=OUTLINE_COLOURS)}, "labels")
        ei = res.graph.edge_index.numpy()
        keep = ei[0] < ei[1]
        cen = res.graph.centroid.numpy()[:, ::-1]  # (row, col) patch px
        start = cen[ei[0, keep]]
        vec = np.stack([start, cen[ei[1, keep]] - start], axis=1)
        new["entity edges"] = (vec, {**kwargs("entity-edges", "entity edges"),
                                     "edge_color": EDGE_COLOUR, "edge_width": 1.0,
                                     "vector_style": "line", "opacity": 0.9}, "vectors")
        if res.error is not None:
            err = np.append(res.error, np.nan).astype(np.float32)
            img = err[np.where(labels > 0, labels - 1, len(res.error))]
            finite = res.error[np.isfinite(res.error)]
            lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
            hi = hi if hi > lo else lo + 1e-6
            new["entity error"] = (img, {**kwargs("entity-error", "entity error"),
                                         "colormap": napari_colormap(ERROR_CMAP, False),
                                         "opacity": 1.0,
                                         "contrast_limits": (float(lo), float(hi)),
                                         "interpolation2d": "nearest",
                                         "blending": "translucent"}, "image")
            state = np.concatenate([[0], np.where(res.mask, 2, 1)]).astype(np.int32)
            mask_img = state[labels]
            new["entity mask"] = (mask_img, {**kwargs("entity-mask", "entity mask"),
                                             "opacity": 0.45, "visible": False,
                                             "colormap": DirectLabelColormap(
                                                 color_dict=MASK_COLOURS)}, "labels")
        # Replace this slide's previous entity layers (also those of an error run).
        with self.viewer.layers.batched_update():  # one garbage collection for all
            for key in ("entity mask", "entity error", "entity edges", "entities"):
                name = f"{slide.slide_id} {key}"
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
        self.layers = {}
        for key in ("entity error", "entity mask", "entities", "entity edges"):
            if key not in new:
                continue
            data, kw, kind = new[key]
            layer = getattr(self.viewer, f"add_{kind}")(data, **kw)
            if key == "entities":
                layer.contour = 1
            if kind == "vectors":
                keep_screen_width(self.viewer, layer, EDGE_PX)
            self.layers[key] = layer
        if "entity error" in self.layers and hasattr(self.layers["entity error"], "colorbar"):
            self.layers["entity error"].colorbar.visible = True
        n = res.graph.num_nodes
        text = f"{n} entities, {int(keep.sum())} edges at ({x0}, {y0}) px."
        if res.error is not None:
            text += (f" Reconstruction error {np.nanmin(res.error):.3g}–"
                     f"{np.nanmax(res.error):.3g}; sampled mask: {int(res.mask.sum())} masked, "
                     f"{int((~res.mask).sum())} visible (layer 'entity mask', hidden).")
        if res.note:
            text += f" Note: {res.note}."
        self.status.setText(text)
