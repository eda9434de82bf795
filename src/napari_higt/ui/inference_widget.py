"""Dock widget: run a trained checkpoint on the selected slide and paint what it saw."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from napari_higt.devices import available_devices
from napari_higt.errors import UserFacingError
from napari_higt.features.base import MODEL_FILE_OPTION
from napari_higt.inference.card import model_card, prediction_text
from napari_higt.ui.follow import follow_slide
from napari_higt.ui.forms import path_row
from napari_higt.ui.glyphs import warm_glyphs
from napari_higt.ui.layers import features_folder, find_slide_layer, slide_of_layer
from napari_higt.ui.paint import ResultPaint, iter_paint_result, load_and_prepare, \
    prepare_result_paint
from napari_higt.ui.results import RESULT_KEY
from napari_higt.ui.steps import mark_done, next_step_button
from napari_higt.ui.worker import WorkerWidget, start_background

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from napari_higt.inference import InferenceResult

__all__ = ["InferenceWidget"]


class InferenceWidget(WorkerWidget):
    """Checkpoint, device, features folder; Run computes what is missing and paints scores.

    The extractor is the checkpoint's own (its features are the only ones the model reads);
    the widget shows it and, for ``cnn`` / ``hmgdm``, asks for the weights / encoder file
    needed to compute the features of a slide that has none. The prediction (class and
    probabilities) is shown in the widget; node importance and the two BI contribution maps
    become Image layers with colour bars; results are cached in the slide's feature file, so a
    slide opened (or selected) again shows them without rerunning.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, checkpoint: str | None = None):
        super().__init__(napari_viewer, "Run inference")
        self.checkpoint = QLineEdit(checkpoint or "")
        self.checkpoint.setPlaceholderText("a .pt checkpoint from napari-higt train")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse_checkpoint)
        self.extractor = QLabel()
        self.extractor.setWordWrap(True)
        self.extractor.setToolTip("The feature extractor the checkpoint was trained on")
        self.model_file = QLineEdit()
        self.model_file.setToolTip("The extractor's weights (cnn) or H-MGDM encoder (hmgdm) "
                                   "file, needed when the slide's features are computed")
        model_browse = QPushButton("…")
        model_browse.clicked.connect(self._browse_model_file)
        self.device = QComboBox()
        self.device.addItems(["auto", *available_devices()])
        self.device.setToolTip("auto = the first of: " + ", ".join(available_devices()))
        self.features_dir = QLineEdit()
        self.features_dir.setPlaceholderText("<slide folder>/features")
        self.prediction = QLabel("No prediction yet.")
        self.prediction.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Checkpoint", path_row(self.checkpoint, browse))
        form.addRow("Extractor", self.extractor)
        self.card = QLabel()
        self.card.setWordWrap(True)
        form.addRow("Model", self.card)
        form.addRow("Weights / encoder", path_row(self.model_file, model_browse))
        form.addRow("Device", self.device)
        form.addRow("Features", self.features_dir)
        self.next_button = next_step_button(self, "Inference")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self._controls())
        layout.addWidget(self.prediction)
        layout.addWidget(self.next_button)
        layout.addStretch(1)
        #: The background warm-up of the chosen checkpoint's model (`inference.warm`):
        #: running or not, and the seconds the last one took.
        self.warming = False
        self.warmup_seconds: float | None = None
        self._warmed: set[tuple] = set()
        self.run_button.clicked.connect(self.run)
        self.result: InferenceResult | None = None
        #: The checkpoint's extractor name (None until a readable checkpoint is chosen).
        self.checkpoint_extractor: str | None = None
        self._stale: set[str] = set()  # feature files whose cached scores do not fit
        self.checkpoint.textChanged.connect(self._checkpoint_changed)
        self._checkpoint_changed(self.checkpoint.text())
        hooks = ((self.viewer.layers.events.inserted, self._on_inserted),
                 (self.viewer.layers.selection.events.active, self._on_active))
        for emitter, callback in hooks:
            emitter.connect(callback)
        # The viewer outlives a closed dock widget: stop its events reaching a deleted one.
        self.destroyed.connect(lambda *_: [emitter.disconnect(cb) for emitter, cb in hooks])
        follow_slide(self.viewer, self, self.show_selected)
        # Slides opened before this widget existed (the workbench opens the slide first).
        for layer in list(self.viewer.layers):
            self._show_cached_later(layer)
        self.show_selected()

    def _browse_checkpoint(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Checkpoint", "", "PyTorch (*.pt *.pth);;All (*)")
        if f:
            self.checkpoint.setText(f)

    def _browse_model_file(self) -> None:
        what = MODEL_FILE_OPTION.get(self.checkpoint_extractor or "", "model")
        f, _ = QFileDialog.getOpenFileName(self, f"Extractor {what} file", "",
                                           "PyTorch (*.pt *.pth);;All (*)")
        if f:
            self.model_file.setText(f)

    def _checkpoint_changed(self, text: str) -> None:
        """Read the extractor of the checkpoint at ``text`` (when it is a file)."""
        from napari_higt.inference import checkpoint_extractor
        from napari_higt.inference.checkpoint import load_checkpoint

        self.checkpoint_extractor = None
        self._show_card(None)
        path = Path(text.strip()).expanduser() if text.strip() else None
        if path is None or not path.is_file():
            self.extractor.setText("(choose a checkpoint)")
        else:
            try:
                ck = load_checkpoint(path)
                name, dim = checkpoint_extractor(ck)
            except (UserFacingError, KeyError, TypeError, ValueError) as exc:
                # Typing a path passes through other files; say why, Run will refuse it.
                self.extractor.setText(f"(not a usable checkpoint: {exc})")
            else:
                self.checkpoint_extractor = name
                self.extractor.setText(f"{name} ({dim} features)")
                self._show_card(model_card(ck))
        if self.checkpoint_extractor is not None:
            self._warm_up(path)
        option = MODEL_FILE_OPTION.get(self.checkpoint_extractor or "")
        self.model_file.setEnabled(option is not None)
        self.model_file.setPlaceholderText(
            f"{option} file of the {self.checkpoint_extractor} extractor" if option
            else "not needed by this checkpoint's extractor")

    def _warm_up(self, path: Path) -> None:
        """Build the checkpoint's model and run it once in the background, so the first Run
        does not pay for the imports and first-call set-up (`inference.warm.warm_up`)."""
        from napari_higt.inference.warm import warm_up

        key = (str(path), path.stat().st_mtime_ns, self.device.currentText())
        if key in self._warmed:
            return
        if not self._warmed:  # and the canvas's glyphs for the score maps' titles
            warm_glyphs(self.viewer)
        self._warmed.add(key)
        self.warming = True

        # A checkpoint the model cannot be built from: Run says so, with its message.
        start_background(warm_up, str(path), key[2],
                         on_done=lambda seconds: setattr(self, "warmup_seconds", seconds),
                         on_finished=lambda: setattr(self, "warming", False))

    def _show_card(self, card) -> None:
        """The model card's headline in the Model row, the whole card as its tooltip."""
        if card is None:
            self.card.setText("")
            self.card.setToolTip("")
            return
        head = escape(card.headline())
        self.card.setText(f"<b>{head}</b>" if card.demonstration or not card.known else head)
        self.card.setToolTip("\n".join(card.lines()[1:]))

    def extractor_config(self, slide=None) -> dict | None:
        """Settings of the checkpoint's extractor; None, after a warning, if its file is missing
        and ``slide`` has no features of that extractor to reuse."""
        from napari_higt.inference import cached_features

        option = MODEL_FILE_OPTION.get(self.checkpoint_extractor or "")
        if option is None:
            return {}
        text = self.model_file.text().strip()
        if not text and slide is not None and cached_features(
                slide.path, self.features_folder(slide), self.checkpoint_extractor):
            return {}  # run_inference reuses them and says so
        if not text or not Path(text).expanduser().is_file():
            show_warning(
                f"This checkpoint was trained on '{self.checkpoint_extractor}' features: choose "
                f"the extractor's {option} file in 'Weights / encoder' (the … button); it is "
                "needed to compute the slide's features"
                + (f" (not found: {text})." if text else "."))
            return None
        return {option: str(Path(text).expanduser())}

    def features_folder(self, slide) -> Path:
        """The chosen folder, else ``<slide folder>/features``."""
        return features_folder(self.features_dir.text(), slide)

    def run(self) -> bool:
        """Start inference on the selected slide (False, with a notification, if it can't)."""
        from napari_higt.inference import run_inference

        if self._busy("Inference"):
            return False
        ckpt = self.checkpoint.text().strip()
        if not ckpt or not Path(ckpt).is_file():
            show_warning("Choose a checkpoint file first (the … button); "
                         f"{'not found: ' + ckpt if ckpt else 'none is set'}.")
            return False
        sel = self._selected_slide()
        if sel is None:
            return False
        layer, slide = sel
        config = self.extractor_config(slide)
        if config is None:
            return False
        path, mpp = slide.path, (slide.mpp[0] if slide.mpp else None)
        out_dir = self.features_folder(slide)
        device = self.device.currentText()
        stages = {"features": 0, "model": 1}

        def work(progress, cancelled):
            # Two stages on one bar: features fill the first half, the model the second.
            def report(stage, done, total):
                progress(stages[stage] * 1000 + int(1000 * done / max(total, 1)), 2000)

            result = run_inference(path, ckpt, out_dir, mpp=mpp, device=device,
                                   extractor_config=config, progress=report, cancel=cancelled)
            # The maps here, in the worker: the GUI thread only hands them to napari.
            return prepare_result_paint(result, path, dims)

        dims = slide.dimensions
        return self._start(work, lambda r: self._show(layer, r), "Inference")

    def _show(self, layer, paint: ResultPaint) -> None:
        result = paint.result
        self._show_prediction(result, f"on {result.device}; features "
                              f"{result.timings.get('features', 0):.1f} s, model "
                              f"{result.timings.get('model', 0):.1f} s")
        self.status.setText("Done.")
        for _ in iter_paint_result(self.viewer, layer, paint):
            yield  # one layer (or notification) per event-loop turn (`WorkerWidget`)
        mark_done(self.next_button)
        for note in result.notes:
            show_warning(note)
            yield
        for warning in result.warnings:
            show_warning(f"{result.slide_id}: {warning}")
            yield
        show_info(f"{result.slide_id}: "
                  f"{prediction_text(result.pred, result.probs[result.pred], result.card)}")

    def _show_prediction(self, result: InferenceResult, how: str) -> None:
        self.result = result
        probs = ", ".join(f"{c}: {p:.2f}" for c, p in
                          sorted(result.probs.items(), key=lambda kv: -kv[1]))
        card = result.card
        lines = [f"<b>{escape(result.slide_id)}: {escape(result.pred)}</b> ({escape(probs)})"]
        if card is not None:  # what the model is, next to what it says
            head = escape(card.headline())
            lines.append(f"<b>{head}</b>" if card.demonstration or not card.known else head)
            if card.metrics_text():
                lines.append(f"validation: {escape(card.metrics_text())}")
        lines += [f"<span style='color:#d84315'><b>WARNING</b>: {escape(w)}</span>"
                  for w in result.warnings]
        lines.append(f"{result.graph.num_nodes} nodes {escape(how)}")
        self.prediction.setText("<br>".join(lines))

    # ------------------------------------------------------------ cached results
    def _on_inserted(self, event) -> None:
        self._show_cached_later(event.value)

    def _on_active(self, event=None) -> None:
        self._show_cached_later(self.viewer.layers.selection.active)

    def _show_cached_later(self, layer) -> None:
        if layer is not None and layer.metadata.get("higt_role") == "slide":
            # Once napari has finished adding / selecting the layer: painting adds and
            # selects layers of its own, which must not nest inside that event.
            QTimer.singleShot(0, lambda: self.show_cached(layer))

    def show_cached(self, layer) -> bool:
        """Paint the results an earlier run cached for ``layer``'s slide, if any.

        The file is read and the maps computed in the background; True when that started.
        Nothing happens when the layer already shows a result (this one or a fresh run's),
        when it left the viewer, while a run is going on, or when the file is known not to
        fit (warned once).
        """
        slide = slide_of_layer(layer)
        if (slide is None or layer not in self.viewer.layers or RESULT_KEY in layer.metadata
                or self.running):
            return False
        path = self.features_folder(slide) / f"{slide.slide_id}.h5"
        if str(path) in self._stale or not path.is_file():
            return False
        slide_path, dims = slide.path, slide.dimensions

        def work(progress, cancelled):
            try:
                return load_and_prepare(path, slide_path, dims)
            except (UserFacingError, OSError) as exc:  # stale scores, or an unreadable file
                return exc

        return self._start(work, lambda out: self._cached_done(layer, path, out),
                           "Reading cached results")

    def _cached_done(self, layer, path: Path, out) -> None:
        if isinstance(out, Exception):
            self._stale.add(str(path))  # warn once, not at every selection of the slide
            self.status.setText("")
            show_warning(f"{path.name}: cached results not shown: {out}")
            return
        if out is None or layer not in self.viewer.layers or RESULT_KEY in layer.metadata:
            self.status.setText("")
            return
        for _ in iter_paint_result(self.viewer, layer, out):
            yield
        self._show_prediction(out.result, f"(cached in {path.name}, not rerun)")
        self.status.setText("Cached results shown; Run to compute them again.")
        mark_done(self.next_button)

    def show_selected(self) -> None:
        """The prediction text follows the selected slide: its result, or none yet."""
        layer = find_slide_layer(self.viewer)
        slide = slide_of_layer(layer)
        result = layer.metadata.get(RESULT_KEY) if layer is not None else None
        if result is not None:
            if result is not self.result:
                self._show_prediction(result, "(shown on the slide)")
            mark_done(self.next_button)
        elif slide is not None:
            self.result = None
            self.prediction.setText(f"No prediction for <b>{slide.slide_id}</b> yet: press "
                                    "Run inference.")
            mark_done(self.next_button, False)
