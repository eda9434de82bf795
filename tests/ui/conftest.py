"""Fixtures shared by the widget tests."""

import importlib
import os
from pathlib import Path

import pytest

#: Where the widget tests write their screenshots: an untracked folder, so that running the
#: tests never rewrites tracked files. ``scripts/refresh_screenshots.sh`` points it at
#: ``docs/images`` to refresh the README's pictures on purpose.
SCREENSHOTS = Path(os.environ.get(
    "NAPARI_HIGT_SCREENSHOTS", Path(__file__).resolve().parents[2] / "out" / "screenshots"))
SCREENSHOTS.mkdir(parents=True, exist_ok=True)

_WIDGET_MODULES = ("worker", "graph_widget", "entity_widget", "cohort_widget",
                   "inference_widget", "inspector_widget", "export_widget", "commands",
                   "slide_widget", "reader")


@pytest.fixture
def notes(monkeypatch):
    """Notifications the plugin's widgets show, as (kind, message), newest last."""
    seen = []
    for name in _WIDGET_MODULES:
        mod = importlib.import_module(f"napari_higt.ui.{name}")
        for kind in ("show_warning", "show_error", "show_info"):
            if hasattr(mod, kind):
                monkeypatch.setattr(mod, kind,
                                    lambda msg, kind=kind: seen.append((kind, str(msg))))
    return seen


def open_slide(viewer, path, mpp=None):
    """Open ``path`` with the plugin's reader, as File > Open does; with ``mpp``, state its
    scale as the Slide widget's *Set scale* does. Returns the slide layer."""
    from napari_higt.ui.layers import apply_slide_scale, slide_of_layer

    (layer,) = viewer.open(str(path), plugin="napari-higt")
    if mpp is not None:
        slide = slide_of_layer(layer)
        slide.set_mpp(mpp)
        apply_slide_scale(viewer, slide)
    return layer


def shown_text(label) -> str:
    """What a (rich-text) QLabel shows a reader: markup rendered, entities decoded."""
    from qtpy.QtGui import QTextDocument

    doc = QTextDocument()
    doc.setHtml(label.text())
    return doc.toPlainText()
