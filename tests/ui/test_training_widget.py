"""The Training widget: train on small feature files, live curves, results, cancel, bad input."""

import json
import math
import threading
from pathlib import Path

import pytest
import torch

from napari_higt.inference.checkpoint import load_checkpoint, model_from_checkpoint
from napari_higt.ui import training_widget as tw
from napari_higt.ui.training_widget import TABLE_COLUMNS, TrainingWidget
from tests.training._synth import write_feature_files
from tests.ui.conftest import SCREENSHOTS



@pytest.fixture(autouse=True)
def _one_thread():
    """The machine is shared: tiny models, one intra-op thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tnotes(notes, monkeypatch):
    """``notes`` plus the training widget's own notifications."""
    for kind in ("show_warning", "show_info"):
        monkeypatch.setattr(tw, kind, lambda msg, kind=kind: notes.append((kind, str(msg))))
    return notes


@pytest.fixture
def data(tmp_path):
    """12 small feature files (6 benign, 6 tumour) and their labels CSV."""
    return write_feature_files(tmp_path / "features", n=12)


def _setup(w, data, out, model="higt", epochs=3, batch=3):
    folder, csv = data
    w.features_dir.setText(str(folder))
    w.labels_csv.setText(str(csv))
    w.out_dir.setText(str(out))
    w.model.setCurrentText(model)
    w.hidden.setValue(16)
    w.blocks.setValue(1)
    w.epochs.setValue(epochs)
    w.folds.setValue(2)
    w.batch_size.setValue(batch)
    w.lr.setValue(5e-3)
    w.device.setCurrentText("cpu")


