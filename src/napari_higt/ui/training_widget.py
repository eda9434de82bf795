"""Dock widget: cross-validated training of HIGT or a baseline from the viewer.

A thin layer over the Qt-free engine (`napari_higt.training.engine.train_cross_validation`):
the engine runs in the `WorkerWidget`'s background thread; its callbacks (called in that
thread) are forwarded to the GUI with a Qt signal, which feeds live loss / validation AUC
curves (`ui.training_curves`, redrawn at most every 0.2 s) and the per-fold table; the
form is `ui.training_form`.
Cancel stops the engine before its next optimisation step; the folds finished so far and every
fold's ``best.pt`` (the best validation epoch so far) stay on disk and are shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
)

from napari_higt.errors import Cancelled
from napari_higt.training.results import fmt_metric as _fmt
from napari_higt.training.results import fold_rows
from napari_higt.training.runs import best_checkpoint, holds_run, new_run_dir
from napari_higt.ui.forms import fit_table_rows, path_row, scroll_layout
from napari_higt.ui.training_curves import CurvePlot
from napari_higt.ui.training_form import add_training_fields, model_config
from napari_higt.ui.worker import WorkerWidget

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from napari_higt.training.results import CVResult

__all__ = ["TABLE_COLUMNS", "TrainingWidget"]

#: Columns of the results table.
TABLE_COLUMNS: tuple[str, ...] = ("Fold", "Best epoch", "AUC", "ACC")


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
        form = add_training_fields(self)
        self.plot = CurvePlot(self)
        self.canvas = self.plot.canvas
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        fit_table_rows(self.table)
        self.checkpoint = QLineEdit()
        self.checkpoint.setReadOnly(True)
        self.checkpoint.setPlaceholderText("best checkpoint of the run")
        self.use_button = QPushButton("Use in Inference")
        self.use_button.setEnabled(False)
        self.use_button.setToolTip("put the best checkpoint into the Inference widget")
        self.use_button.clicked.connect(self.use_in_inference)

        layout = scroll_layout(self)
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

    @property
    def curves(self) -> dict[tuple[int, int], dict[str, list[float]]]:
        return self.plot.curves

    @property
    def _lines(self) -> dict[tuple[int, int], dict[str, Any]]:
        return self.plot.lines

    @property
    def redraws(self) -> int:
        return self.plot.redraws

    # ------------------------------------------------------------------ settings
    def model_config(self) -> dict[str, Any]:
        """The ``build_model`` keys the form describes."""
        return model_config(self)

    def train_config(self):
        from napari_higt.training.config import TrainConfig

        return TrainConfig(model=self.model_config(), epochs=self.epochs.value(),
                           lr=float(self.lr.value()), batch_size=self.batch_size.value(),
                           folds=self.folds.value(), device=self.device.currentText(),
                           seeds=[0])

    # ------------------------------------------------------------------ run
    @staticmethod
    def _path(edit: QLineEdit, missing: str) -> Path | None:
        """The path typed in ``edit``; None, after warning ``missing``, when it is empty."""
        text = edit.text().strip()
        if not text:
            show_warning(missing)
            return None
        return Path(text).expanduser()

    def _inputs(self) -> tuple[Path, Path, Any, Path] | None:
        """(features folder, labels CSV, TrainConfig, run folder), or None after a warning
        saying what to fix."""
        from napari_higt.errors import UserFacingError
        from napari_higt.labels import read_labels
        from napari_higt.models import resolve_config

        features = self._path(self.features_dir, "Choose the folder of feature files first "
                              "(Features, the … button).")
        if features is None:
            return None
        if not features.is_dir():
            show_warning(f"Features folder not found: {features}")
            return None
        labels = self._path(self.labels_csv, "Choose a labels CSV first (slide_id,label"
                            "[,fold]; the … button).")
        if labels is None:
            return None
        try:
            read_labels(labels)  # cheap: a bad CSV (one class, no columns) fails right here
            config = self.train_config()
            config.validate()
            resolve_config({**config.model, "in_dim": 1, "n_classes": 2})
        except UserFacingError as exc:
            show_warning(str(exc))
            return None
        except ValueError as exc:
            show_warning(f"Model settings: {exc}")
            return None
        otext = self.out_dir.text().strip()
        out = (Path(otext).expanduser() if otext
               else new_run_dir(features.parent / "runs", config.model["model"]))
        if otext and holds_run(out):
            show_warning(f"{out} already holds a training run; choose another output "
                         "folder, or clear the field for a new one under runs/.")
            return None
        return features, labels, config, out

    def run(self) -> bool:
        """Start training (False, with a warning, when the input cannot be used)."""
        if self._busy("Training"):
            return False
        inputs = self._inputs()
        if inputs is None:
            return False
        features, labels, config, out = inputs
        self._reset_run(out)
        holder = self._holder
        sig = self.train_event
        title = f"{config.model['model']} on {features}"

        def work(progress, cancelled):
            import warnings

            from napari_higt.training.callbacks import RunProgress
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
            cb = RunProgress(emit, progress, n_folds, config.epochs, len(config.seeds))
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
        self._partial.clear()
        self._where = None
        self.plot.clear()

    # ------------------------------------------------------------------ live updates
    def _on_event(self, kind: str, info: Any) -> None:
        if kind == "step":
            self._where = (info.seed, info.fold, info.epoch)
            self.plot.add_step(info)
        elif kind == "epoch":
            self.plot.add_epoch(info)
            self._partial[(info.seed, info.fold)] = (float(info.best_auc), int(info.best_epoch))
            self._where = (info.seed, info.fold, info.epoch)
            if self.running:
                self.status.setText(
                    f"Fold {info.fold} ({self._n_folds or '?'} folds), epoch {info.epoch}/"
                    f"{info.epochs}: train loss {info.train_loss:.3f}, val AUC "
                    f"{_fmt(info.val_auc)} (best {_fmt(info.best_auc)} at epoch "
                    f"{info.best_epoch})")
        elif kind == "fold":
            self._add_row(f"{info.fold}", str(info.best_epoch), _fmt(info.auc),
                          _fmt(info.acc))
        elif kind == "start":
            self._n_folds = int(info["n_folds"])
            if self.running:
                self.status.setText(f"Training on {info['summary']}, {self._n_folds} folds; "
                                    f"writing to {info['out']}")
        elif kind == "warning":
            show_warning(info)

    def showEvent(self, event) -> None:  # Qt API name
        super().showEvent(event)
        if self.plot.stale:
            self.plot.draw()

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
        fit_table_rows(self.table)  # every fold and the mean, not the first three

    def _fill_table(self, res: CVResult) -> None:
        self.table.setRowCount(0)
        rows = fold_rows(res)
        for i, row in enumerate(rows):
            self._add_row(*row, bold=i == len(res.folds))

    def _done(self, res: CVResult) -> None:
        self.result = res
        self._fill_table(res)
        self.plot.draw()
        best, auc = best_checkpoint(res, self._partial)
        self.best_checkpoint = best
        self.checkpoint.setText(str(best) if best else "")
        self.use_button.setEnabled(best is not None)
        keep = (f"best checkpoint kept: {best} (val AUC {_fmt(auc)})" if best else
                "no epoch finished, so there is no best checkpoint yet")
        if res.cancelled:
            where = ""
            if self._where is not None:
                where = f" in fold {self._where[1]}, epoch {self._where[2]}"
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
