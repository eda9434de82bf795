"""Dock widget: cross-validated training of HIGT or a baseline from the viewer.

A thin layer over the Qt-free engine (`napari_higt.training.engine.train_cross_validation`):
the engine runs in the `WorkerWidget`'s background thread; its callbacks (called in that
thread) are forwarded to the GUI with a Qt signal, which feeds live loss / validation AUC
curves (a small matplotlib canvas, redrawn at most every 0.2 s) and the per-fold table.
Cancel stops the engine before its next optimisation step; the folds finished so far and every
fold's ``best.pt`` (the best validation epoch so far) stay on disk and are shown.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from napari_higt.devices import available_devices
from napari_higt.training.runs import best_checkpoint
from napari_higt.ui.forms import path_row
from napari_higt.ui.worker import Cancelled, WorkerWidget

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from napari_higt.training.results import CVResult

__all__ = ["TABLE_COLUMNS", "TrainingWidget"]

#: Columns of the results table.
TABLE_COLUMNS: tuple[str, ...] = ("Fold", "Best epoch", "AUC", "ACC")
#: Minimum seconds between two redraws of the curves.
REDRAW_INTERVAL = 0.2


def _fmt(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if v is not None and math.isfinite(v) else "n/a"


class _Forward:
    """Engine callbacks -> (kind, info) signal emissions and bar progress (worker thread)."""

    def __init__(self, emit, progress, n_folds: int, epochs: int, n_seeds: int = 1) -> None:
        self.emit, self.progress = emit, progress
        self.n_folds, self.epochs, self.n_seeds = n_folds, epochs, n_seeds
        self.seeds: list[int] = []

    def _run_index(self, seed: int, fold: int) -> int:
        if seed not in self.seeds:
            self.seeds.append(seed)
        return self.seeds.index(seed) * self.n_folds + fold

    def on_step(self, info) -> None:
        k = self._run_index(info.seed, info.fold)
        done = (k * self.epochs + info.epoch - 1) * info.steps + info.step
        self.progress(done, self.n_seeds * self.n_folds * self.epochs * info.steps)
        self.emit("step", info)

    def on_epoch(self, info) -> None:
        self.emit("epoch", info)

    def on_fold(self, info) -> None:
        self.emit("fold", info)


class TrainingWidget(WorkerWidget):
    """Features folder + labels CSV, model and ablations, epochs / lr / folds / device; Train.

    Attributes
    ----------
    curves : dict
        Per (seed, fold): ``step_x``/``step_loss`` (x in epochs) and ``epoch``/``val_auc``/
        ``val_loss``, as received from the engine.
    result : CVResult or None
        The last run's result (also after Cancel: the finished folds, ``cancelled=True``).
    best_checkpoint : Path or None
        ``best.pt`` of the fold with the highest validation AUC, partial folds included.
    run_dir : Path or None
        Output folder of the last run.
    """

    #: (kind, info) from the worker thread: "step" | "epoch" | "fold" | "start" | "warning".
    train_event = Signal(str, object)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, "Train")
        # ---- data
        self.features_dir = QLineEdit()
        self.features_dir.setPlaceholderText("folder of <slide_id>.h5 feature files")
        b_feat = QPushButton("…")
        b_feat.clicked.connect(self._browse_features)
        self.labels_csv = QLineEdit()
        self.labels_csv.setPlaceholderText("CSV: slide_id,label[,fold]")
        b_csv = QPushButton("…")
        b_csv.clicked.connect(self._browse_labels)
        self.out_dir = QLineEdit()
        self.out_dir.setPlaceholderText("<features folder>/../runs/<model>-<time>")
        b_out = QPushButton("…")
        b_out.clicked.connect(self._browse_out)
        # ---- model
        self.model = QComboBox()
        self.model.addItems(["higt", "abmil", "mean"])
        self.conv = QComboBox()
        self.conv.addItems(["raconv+", "raconv"])
        self.conv.setToolTip("graph convolution; raconv = ablation")
        self.attention = QComboBox()
        self.attention.addItems(["separable", "full"])
        self.attention.setToolTip("HIViT attention; full = ablation 'w/o SSA'")
        self.interaction = QComboBox()
        self.interaction.addItems(["bi", "r2p"])
        self.interaction.setToolTip("HIViT interaction; r2p = ablation 'w/o BI'")
        self.fusion = QCheckBox("Fusion")
        self.fusion.setChecked(True)
        self.fusion.setToolTip("unchecked = ablation 'w/o Fusion'")
        self.blocks = QSpinBox()
        self.blocks.setRange(1, 12)
        self.blocks.setValue(3)
        self.blocks.setToolTip("HIViT blocks (depth; default 3)")
        self.higt_box = QGroupBox("HIGT")
        hf = QFormLayout(self.higt_box)
        hf.addRow("Blocks", self.blocks)
        hf.addRow("Convolution", self.conv)
        hf.addRow("Attention", self.attention)
        hf.addRow("Interaction", self.interaction)
        hf.addRow(self.fusion)
        self.model.currentTextChanged.connect(
            lambda m: self.higt_box.setEnabled(m == "higt"))
        self.hidden = QSpinBox()
        self.hidden.setRange(4, 4096)
        self.hidden.setValue(256)
        # ---- optimisation
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10000)
        self.epochs.setValue(50)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(5e-4)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 1024)
        self.batch_size.setValue(8)
        self.batch_size.setToolTip("slides per optimisation step")
        self.folds = QSpinBox()
        self.folds.setRange(2, 50)
        self.folds.setValue(5)
        self.folds.setToolTip("stratified folds (a 'fold' column in the CSV wins)")
        self.device = QComboBox()
        self.device.addItems(["auto", *available_devices()])
        self.device.setToolTip("auto = the first of: " + ", ".join(available_devices()))

        form = QFormLayout()
        form.addRow("Features", path_row(self.features_dir, b_feat))
        form.addRow("Labels CSV", path_row(self.labels_csv, b_csv))
        form.addRow("Output run", path_row(self.out_dir, b_out))
        form.addRow("Model", self.model)
        form.addRow(self.higt_box)
        form.addRow("Hidden size", self.hidden)
        form.addRow("Epochs", self.epochs)
        form.addRow("Learning rate", self.lr)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Folds", self.folds)
        form.addRow("Device", self.device)

        # ---- live curves
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, 2.4), dpi=80)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(190)
        self.ax_loss = self.figure.add_subplot(1, 2, 1)
        self.ax_auc = self.figure.add_subplot(1, 2, 2)
        self.figure.subplots_adjust(left=0.12, right=0.98, bottom=0.2, top=0.88, wspace=0.35)
        self._style_axes()
        self._lines: dict[tuple[int, int], dict[str, Any]] = {}
        self.curves: dict[tuple[int, int], dict[str, list[float]]] = {}
        self.redraws = 0
        self._last_draw = 0.0
        self._stale = False
        self._draw_timer = QTimer(self)
        self._draw_timer.setSingleShot(True)
        self._draw_timer.timeout.connect(self._draw)

        # ---- results
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setMinimumHeight(110)
        self.checkpoint = QLineEdit()
        self.checkpoint.setReadOnly(True)
        self.checkpoint.setPlaceholderText("best checkpoint of the run")
        self.use_button = QPushButton("Use in Inference")
        self.use_button.setEnabled(False)
        self.use_button.setToolTip("put the best checkpoint into the Inference widget")
        self.use_button.clicked.connect(self.use_in_inference)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self._controls())
        layout.addWidget(self.canvas)
        layout.addWidget(self.table)
        layout.addWidget(path_row(self.checkpoint, self.use_button))
        layout.addStretch(1)
        self.run_button.clicked.connect(self.run)
        self.train_event.connect(self._on_event)

        self.result: CVResult | None = None
        self.best_checkpoint: Path | None = None
        self.run_dir: Path | None = None
        self._n_folds = 0
        self._partial: dict[tuple[int, int], tuple[float, int]] = {}
        self._where: tuple[int, int, int] | None = None  # (seed, fold, epoch) last seen

    # ------------------------------------------------------------------ file dialogs
    def _browse_features(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder of feature files")
        if d:
            self.features_dir.setText(d)

    def _browse_labels(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Labels CSV", "", "CSV (*.csv);;All (*)")
        if f:
            self.labels_csv.setText(f)

    def _browse_out(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Output folder of the run")
        if d:
            self.out_dir.setText(d)

    # ------------------------------------------------------------------ settings
    def model_config(self) -> dict[str, Any]:
        """The ``build_model`` keys the form describes."""
        m: dict[str, Any] = {"model": self.model.currentText(), "hidden": self.hidden.value()}
        if m["model"] == "higt":
            m.update(n_blocks=self.blocks.value(), conv=self.conv.currentText(),
                     attention=self.attention.currentText(),
                     interaction=self.interaction.currentText(),
                     fusion=self.fusion.isChecked())
        return m

    def train_config(self):
        from napari_higt.training.config import TrainConfig

        return TrainConfig(model=self.model_config(), epochs=self.epochs.value(),
                           lr=float(self.lr.value()), batch_size=self.batch_size.value(),
                           folds=self.folds.value(), device=self.device.currentText(),
                           seeds=[0])

    # ------------------------------------------------------------------ run
    def run(self) -> bool:
        """Start training (False, with a warning, when the input cannot be used)."""
        from napari_higt.errors import UserFacingError
        from napari_higt.models import resolve_config
        from napari_higt.training.dataset import read_labels

        if self._busy("Training"):
            return False
        ftext = self.features_dir.text().strip()
        if not ftext:
            show_warning("Choose the folder of feature files first (Features, the … button).")
            return False
        features = Path(ftext).expanduser()
        if not features.is_dir():
            show_warning(f"Features folder not found: {features}")
            return False
        ltext = self.labels_csv.text().strip()
        if not ltext:
            show_warning("Choose a labels CSV first (slide_id,label[,fold]; the … button).")
            return False
        labels = Path(ltext).expanduser()
        try:
            read_labels(labels)  # cheap: a bad CSV (one class, no columns) fails right here
            config = self.train_config()
            config.validate()
            resolve_config({**config.model, "in_dim": 1, "n_classes": 2})
        except UserFacingError as exc:
            show_warning(str(exc))
            return False
        except ValueError as exc:
            show_warning(f"Model settings: {exc}")
            return False
        otext = self.out_dir.text().strip()
        if otext:
            out = Path(otext).expanduser()
            if (out / "run.json").is_file():
                show_warning(f"{out} already holds a training run; choose another output "
                             "folder, or clear the field for a new one under runs/.")
                return False
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            out = features.parent / "runs" / f"{config.model['model']}-{stamp}"
            n = 1
            while out.exists():
                n += 1
                out = features.parent / "runs" / f"{config.model['model']}-{stamp}-{n}"
        self._reset_run(out)
        holder = self._holder
        sig = self.train_event
        title = f"{config.model['model']} on {features}"

        def work(progress, cancelled):
            import warnings

            from napari_higt.training.dataset import SlideGraphDataset
            from napari_higt.training.engine import train_cross_validation

            job = holder.get("job")

            def emit(kind: str, info: Any) -> None:
                if job is not None and job.alive:
                    try:
                        sig.emit(kind, info)
                    except RuntimeError:  # the widget went away meanwhile
                        pass

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds = SlideGraphDataset.from_folder(features, labels)
            for w in caught:
                if issubclass(w.category, UserWarning):
                    emit("warning", str(w.message))
            if cancelled():
                raise Cancelled()
            n_folds = len(set(ds.folds.tolist())) if ds.folds is not None else config.folds
            emit("start", {"n_folds": n_folds, "summary": ds.summary(), "out": str(out)})
            cb = _Forward(emit, progress, n_folds, config.epochs, len(config.seeds))
            return train_cross_validation(ds, config, out, callbacks=[cb], cancel=cancelled,
                                          title=title)

        return self._start(work, self._done, "Training")

    def cancel(self) -> None:
        """Ask the engine to stop before its next step (the worker still returns the folds
        finished so far, so the worker is not told to drop its result)."""
        job = self._job
        if job is not None:
            job.cancel.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling after the current step…")

    def _finish(self, job, result, on_done) -> None:
        if job.cancel.is_set() and result is not None:
            # A cancelled run still returns its finished folds: show them.
            self._release(job)
            if self.bar.maximum() == 0:
                self.bar.setRange(0, 1)
            on_done(result)
            return
        super()._finish(job, result, on_done)

    def _reset_run(self, out: Path) -> None:
        self.run_dir = out
        self.result = None
        self.best_checkpoint = None
        self.checkpoint.clear()
        self.use_button.setEnabled(False)
        self.table.setRowCount(0)
        self.curves.clear()
        self._partial.clear()
        self._where = None
        for lines in self._lines.values():
            for ln in lines.values():
                ln.remove()
        self._lines.clear()
        self._draw()

    # ------------------------------------------------------------------ live updates
    def _on_event(self, kind: str, info: Any) -> None:
        if kind == "step":
            c = self._curve(info.seed, info.fold)
            c["step_x"].append(info.epoch - 1 + info.step / max(info.steps, 1))
            c["step_loss"].append(float(info.loss))
            self._where = (info.seed, info.fold, info.epoch)
            self._schedule_draw()
        elif kind == "epoch":
            c = self._curve(info.seed, info.fold)
            c["epoch"].append(info.epoch)
            c["val_auc"].append(float(info.val_auc))
            c["val_loss"].append(float(info.val_loss))
            self._partial[(info.seed, info.fold)] = (float(info.best_auc), int(info.best_epoch))
            self._where = (info.seed, info.fold, info.epoch)
            if self.running:
                self.status.setText(
                    f"Fold {info.fold + 1}/{self._n_folds or '?'}, epoch {info.epoch}/"
                    f"{info.epochs}: train loss {info.train_loss:.3f}, val AUC "
                    f"{_fmt(info.val_auc)} (best {_fmt(info.best_auc)} at epoch "
                    f"{info.best_epoch})")
            self._schedule_draw()
        elif kind == "fold":
            self._add_row(f"{info.fold + 1}", str(info.best_epoch), _fmt(info.auc),
                          _fmt(info.acc))
        elif kind == "start":
            self._n_folds = int(info["n_folds"])
            if self.running:
                self.status.setText(f"Training on {info['summary']}, {self._n_folds} folds; "
                                    f"writing to {info['out']}")
        elif kind == "warning":
            show_warning(info)

    def _curve(self, seed: int, fold: int) -> dict[str, list[float]]:
        return self.curves.setdefault((seed, fold), {
            "step_x": [], "step_loss": [], "epoch": [], "val_auc": [], "val_loss": []})

    def _schedule_draw(self) -> None:
        if not self.canvas.isVisible():  # a hidden tab: drawn when shown (showEvent)
            self._stale = True
            return
        wait = REDRAW_INTERVAL - (time.monotonic() - self._last_draw)
        if wait <= 0:
            self._draw()
        elif not self._draw_timer.isActive():
            self._draw_timer.start(int(wait * 1000) + 1)

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

    def _draw(self) -> None:
        """Push the curves into their lines and redraw (cheap: a few lines, no layout)."""
        self._draw_timer.stop()
        self._stale = False
        self._last_draw = time.monotonic()
        added = False
        for key, c in self.curves.items():
            lines = self._lines.get(key)
            if lines is None:
                added = True
                color = f"C{len(self._lines) % 10}"
                label = f"fold {key[1] + 1}"
                lines = self._lines[key] = {
                    "loss": self.ax_loss.plot([], [], color=color, lw=1, label=label)[0],
                    "val_loss": self.ax_loss.plot([], [], color=color, lw=1, ls="--",
                                                  marker=".", ms=3)[0],
                    "auc": self.ax_auc.plot([], [], color=color, lw=1.2, marker=".", ms=4,
                                            label=label)[0],
                }
            lines["loss"].set_data(c["step_x"], c["step_loss"])
            lines["val_loss"].set_data(c["epoch"], c["val_loss"])
            lines["auc"].set_data(c["epoch"], c["val_auc"])
        self.ax_loss.relim()
        self.ax_loss.autoscale_view()
        self.ax_auc.relim()
        self.ax_auc.autoscale_view(scaley=False)
        self.ax_auc.set_ylim(0.0, 1.02)
        if added and len(self._lines) <= 10:  # a new legend only when a fold starts
            self.ax_auc.legend(fontsize=7, loc="lower right")
        self.canvas.draw_idle()
        self.redraws += 1

    def showEvent(self, event) -> None:  # Qt API name
        super().showEvent(event)
        if self._stale:
            self._draw()

    # ------------------------------------------------------------------ results
    def _add_row(self, *cells: str, bold: bool = False) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setTextAlignment(int(Qt.AlignCenter))
            if bold:
                f = item.font()
                f.setBold(True)
                item.setFont(f)
            self.table.setItem(r, c, item)

    def _fill_table(self, res: CVResult) -> None:
        self.table.setRowCount(0)
        seeds = {f.seed for f in res.folds}
        for f in res.folds:
            name = f"{f.fold + 1}" if len(seeds) == 1 else f"s{f.seed}/{f.fold + 1}"
            self._add_row(name, str(f.best_epoch), _fmt(f.auc), _fmt(f.acc))
        if res.folds:
            s = res.summary()
            self._add_row("mean ± std", "",
                          f"{_fmt(s['auc']['mean'])} ± {_fmt(s['auc']['std'])}",
                          f"{_fmt(s['acc']['mean'])} ± {_fmt(s['acc']['std'])}", bold=True)

    def _done(self, res: CVResult) -> None:
        self.result = res
        self._fill_table(res)
        self._draw()
        best, auc = best_checkpoint(res, self._partial)
        self.best_checkpoint = best
        self.checkpoint.setText(str(best) if best else "")
        self.use_button.setEnabled(best is not None)
        keep = (f"best checkpoint kept: {best} (val AUC {_fmt(auc)})" if best else
                "no epoch finished, so there is no best checkpoint yet")
        if res.cancelled:
            where = ""
            if self._where is not None:
                where = f" in fold {self._where[1] + 1}, epoch {self._where[2]}"
            self.status.setText(f"Cancelled{where}; {len(res.folds)} fold(s) finished; {keep}.")
            show_info(f"Training cancelled{where}; {keep}.")
            return
        s = res.summary()
        msg = (f"Done in {res.seconds:.1f} s: AUC {_fmt(s['auc']['mean'])} ± "
               f"{_fmt(s['auc']['std'])} over {len(res.folds)} fold(s); results in "
               f"{res.out_dir}/results.md")
        self.status.setText(msg + f"; {keep}.")
        show_info(msg)

    # ------------------------------------------------------------------ inference hand-off
    def use_in_inference(self) -> bool:
        """Put the best checkpoint into the Inference widget (opened when none is)."""
        from napari_higt.ui.inference_widget import InferenceWidget

        if self.best_checkpoint is None:
            show_warning("No checkpoint yet: train a model first.")
            return False
        found = [w for w in self.viewer.window.dock_widgets.values()
                 if isinstance(w, InferenceWidget)]
        if found:
            target = found[0]
        else:
            _, target = self.viewer.window.add_plugin_dock_widget("napari-higt", "Inference")
        target.checkpoint.setText(str(self.best_checkpoint))
        show_info(f"Inference widget: checkpoint set to {self.best_checkpoint.name} "
                  f"({self.best_checkpoint.parent.name})")
        return True