def _close_toasts(viewer):
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def test_train_from_the_widget(make_napari_viewer, qtbot, tnotes, data, tmp_path, cmu1_path):
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 1050)
    viewer.open(str(cmu1_path), plugin="napari-higt")
    dock, w = viewer.window.add_plugin_dock_widget("napari-higt", "Training")
    assert isinstance(w, TrainingWidget)
    assert w.device.itemText(0) == "auto"
    out = tmp_path / "run"
    # 20 slides, 5 epochs: with 12 the default protocol's inner validation split holds one
    # or two slides per fold, too few to choose an epoch that generalises.
    _setup(w, write_feature_files(tmp_path / "features20", n=20), out, epochs=5)
    w.model.setCurrentText("abmil")
    assert not w.higt_box.isEnabled() and w.model_config() == {"model": "abmil", "hidden": 16}
    w.model.setCurrentText("higt")
    assert w.higt_box.isEnabled()
    w.interaction.setCurrentText("r2p")  # two ablation switches, checked in the checkpoint
    w.fusion.setChecked(False)

    assert w.run()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert w.last_error is None, w.last_error
    res = w.result
    assert res is not None and not res.cancelled and len(res.folds) == 2

    # Results table: one row per fold, then mean ± std.
    t = w.table
    assert t.columnCount() == len(TABLE_COLUMNS) and t.rowCount() == 3
    assert [t.item(r, 0).text() for r in range(3)] == ["0", "1", "mean ± std"]
    aucs = [float(t.item(r, TABLE_COLUMNS.index("AUC")).text()) for r in range(2)]
    accs = [float(t.item(r, TABLE_COLUMNS.index("ACC")).text()) for r in range(2)]
    assert all(0.0 <= v <= 1.0 for v in aucs + accs)
    assert aucs == pytest.approx([f.auc for f in res.folds], abs=5e-4)
    mean = t.item(2, TABLE_COLUMNS.index("AUC")).text()
    assert "±" in mean and float(mean.split("±")[0]) == pytest.approx(sum(aucs) / 2, abs=1e-3)
    # The synthetic label is learnable: better than chance on average.
    assert res.summary()["auc"]["mean"] > 0.5

    # Curves got every step and every epoch of both folds, and were drawn: off the GUI
    # thread (a matplotlib draw there froze the viewer), into the label's pixels.
    qtbot.waitUntil(lambda: not w.plot.drawing, timeout=30_000)
    assert w.plot.renderer.thread not in (None, threading.get_ident())
    shown = w.canvas.pixmap().toImage()
    assert not shown.isNull() and shown.width() >= 200
    colours = {shown.pixel(x, y) for x in range(0, shown.width(), 7)
               for y in range(0, shown.height(), 7)}
    assert len(colours) > 5  # axes, text and curves, not a blank label
    assert set(w.curves) == {(0, 0), (0, 1)}
    for key, c in w.curves.items():
        steps = len(c["step_loss"])
        assert steps >= 5 and steps % 5 == 0 and all(math.isfinite(v) for v in c["step_loss"])
        assert c["epoch"] == [1, 2, 3, 4, 5] and len(c["val_auc"]) == 5
        assert len(w._lines[key]["loss"].get_xdata()) == steps
        assert len(w._lines[key]["auc"].get_ydata()) == 5
    assert w.redraws >= 1
    assert w.bar.value() == w.bar.maximum()

    # The best checkpoint: the fold with the highest validation AUC (the inner split's, not
    # the evaluation fold's), with the ablations.
    best = w.best_checkpoint
    k = max(range(2), key=lambda i: (res.folds[i].select_auc if math.isfinite(
        res.folds[i].select_auc) else -math.inf))
    assert best == out / "seed0" / f"fold{k}" / "best.pt" and best.is_file()
    assert w.checkpoint.text() == str(best) and w.use_button.isEnabled()
    cfg = load_checkpoint(best)["config"]["model"]
    assert cfg["interaction"] == "r2p" and cfg["fusion"] is False
    assert cfg["hidden"] == 16 and cfg["n_blocks"] == 1
    assert (out / "results.md").is_file() and "Done" in w.status.text()
    assert any(k == "show_info" and "AUC" in m for k, m in tnotes)

    # Screenshot of the widget in use (README).
    viewer.window._qt_window.resizeDocks([dock], [520], Qt.Horizontal)
    viewer.reset_view()
    qtbot.wait(150)
    qtbot.waitUntil(lambda: not w.plot.drawing, timeout=30_000)  # redrawn at the new width
    assert w.canvas.pixmap().deviceIndependentSize().toSize() == w.canvas.size()
    _close_toasts(viewer)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(SCREENSHOTS / "training_widget.png"), canvas_only=False, flash=False)

    # The best checkpoint goes into the Inference widget (opened when none is).
    from napari_higt.ui.inference_widget import InferenceWidget

    assert w.use_in_inference()
    (inf,) = viewer.window._qt_window.findChildren(InferenceWidget)
    assert inf.checkpoint.text() == str(best)


def test_cancel_midway_keeps_the_best_checkpoint(make_napari_viewer, qtbot, tnotes, data,
                                                  tmp_path):
    viewer = make_napari_viewer()
    w = TrainingWidget(viewer)
    qtbot.addWidget(w)
    folder, csv = data
    # Two labelled slides without feature files: skipped, with a warning.
    extra = tmp_path / "labels_extra.csv"
    extra.write_text(csv.read_text() + "gone1,benign\ngone2,tumour\n")
    out = tmp_path / "run"
    _setup(w, (folder, extra), out, model="abmil", epochs=400, batch=2)
    assert w.run()
    # A second Train while the first runs is refused.
    assert not w.run() and "already running" in tnotes[-1][1]
    qtbot.waitUntil(lambda: len(w.curves.get((0, 0), {}).get("epoch", [])) >= 2,
                    timeout=60_000)
    assert any(k == "show_warning" and "gone1" in m for k, m in tnotes)
    w.cancel_button.click()
    assert "Cancelling" in w.status.text() and not w.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)

    res = w.result
    assert res is not None and res.cancelled and res.folds == []
    status = w.status.text()
    assert status.startswith("Cancelled in fold 0") and "best checkpoint kept" in status
    assert any(k == "show_info" and "cancelled" in m for k, m in tnotes)
    assert w.last_error is None
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()
    # Stopped long before the 400 epochs, after a whole step: last.pt holds the last finished
    # epoch, best.pt the best of them, and both load.
    epochs_done = len(w.curves[(0, 0)]["epoch"])
    assert 2 <= epochs_done < 400
    fold_dir = out / "seed0" / "fold0"
    assert w.best_checkpoint == fold_dir / "best.pt" and w.best_checkpoint.is_file()
    assert w.checkpoint.text() == str(fold_dir / "best.pt")
    best = load_checkpoint(fold_dir / "best.pt")
    assert 1 <= best["state"]["epoch"] <= epochs_done
    assert load_checkpoint(fold_dir / "last.pt")["state"]["epoch"] == epochs_done
    model = model_from_checkpoint(best)
    assert model.config["model"] == "abmil"
    assert "cancelled" in (out / "results.md").read_text()
    # Nothing was added to the table: no fold finished.
    assert w.table.rowCount() == 0

    # Cancel at once (before the first step): stopped, nothing to keep, no error.
    w.out_dir.setText(str(tmp_path / "run2"))
    assert w.run()
    w.cancel()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert w.status.text().startswith("Cancelled") and w.last_error is None
    assert w.best_checkpoint is None and not w.use_button.isEnabled()
    assert not list((tmp_path / "run2").rglob("best.pt"))


