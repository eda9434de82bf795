"""Live training curves for the Training widget: loss (train per step, validation per
epoch) and validation AUC per fold, on a small matplotlib canvas redrawn at most every
``REDRAW_INTERVAL`` seconds and only while it is visible."""

from __future__ import annotations

import time
from typing import Any

from qtpy.QtCore import QTimer

__all__ = ["CurvePlot", "REDRAW_INTERVAL"]

#: Minimum seconds between two redraws of the curves.
REDRAW_INTERVAL = 0.2


class CurvePlot:
    """The canvas, the per-(seed, fold) curves received so far and their lines.

    Attributes
    ----------
    curves : dict
        Per (seed, fold): ``step_x``/``step_loss`` (x in epochs) and ``epoch``/``val_auc``/
        ``val_loss``, as received from the engine.
    redraws : int
        How many times the canvas was redrawn.
    """

    def __init__(self, parent) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, 2.4), dpi=80)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(190)
        self.ax_loss = self.figure.add_subplot(1, 2, 1)
        self.ax_auc = self.figure.add_subplot(1, 2, 2)
        self.figure.subplots_adjust(left=0.12, right=0.98, bottom=0.2, top=0.88, wspace=0.35)
        self._style_axes()
        self.lines: dict[tuple[int, int], dict[str, Any]] = {}
        self.curves: dict[tuple[int, int], dict[str, list[float]]] = {}
        self.redraws = 0
        self._last_draw = 0.0
        self.stale = False
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.draw)

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
        """Forget every curve and redraw the empty axes."""
        self.curves.clear()
        for lines in self.lines.values():
            for ln in lines.values():
                ln.remove()
        self.lines.clear()
        self.draw()

    def schedule(self) -> None:
        """Redraw now, or after the rest of ``REDRAW_INTERVAL``; later when hidden."""
        if not self.canvas.isVisible():  # a hidden tab: drawn when shown
            self.stale = True
            return
        wait = REDRAW_INTERVAL - (time.monotonic() - self._last_draw)
        if wait <= 0:
            self.draw()
        elif not self._timer.isActive():
            self._timer.start(int(wait * 1000) + 1)

    def _style_axes(self) -> None:
        self.ax_loss.set_title("loss: train (solid), val (dashed)", fontsize=9)
        self.ax_loss.set_xlabel("epoch", fontsize=8)
        self.ax_auc.set_title("validation AUC", fontsize=9)
        self.ax_auc.set_xlabel("epoch", fontsize=8)
        self.ax_auc.set_ylim(0.0, 1.02)
        from matplotlib.ticker import MaxNLocator

        for ax in (self.ax_loss, self.ax_auc):
            # few ticks: tick labels are most of the cost of a redraw
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

    def draw(self) -> None:
        """Push the curves into their lines and redraw (cheap: a few lines, no layout)."""
        self._timer.stop()
        self.stale = False
        self._last_draw = time.monotonic()
        added = False
        for key, c in self.curves.items():
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
        if added and len(self.lines) <= 10:  # a new legend only when a fold starts
            self.ax_auc.legend(fontsize=7, loc="lower right")
        self.canvas.draw_idle()
        self.redraws += 1
