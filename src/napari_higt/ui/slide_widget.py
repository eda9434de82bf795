"""Dock widget: facts about the selected slide, stating its scale, the tissue mask."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_higt.errors import UserFacingError
from napari_higt.ui.commands import add_tissue_mask
from napari_higt.ui.follow import follow_slide
from napari_higt.ui.layers import apply_slide_scale, find_slide_layer, slide_of_layer
from napari_higt.ui.steps import mark_done, next_step_button

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["SlideWidget"]


class SlideWidget(QWidget):
    """Shows the selected slide's levels and scale; lets the user state a missing scale."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.info = QLabel("No slide open.")
        self.info.setWordWrap(True)
        self.mpp = QDoubleSpinBox()
        self.mpp.setRange(0.01, 100.0)
        self.mpp.setDecimals(4)
        self.mpp.setSingleStep(0.05)
        self.mpp.setSuffix(" µm/px")
        self.mpp.setValue(0.25)
        self.set_scale_button = QPushButton("Set scale")
        self.set_scale_button.setToolTip("State the level-0 pixel size of the selected slide")
        self.tissue_button = QPushButton("Tissue mask")
        row = QHBoxLayout()
        row.addWidget(self.mpp)
        row.addWidget(self.set_scale_button)
        form = QFormLayout()
        form.addRow("Pixel size", row)
        self.next_button = next_step_button(self, "Slide")
        layout = QVBoxLayout(self)
        layout.addWidget(self.info)
        layout.addLayout(form)
        layout.addWidget(self.tissue_button)
        layout.addWidget(self.next_button)
        layout.addStretch(1)
        self.set_scale_button.clicked.connect(self.set_scale)
        self.tissue_button.clicked.connect(lambda: add_tissue_mask(self.viewer))
        follow_slide(self.viewer, self, self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        layer = find_slide_layer(self.viewer)
        slide = slide_of_layer(layer)
        if slide is None:
            self.info.setText("No slide open. File > Open a slide, or File > Open Sample.")
            return
        levels = ", ".join(f"{w}x{h}" for w, h in slide.level_dimensions)
        if slide.mpp is not None:
            scale = f"{slide.mpp[0]:.4f} x {slide.mpp[1]:.4f} µm/px"
            if not slide.mpp_from_file:  # stated by a user or a demo, not read from the file
                scale += " (<b>assumed</b>: stated, not recorded in the file)"
            self.mpp.setValue(slide.mpp[0])
        else:
            scale = "<b>unknown</b>: state it below to work in µm"
        power = f"x{slide.objective_power:g}" if slide.objective_power else "unknown"
        self.info.setText(
            f"<b>{slide.slide_id}</b> ({slide.vendor or 'generic'})<br>"
            f"levels: {levels}<br>pixel size: {scale}<br>objective: {power}"
        )
        mark_done(self.next_button, slide.mpp is not None)

    def set_scale(self) -> None:
        """Apply the pixel size in the field to the selected slide and all its layers."""
        from napari.utils.notifications import show_info, show_warning

        layer = find_slide_layer(self.viewer)
        if layer is None:
            show_warning("Open a slide first.")
            return
        slide = slide_of_layer(layer)
        try:
            slide.set_mpp(self.mpp.value())
        except UserFacingError as exc:
            show_warning(str(exc))
            return
        n = apply_slide_scale(self.viewer, slide)
        self.refresh()
        show_info(f"{slide.slide_id}: {slide.mpp[0]:.4f} µm/px; {n} layer(s) now in µm.")