def test_bad_input_gives_warnings(make_napari_viewer, qtbot, tnotes, data, tmp_path):
    viewer = make_napari_viewer()
    w = TrainingWidget(viewer)
    qtbot.addWidget(w)
    folder, csv = data
    assert not w.run() and "feature files" in tnotes[-1][1]
    w.features_dir.setText(str(tmp_path / "nowhere"))
    assert not w.run() and "not found" in tnotes[-1][1]
    w.features_dir.setText(str(folder))
    assert not w.run() and "labels CSV" in tnotes[-1][1]
    # One class only.
    one = tmp_path / "one.csv"
    one.write_text("slide_id,label\n" + "".join(f"s{i:03d},tumour\n" for i in range(12)))
    w.labels_csv.setText(str(one))
    assert not w.run()
    assert tnotes[-1][0] == "show_warning" and "only one class" in tnotes[-1][1]
    # Slide ids that match no feature file: the engine's message, as a warning.
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("slide_id,label\nx1,a\nx2,b\nx3,a\nx4,b\n")
    w.labels_csv.setText(str(unknown))
    w.device.setCurrentText("cpu")
    assert w.run()
    qtbot.waitUntil(lambda: not w.running, timeout=30_000)
    assert tnotes[-1][0] == "show_warning" and "none of the 4 slides" in tnotes[-1][1]
    assert w.last_error and w.run_button.isEnabled()
    # An output folder that already holds a run is not overwritten.
    w.labels_csv.setText(str(csv))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "run.json").write_text("{}")
    w.out_dir.setText(str(taken))
    assert not w.run() and "already holds a training run" in tnotes[-1][1]
    # Model settings the model cannot take (full attention needs hidden % 4 == 0).
    w.out_dir.setText("")
    w.hidden.setValue(18)
    w.attention.setCurrentText("full")
    assert not w.run() and "Model settings" in tnotes[-1][1] and "full_heads" in tnotes[-1][1]
    assert not w.running and w.result is None


def test_closing_the_viewer_while_training_stops_it(make_napari_viewer, qtbot, data, tmp_path):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-higt", "Training")
    out = tmp_path / "run"
    _setup(w, data, out, model="abmil", epochs=2000, batch=2)
    assert w.run()
    qtbot.waitUntil(lambda: bool(w.curves.get((0, 0), {}).get("epoch")), timeout=60_000)
    worker = w.worker
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        viewer.close()
    # The engine stopped at its next step and wrote a cancelled summary; best.pt is kept.
    res = json.loads((out / "results.json").read_text())
    assert res["cancelled"] and res["folds"] == []
    assert (out / "seed0" / "fold0" / "best.pt").is_file()
