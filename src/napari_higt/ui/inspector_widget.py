"""Dock widget: click a region of the slide and see why the model decided.

Clicking on the canvas selects the node under the cursor at the chosen level (x10 patch by
default) of the slide's last inference result; the widget lists its level, position, tissue
fraction and scores, the nodes it attends to most (RAConv+ layer-1 attention when the result
holds per-edge weights, else its neighbours ranked by importance), the BI contributions of
its region, and thumbnails of those nodes read from the slide. The selection and its top-k
are outlined on the canvas. ``[`` / ``]`` step to the previous / next most important patch.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_warning
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_higt.explain.inspect import node_at, node_summary, node_text, ranked_nodes
from napari_higt.explain.registry import default_score
from napari_higt.levels import LEVELS
from napari_higt.ui.layers import (
    find_slide_layer,
    slide_layer_kwargs,
    slide_of_layer,
    unit_scale,
)
from napari_higt.ui.results import RESULT_KEY
from napari_higt.ui.steps import mark_done, next_step_button

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["InspectorWidget"]

THUMB_PX = 96
#: Outlines on the canvas: the selected node, the nodes it listens to; width in screen px.
SELECTION_COLOUR = "#ffffff"
TOP_COLOUR = "#18ffff"
OUTLINE_PX = 2.5


class InspectorWidget(QWidget):
    """Click-to-inspect on the slide's last inference result."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.level = QComboBox()
        self.level.addItems(["x10", "x5"])
        self.topk = QSpinBox()
        self.topk.setRange(1, 16)
        self.topk.setValue(5)
        self.raw = QCheckBox("raw values")
        self.raw.setToolTip("Show the raw scores instead of their percentiles within the "
                            "slide and level")
        self.raw.toggled.connect(lambda *_: self.select(self.node) if self.node is not None
                                 else None)
        self.info = QLabel("Run inference, then click on the slide.")
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.RichText)
        self.thumbs = QGridLayout()
        form = QFormLayout()
        form.addRow("Level", self.level)
        form.addRow("Top-k", self.topk)
        form.addRow("", self.raw)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.info)
        thumbs = QWidget()
        thumbs.setLayout(self.thumbs)
        layout.addWidget(thumbs)
        self.next_button = next_step_button(self, "Inspector")
        layout.addWidget(self.next_button)
        layout.addStretch(1)
        self.node: int | None = None
        self._rank: np.ndarray | None = None
        self._tissue: dict[int, np.ndarray] = {}
        self.viewer.mouse_drag_callbacks.append(self._on_click)
        self.viewer.bind_key("]", self.next_important, overwrite=True)
        self.viewer.bind_key("[", self.previous_important, overwrite=True)
        self.destroyed.connect(lambda *_: self._disconnect(napari_viewer, self._on_click))

    @staticmethod
    def _disconnect(viewer, callback) -> None:
        if callback in viewer.mouse_drag_callbacks:
            viewer.mouse_drag_callbacks.remove(callback)

    # ---------------------------------------------------------------- selection
    def _context(self):
        layer = find_slide_layer(self.viewer)
        if layer is None:
            return None
        result = layer.metadata.get(RESULT_KEY)
        return (layer, slide_of_layer(layer), result) if result is not None else None

    def _on_click(self, viewer, event) -> None:
        if event.type != "mouse_press" or "Shift" in {m.name for m in event.modifiers}:
            return
        ctx = self._context()
        if ctx is None:
            return
        _, slide, _ = ctx
        uy, ux = unit_scale(slide)
        y, x = event.position[-2:]
        self.select_at(x / ux, y / uy)

    def select_at(self, x: float, y: float) -> int | None:
        """Select the node of the chosen level at level-0 point (x, y); returns it."""
        ctx = self._context()
        if ctx is None:
            show_warning("Nothing to inspect yet: run inference on the slide first.")
            return None
        node = node_at(ctx[2].graph, x, y, self.level.currentText())
        if node is not None:
            self.select(node)
        return node

    def select(self, node: int) -> None:
        """Show ``node`` of the current result and outline it and its top-k on the canvas."""
        ctx = self._context()
        if ctx is None:
            return
        _, slide, result = ctx
        self.node = int(node)
        s = node_summary(result, self.node, self.topk.value())
        tissue = self._tissue_fraction(slide, result)[self.node]
        lines = [html.escape(t) for t in node_text(result, self.node, self.topk.value(),
                                                    raw=self.raw.isChecked())]
        # Where the canvas speaks µm, so does the position.
        lines[0] = lines[0].split(" at x=")[0] + f" at {_position(slide, s['coords'])}"
        lines[0] = f"<b>{lines[0]}</b>; tissue {100 * tissue:.0f} %"
        self.info.setText("<br>".join(lines))
        self._show_thumbnails(slide, result, [self.node] + [j for j, _, _ in s["top"]])
        self._highlight(slide, result, self.node, [j for j, _, _ in s["top"]])
        mark_done(self.next_button)

    def _tissue_fraction(self, slide, result) -> np.ndarray:
        from napari_higt.ui.paint import TISSUE_KEY

        layer = find_slide_layer(self.viewer)
        shown = layer.metadata.get(TISSUE_KEY) if layer is not None else None
        if shown is not None and len(shown) == result.graph.num_nodes:
            return shown  # measured with the result's maps, off the GUI thread
        key = id(result)
        if key not in self._tissue:
            from napari_higt.graph.layout import node_tissue_fraction

            self._tissue = {key: node_tissue_fraction(slide, result.graph)}
        return self._tissue[key]

    def _show_thumbnails(self, slide, result, nodes: list[int]) -> None:
        while self.thumbs.count():
            item = self.thumbs.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        g = result.graph
        # The thumbnail node is the whole slide: no tile to show, and no gap in the grid.
        for i, j in enumerate(j for j in nodes if g.level[j] != 0):
            size = g.patch_size[LEVELS[g.level[j]]]
            level = slide.best_level_for_downsample(size / THUMB_PX)
            ds = slide.level_downsamples[level]
            n = max(1, int(size / ds))
            rgb = slide.read_region(tuple(int(c) for c in g.coords[j]), level, (n, n))
            from PIL import Image

            rgb = np.ascontiguousarray(Image.fromarray(rgb).resize((THUMB_PX, THUMB_PX)))
            img = QImage(rgb.data, THUMB_PX, THUMB_PX, 3 * THUMB_PX, QImage.Format_RGB888).copy()
            label = QLabel()
            label.setPixmap(QPixmap.fromImage(img))
            label.setToolTip(f"node {j}" + (" (selected)" if j == nodes[0] else ""))
            self.thumbs.addWidget(label, i // 3, i % 3)

    def _highlight(self, slide, result, node: int, top: list[int]) -> None:
        """Outline the selection and its top-k, in lines of constant screen width."""
        from napari_higt.ui.screen import keep_screen_width, refresh_screen_width

        g = result.graph
        # The selection last, so its outline is drawn over those of its children.
        nodes = [j for j in top if g.level[j] != 0] + [node]
        sizes = np.array([g.patch_size[LEVELS[g.level[j]]] for j in nodes], float)
        x0y0 = g.coords[nodes].astype(float)
        rects = [np.array([[y, x], [y + s, x + s]]) for (x, y), s in zip(x0y0, sizes)]
        colours = [TOP_COLOUR] * (len(nodes) - 1) + [SELECTION_COLOUR]
        name = f"{slide.slide_id} selection"
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is None:
            kwargs = slide_layer_kwargs(slide, 1.0, higt_role="selection")
            layer = self.viewer.add_shapes(rects, shape_type="rectangle", name=name,
                                           face_color="transparent", edge_color=colours,
                                           **kwargs)
            keep_screen_width(self.viewer, layer, OUTLINE_PX)
        else:  # in place: removing a layer costs a garbage collection
            layer.data = []
            layer.add_rectangles(rects, edge_color=colours, face_color="transparent")
            refresh_screen_width(self.viewer, layer)
        self.viewer.layers.selection.active = find_slide_layer(self.viewer)

    # ---------------------------------------------------------------- keyboard
    def _step(self, delta: int) -> None:
        ctx = self._context()
        if ctx is None:
            show_warning("Nothing to inspect yet: run inference on the slide first.")
            return
        result = ctx[2]
        imp = result.scores.get(default_score(result.scores))
        if imp is None:
            return
        order = ranked_nodes(result.graph, imp, self.level.currentText())
        if not len(order):
            return
        where = np.flatnonzero(order == self.node)
        i = (where[0] + delta) if len(where) else 0
        self.select(int(order[int(np.clip(i, 0, len(order) - 1))]))

    def next_important(self, viewer=None) -> None:
        """Select the next patch down the default map's ranking (key ``]``)."""
        self._step(+1)

    def previous_important(self, viewer=None) -> None:
        """Select the previous, more important patch (key ``[``)."""
        self._step(-1)


def _position(slide, xy) -> str:
    """A level-0 (x, y) as the canvas shows it: µm when the slide's scale is known."""
    if slide.mpp is None:
        return f"x={int(xy[0])}, y={int(xy[1])} px"
    return f"x={xy[0] * slide.mpp[0]:.0f}, y={xy[1] * slide.mpp[1]:.0f} µm"
