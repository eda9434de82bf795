"""Live training curves for the Training widget: loss (train per step, validation per
epoch) and validation AUC per fold.

The figure is drawn off the GUI thread: a matplotlib draw of two small axes takes 150-450 ms
on a loaded 2-core machine (mostly laying out tick labels), which on the GUI thread froze
the viewer at every redraw while a model trained. The GUI thread keeps the curves, hands a
copy to a background worker that draws them with matplotlib's Agg renderer
(`CurveRenderer`, no Qt), and shows the returned pixels in a label. One draw runs at a
time; curves that arrive meanwhile are drawn next, at most every ``REDRAW_INTERVAL``
seconds and only while the plot is visible.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy

__all__ = ["CurvePlot", "CurveRenderer", "REDRAW_INTERVAL"]

#: Minimum seconds between two redraws of the curves.
REDRAW_INTERVAL = 0.2
#: Dots per inch of the figure (its size follows the label's size in pixels).
DPI = 80
HEIGHT = 200

Curves = dict[tuple[int, int], dict[str, list[float]]]


class CurveRenderer:
    """The matplotlib figure of the curves, drawn to an RGBA array (no Qt: any thread).

    Attributes
    ----------
    lines : dict
        Per (seed, fold): its ``loss``, ``val_loss`` and ``auc`` `Line2D`.
    thread : int or None
        `threading.get_ident` of the thread that drew last.
    """

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, 2.4), dpi=DPI)
        FigureCanvasAgg(self.figure)
        self.ax_loss = self.figure.add_subplot(1, 2, 1)
        self.ax_auc = self.figure.add_subplot(1, 2, 2)
        self.figure.subplots_adjust(left=0.12, right=0.98, bottom=0.2, top=0.88, wspace=0.35)
        self._style_axes()
        self.lines: dict[tuple[int, int], dict[str, Any]] = {}
        self.thread: int | None = None
        self._lock = threading.Lock()

    def _style_axes(self) -> None:
        from matplotlib.ticker import MaxNLocator

        self.ax_loss.set_title("loss: train (solid), val (dashed)", fontsize=9)
        self.ax_loss.set_xlabel("epoch", fontsize=8)
        self.ax_auc.set_title("validation AUC", fontsize=9)
        self.ax_auc.set_xlabel("epoch", fontsize=8)
        self.ax_auc.set_ylim(0.0, 1.02)
        for ax in (self.ax_loss, self.ax_auc):
            # few ticks: tick labels are most of the cost of a draw
            ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)

    def _lines_of(self, key: tuple[int, int]) -> dict[str, Any]:
        color = f"C{len(self.lines) % 10}"
        label = f"fold {key[1]}"
        self.lines[key] = {
            "loss": self.ax_loss.plot([], [], color=color, lw=1, label=label)[0],
            "val_loss": self.ax_loss.plot([], [], color=color, lw=1, ls="--",
                                          marker=".", ms=3)[0],
            "auc": self.ax_auc.plot([], [], color=color, lw=1.2, marker=".", ms=4,
                                    label=label)[0],
        }
        return self.lines[key]

    def render(self, curves: Curves, size: tuple[int, int]) -> np.ndarray:
        """Draw ``curves`` on a figure of ``size`` (width, height) px; (H, W, 4) uint8."""
        with self._lock:  # one figure: two draws must not interleave
            self.thread = threading.get_ident()
            for key in [k for k in self.lines if k not in curves]:  # cleared
                for ln in self.lines.pop(key).values():
                    ln.remove()
            added = False
            for key, c in curves.items():
                lines = self.lines.get(key)
                if lines is None:
                    added = True
                    lines = self._lines_of(key)
                lines["loss"].set_data(c["step_x"], c["step_loss"])
                lines["val_loss"].set_data(c["epoch"], c["val_loss"])
                lines["auc"].set_data(c["epoch"], c["val_auc"])
            self.ax_loss.relim()
            self.ax_loss.autoscale_view()
            self.ax_auc.relim()
            self.ax_auc.autoscale_view(scaley=False)
            self.ax_auc.set_ylim(0.0, 1.02)
            legend = self.ax_auc.get_legend()
            if not self.lines and legend is not None:
                legend.remove()
            elif added and len(self.lines) <= 10:  # a new legend only when a fold starts
                self.ax_auc.legend(fontsize=7, loc="lower right")
            w, h = (max(int(v), 1) for v in size)
            if self.figure.get_size_inches().tolist() != [w / DPI, h / DPI]:
                self.figure.set_size_inches(w / DPI, h / DPI)
            self.figure.canvas.draw()
            return np.asarray(self.figure.canvas.buffer_rgba()).copy()


class _CurveLabel(QLabel):
    """A label that asks for a new drawing when its size changes (the drawing is pixels)."""

    def __init__(self, parent, on_resize) -> None:
        super().__init__(parent)
        self._on_resize = on_resize

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        pixmap = self.pixmap()
        if pixmap is not None and not pixmap.isNull() and \
                pixmap.deviceIndependentSize().toSize() != self.size():
            self._on_resize()


class CurvePlot:
    """The curves received so far, and the label showing their last drawing.

    Attributes
    ----------
    curves : dict
        Per (seed, fold): ``step_x``/``step_loss`` (x in epochs) and ``epoch``/``val_auc``/
        ``val_loss``, as received from the engine.
    canvas : QLabel
        The widget showing the drawn curves.
    redraws : int
        How many drawings were shown.
    """

    def __init__(self, parent) -> None:
        self.renderer = CurveRenderer()
        self.canvas = _CurveLabel(parent, self.schedule)
        # Its size is the layout's, never the pixmap's: a label sized by its pixmap would
        # grow with every drawing.
        self.canvas.setFixedHeight(HEIGHT)
        self.canvas.setMinimumWidth(200)
        self.canvas.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.canvas.setToolTip("training curves (drawn in the background)")
        self.curves: Curves = {}
        self.redraws = 0
        self._last_draw = 0.0
        self.stale = False
        self._drawing = False  # a draw is with the background worker
        self._again = False  # curves changed while it was
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.draw)

    @property
    def lines(self) -> dict[tuple[int, int], dict[str, Any]]:
        return self.renderer.lines

    @property
    def drawing(self) -> bool:
        """True while a drawing of the curves is under way or due."""
        return self._drawing or self._again or self._timer.isActive()

    def _curve(self, seed: int, fold: int) -> dict[str, list[float]]:
        return self.curves.setdefault((seed, fold), {
            "step_x": [], "step_loss": [], "epoch": [], "val_auc": [], "val_loss": []})

    def add_step(self, info) -> None:
        """One optimisation step (`training.callbacks.StepInfo`)."""
        c = self._curve(info.seed, info.fold)
        c["step_x"].append(info.epoch - 1 + info.step / max(info.steps, 1))
        c["step_loss"].append(float(info.loss))
        self.schedule()

    def add_epoch(self, info) -> None:
        """One finished epoch (`training.callbacks.EpochInfo`)."""
        c = self._curve(info.seed, info.fold)
        c["epoch"].append(info.epoch)
        c["val_auc"].append(float(info.val_auc))
        c["val_loss"].append(float(info.val_loss))
        self.schedule()

    def clear(self) -> None:
        """Forget every curve and draw the empty axes."""
        self.curves.clear()
        self.draw()

    def schedule(self) -> None:
        """Draw now, or after the rest of ``REDRAW_INTERVAL``; later when hidden."""
        if not self.canvas.isVisible():  # a hidden tab: drawn when shown
            self.stale = True
            return
        wait = REDRAW_INTERVAL - (time.monotonic() - self._last_draw)
        if wait <= 0:
            self.draw()
        elif not self._timer.isActive():
            self._timer.start(int(wait * 1000) + 1)

    def draw(self) -> None:
        """Hand a copy of the curves to the background worker (or note that they changed,
        when it is drawing)."""
        from napari_higt.ui.worker import start_background

        self._timer.stop()
        self.stale = False
        if self._drawing:
            self._again = True
            return
        self._drawing, self._again = True, False
        self._last_draw = time.monotonic()
        copy = {key: {name: list(v) for name, v in c.items()} for key, c in self.curves.items()}
        ratio = self.canvas.devicePixelRatioF()
        size = (self.canvas.width() * ratio, self.canvas.height() * ratio)
        start_background(self.renderer.render, copy, size, on_done=self._show,
                         on_finished=self._drawn)

    def _show(self, rgba: np.ndarray) -> None:
        h, w = rgba.shape[:2]
        # fromImage copies: the QImage only borrows ``rgba`` for this call
        pixmap = QPixmap.fromImage(QImage(rgba.data, w, h, 4 * w,
                                          QImage.Format.Format_RGBA8888))
        pixmap.setDevicePixelRatio(self.canvas.devicePixelRatioF())
        try:
            self.canvas.setPixmap(pixmap)
        except RuntimeError:  # the widget went away while the worker drew
            return
        self.redraws += 1

    def _drawn(self) -> None:
        self._drawing = False
        if self._again:
            self._again = False
            try:
                self.schedule()
            except RuntimeError:  # the widget went away while the worker drew
                pass
