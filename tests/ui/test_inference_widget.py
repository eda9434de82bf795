"""Inference from the dock widget on the real TCGA section, then click-to-inspect."""

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_higt.explain.inspect import node_summary
from napari_higt.explain.registry import SCORES
from napari_higt.ui.app import save_screenshot
from napari_higt.ui.inference_widget import InferenceWidget
from napari_higt.ui.inspector_widget import InspectorWidget
from napari_higt.ui.layers import slide_of_layer
from napari_higt.ui.results import RESULT_KEY
from tests.ui.conftest import SCREENSHOTS, open_slide, shown_text


@pytest.fixture
def tcga_viewer(make_napari_viewer, tcga_path):
    viewer = make_napari_viewer(show=True)
    return viewer, open_slide(viewer, tcga_path, mpp=1.0)




def _run(widget, qtbot):
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)


def _widget(viewer, qtbot, small_checkpoint, tmp_path):
    """An Inference widget on the small checkpoint, writing into a copy of its features
    (runs store their scores in the feature file; the session's fixture stays clean)."""
    ckpt, feats = small_checkpoint
    work = tmp_path / "features"
    shutil.copytree(feats, work)
    w = InferenceWidget(viewer, checkpoint=str(ckpt))
    qtbot.addWidget(w)
    w.features_dir.setText(str(work))
    return w


def _score_layers(viewer):
    return [ly for ly in viewer.layers if ly.metadata.get("higt_role") == "score"]


def test_run_paints_scores_and_inspector_follows_clicks(tcga_viewer, qtbot, small_checkpoint,
                                                        tmp_path):
    viewer, layer = tcga_viewer
    w = _widget(viewer, qtbot, small_checkpoint, tmp_path)
    devices = [w.device.itemText(i) for i in range(w.device.count())]
    assert devices[0] == "auto" and "cpu" in devices
    # The extractor is the checkpoint's; handcrafted features need no model file.
    assert w.extractor.text() == "handcrafted (64 features)" and not w.model_file.isEnabled()
    _run(w, qtbot)
    assert w.last_error is None, w.last_error
    assert w.result.pred in ("normal", "tumour")
    assert sum(w.result.probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert w.result.pred in w.prediction.text()
    # the model card (this test checkpoint has none) and the assumed-scale warning
    assert "unknown provenance" in w.prediction.text() and "unknown provenance" in w.card.text()
    assert "WARNING" in w.prediction.text() and "stated, not read from the file" in \
        w.prediction.text()
    names = [l.name for l in viewer.layers]
    imp_name, r2p_name, p2r_name = (SCORES[k].display_name for k in (
        "node_importance", "bi_region_to_patch", "bi_patch_to_region"))
    for expect in (f"x10 {imp_name}", f"x5 {imp_name}", f"x10 {r2p_name}"):
        assert any(expect in n for n in names), names
    # one HIViT block is the last: no patch -> region messages, so no such map (not zeros)
    assert not any(p2r_name in n for n in names) and "bi_patch_to_region" not in w.result.scores
    imp = next(l for l in viewer.layers if f"x10 {imp_name}" in l.name)
    np.testing.assert_allclose(imp.scale, (128.0, 128.0))  # 512 px tiles / 4 px per tile, µm
    vals = imp.data[np.isfinite(imp.data)]
    assert vals.size and vals.min() == 0 and vals.max() == 100  # percentiles in the slide
    assert imp.visible and imp.colorbar.visible
    bi = next(l for l in viewer.layers if f"x10 {r2p_name}" in l.name)
    assert tuple(bi.contrast_limits) == (-100, 100)  # signed: 0 = no effect

    # Screenshot of the workbench with attention painted (README).
    viewer.reset_view()
    qtbot.wait(100)
    viewer.window.add_dock_widget(w, name="Inference")
    save_screenshot(viewer, SCREENSHOTS / "inference_widget.png")

    # Click-to-inspect: a click at the world position of a known patch selects it.
    insp = InspectorWidget(viewer)
    qtbot.addWidget(insp)
    result = layer.metadata[RESULT_KEY]
    g = result.graph
    patch = int(np.flatnonzero(g.level == 2)[4])
    x, y = g.coords[patch] + 100
    world = (y * 1.0, x * 1.0)
    from types import SimpleNamespace

    insp._on_click(viewer, SimpleNamespace(type="mouse_press", modifiers=(), position=world))
    assert insp.node == patch
    info = shown_text(insp.info)
    assert f"x10 node {patch} at" in info
    assert "percentile within this slide's x10 patches" in info
    assert f"{r2p_name}: " in info and "signed percentile" in info
    # The position in µm, as the canvas speaks (1 µm/px here).
    assert f"at x={g.coords[patch][0]}, y={g.coords[patch][1]} µm" in info
    # The selection outlined last, on its tile, in lines a constant 2.5 screen px wide.
    sel = viewer.layers[f"{slide_of_layer(layer).slide_id} selection"]
    rect = np.asarray(sel.data[-1])
    np.testing.assert_allclose(rect.min(0), g.coords[patch][::-1])
    np.testing.assert_allclose(rect.max(0), (g.coords[patch] + 512)[::-1])
    from napari_higt.ui.layers import camera

    assert sel.edge_width[-1] * camera(viewer).zoom == pytest.approx(2.5, rel=1e-3)
    summary = node_summary(result, patch, k=3)
    assert summary["level"] == "x10" and len(summary["top"]) == 3
    assert summary["top_by"] == "attention"  # RAConv+ layer-1 edge coefficients
    assert any(rel == "parent" for _, rel, _ in node_summary(result, patch, k=20)["top"])
    assert insp.thumbs.count() == 1 + insp.topk.value()  # the node and its top-k
    # ] / [ walk the importance ranking.
    from napari_higt.explain.inspect import ranked_nodes

    order = ranked_nodes(g, result.scores["node_importance"])
    insp.node = None
    insp.next_important()
    assert insp.node == order[0]
    insp.next_important()
    assert insp.node == order[1]
    insp.previous_important()
    assert insp.node == order[0]


def test_reopened_slide_shows_cached_results_without_rerunning(tcga_viewer, qtbot, tcga_path,
                                                              small_checkpoint, tmp_path,
                                                              monkeypatch):
    import napari_higt.inference

    viewer, _ = tcga_viewer
    w = _widget(viewer, qtbot, small_checkpoint, tmp_path)
    _run(w, qtbot)
    first = w.result
    names = sorted(ly.name for ly in _score_layers(viewer))
    assert names

    # From here on a model run would be a bug: the scores come from the feature file.
    def no_run(*args, **kwargs):
        raise AssertionError("inference ran again")

    monkeypatch.setattr(napari_higt.inference, "run_inference", no_run)
    viewer.layers.clear()
    w.prediction.setText("No prediction yet.")
    (layer,) = viewer.open(str(tcga_path), plugin="napari-higt")
    # Read and prepared in the background, painted one layer per event-loop turn.
    qtbot.waitUntil(lambda: RESULT_KEY in layer.metadata and not w.running, timeout=60_000)
    assert sorted(ly.name for ly in _score_layers(viewer)) == names
    assert not w.running and w.last_error is None
    cached = layer.metadata[RESULT_KEY]
    assert w.result is cached and cached.pred == first.pred
    assert cached.probs == pytest.approx(first.probs, abs=1e-6)
    np.testing.assert_allclose(cached.scores["node_importance"],
                               first.scores["node_importance"], rtol=1e-6)
    text = w.prediction.text()
    assert f"{cached.slide_id}: {first.pred}" in text and "cached" in text
    # Selecting the slide again does not paint twice.
    n = len(viewer.layers)
    viewer.layers.selection.active = viewer.layers[-1]
    viewer.layers.selection.active = layer
    qtbot.wait(50)
    assert len(viewer.layers) == n


def test_checkpoint_extractor_asks_for_its_model_file(tcga_viewer, qtbot, small_checkpoint,
                                                      tmp_path, notes):
    import torch

    from napari_higt.models import build_model, resolve_config
    from napari_higt.inference.checkpoint import save_checkpoint

    viewer, _ = tcga_viewer
    w = _widget(viewer, qtbot, small_checkpoint, tmp_path)
    w.features_dir.setText(str(tmp_path / "new"))  # no features yet: they must be computed
    cfg = resolve_config({"in_dim": 1024, "n_classes": 2, "hidden": 16, "n_blocks": 1})
    bogus = tmp_path / "not_a_trunk.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bogus)
    for name, option, error in (("cnn", "weights", "does not fit a densenet121 trunk"),
                                ("hmgdm", "encoder", "not an H-MGDM encoder checkpoint")):
        ckpt = save_checkpoint(tmp_path / f"{name}.pt", build_model(cfg).state_dict(), {
            "model": cfg, "class_names": ["a", "b"], "extractor": name, "in_dim": 1024})
        w.model_file.clear()
        w.checkpoint.setText(str(ckpt))  # the field's change reads the checkpoint
        assert w.extractor.text() == f"{name} (1024 features)"
        assert w.model_file.isEnabled() and option in w.model_file.placeholderText()
        # Not given, or not there: a clear warning and no run.
        assert not w.run() and not w.running
        kind, msg = notes[-1]
        assert kind == "show_warning" and f"'{name}' features" in msg and option in msg
        assert "Weights / encoder" in msg
        w.model_file.setText(str(tmp_path / "missing.pt"))
        assert not w.run() and "not found" in notes[-1][1]
        # Given: it reaches the extractor (which refuses a file that is not its model).
        w.model_file.setText(str(bogus))
        _run(w, qtbot)
        assert w.last_error and error in w.last_error and str(bogus) in w.last_error
    assert not list((tmp_path / "new").glob("*.h5"))
    # Back to a handcrafted checkpoint: no model file needed.
    w.checkpoint.setText(str(small_checkpoint[0]))
    assert w.checkpoint_extractor == "handcrafted" and not w.model_file.isEnabled()
    w.checkpoint.setText(str(tmp_path / "nothing.pt"))
    assert w.checkpoint_extractor is None and "choose a checkpoint" in w.extractor.text()


def test_features_computed_earlier_need_no_model_file(tcga_viewer, qtbot, small_checkpoint,
                                                      tmp_path, notes):
    """A slide preprocessed earlier with a model-file extractor runs without that file: the
    features of this very slide file are reused, and a note says so."""
    import h5py

    from napari_higt.inference.checkpoint import load_checkpoint, save_checkpoint

    viewer, _ = tcga_viewer
    w = _widget(viewer, qtbot, small_checkpoint, tmp_path)
    feats = tmp_path / "features" / "tcga-cr-7395-01a-01-ts1.h5"
    with h5py.File(feats, "r+") as h5:  # as if `preprocess --extractor hmgdm` had made it
        h5.attrs["extractor"] = "hmgdm"
    ck = load_checkpoint(small_checkpoint[0])
    hm = save_checkpoint(tmp_path / "hmgdm_model.pt", ck["state_dict"],
                         {**ck["config"], "extractor": "hmgdm"})
    w.checkpoint.setText(str(hm))
    assert w.checkpoint_extractor == "hmgdm" and not w.model_file.text()
    _run(w, qtbot)
    assert w.last_error is None, w.last_error
    assert any("used the hmgdm features already in" in m for _, m in notes), notes
    # Another slide file under the same name would not match: the file is required again.
    with h5py.File(feats, "r+") as h5:
        h5.attrs["source_hash"] = h5.attrs["content_hash"] = "something else"
    assert not w.run() and "'hmgdm' features" in notes[-1][1]


def test_cuda_out_of_memory_falls_back_to_cpu(tcga_viewer, qtbot, small_checkpoint, tmp_path,
                                              notes, monkeypatch):
    from napari_higt.inference import predict

    real = predict.predict_slides
    devices = []

    def oom_once(*args, device="auto", **kwargs):
        devices.append(device)
        if len(devices) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; "
                               "79.15 GiB total capacity; 77.90 GiB already allocated)")
        return real(*args, device=device, **kwargs)

    monkeypatch.setattr(predict, "predict_slides", oom_once)
    viewer, layer = tcga_viewer
    w = _widget(viewer, qtbot, small_checkpoint, tmp_path)
    assert w.device.currentText() == "auto"
    _run(w, qtbot)
    assert w.last_error is None, w.last_error
    assert devices == ["auto", "cpu"]
    assert w.result.device == "cpu" and "on cpu" in w.prediction.text()
    warnings = [m for k, m in notes if k == "show_warning"]
    assert any("ran out of memory" in m and "CPU" in m for m in warnings), notes
    assert layer.metadata[RESULT_KEY] is w.result and _score_layers(viewer)


def test_second_run_warns_and_cancel_paints_nothing(tcga_viewer, qtbot, small_checkpoint,
                                                    tmp_path, notes, monkeypatch):
    from napari_higt.explain.store import read_node_scores
    from napari_higt.inference import predict

    real = predict.predict_slides
    started = threading.Event()

    def slow(*args, cancel=None, **kwargs):
        # A long model run: it holds until the user cancels (or 60 s pass).
        started.set()
        deadline = time.monotonic() + 60
        while not cancel() and time.monotonic() < deadline:
            time.sleep(0.01)
        return real(*args, cancel=cancel, **kwargs)

    monkeypatch.setattr(predict, "predict_slides", slow)
    viewer, layer = tcga_viewer
    w = _widget(viewer, qtbot, small_checkpoint, tmp_path)
    n_layers = len(viewer.layers)
    w.run_button.click()
    qtbot.waitUntil(started.is_set, timeout=60_000)
    assert w.running and not w.run_button.isEnabled() and w.cancel_button.isEnabled()
    worker = w.worker
    assert not w.run()
    assert notes[-1][0] == "show_warning" and "already running" in notes[-1][1]
    assert w.worker is worker  # the same run goes on
    w.cancel_button.click()
    qtbot.waitUntil(lambda: not w.running, timeout=60_000)
    assert "Cancelled" in w.status.text() and ("show_info", "Cancelled.") in notes
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()
    # Nothing painted, nothing kept, nothing written into the feature file.
    assert len(viewer.layers) == n_layers and not _score_layers(viewer)
    assert RESULT_KEY not in layer.metadata and w.result is None
    slide_id = slide_of_layer(layer).slide_id
    assert read_node_scores(Path(w.features_dir.text()) / f"{slide_id}.h5") is None
    assert "No prediction" in w.prediction.text()


def test_inspector_keys_clicks_and_screenshot(tcga_viewer, qtbot, tcga_path, small_checkpoint,
                                              tmp_path):
    from qtpy.QtCore import Qt

    from napari_higt.explain.inspect import ranked_nodes
    from napari_higt.inference import run_inference
    from napari_higt.ui.results import show_result

    viewer, layer = tcga_viewer
    viewer.window.resize(1500, 950)
    ckpt, feats = small_checkpoint
    work = tmp_path / "features"
    shutil.copytree(feats, work)
    result = run_inference(tcga_path, ckpt, work, mpp=1.0)
    show_result(viewer, layer, result)
    insp = InspectorWidget(viewer)
    viewer.window.add_dock_widget(insp, name="Inspector", area="right")
    canvas = viewer.window._qt_viewer.canvas.native
    g = result.graph

    # ] / [ pressed on the canvas walk the importance ranking of the patches.
    order = ranked_nodes(g, result.scores["node_importance"], "x10")
    qtbot.keyClick(canvas, "]")
    assert insp.node == order[0]
    qtbot.keyClick(canvas, "]")
    assert insp.node == order[1]
    qtbot.keyClick(canvas, "[")
    assert insp.node == order[0]

    # A click on the canvas at the x5 level selects the region under the cursor: centre
    # the camera on a region (tile 1024 µm, shown ~200 px wide) and click the canvas centre.
    insp.level.setCurrentText("x5")
    region = int(ranked_nodes(g, result.scores["node_importance"], "x5")[0])
    size = g.patch_size["x5"]
    viewer.scene.camera.center = tuple(g.coords[region][::-1] + size / 2)  # (y, x) µm at 1 µm/px
    viewer.scene.camera.zoom = 0.2
    qtbot.wait(100)
    qtbot.mouseClick(canvas, Qt.LeftButton, pos=canvas.rect().center())
    assert insp.node == region
    assert f"x5 node {region}" in insp.info.text()
    # The region and its top-k read from the slide; its parent, the whole slide, has none.
    top = node_summary(result, region, insp.topk.value())["top"]
    assert insp.thumbs.count() == 1 + sum(g.level[j] != 0 for j, _, _ in top) >= 2
    sel = viewer.layers[f"{slide_of_layer(layer).slide_id} selection"]
    rect = np.asarray(sel.data[-1])
    np.testing.assert_allclose(rect.min(0), g.coords[region][::-1])
    np.testing.assert_allclose(rect.max(0) - rect.min(0), (size, size))

    # Screenshot: the inspector docked beside the slide, zoomed on the selection.
    viewer.scene.camera.zoom = 0.12
    qtbot.wait(200)
    save_screenshot(viewer, SCREENSHOTS / "inspector_widget.png")
    assert (SCREENSHOTS / "inspector_widget.png").stat().st_size > 10_000


def test_bad_runs_notify_and_leave_the_gui_alive(tcga_viewer, qtbot, tmp_path, notes,
                                                 small_checkpoint):
    viewer, _ = tcga_viewer
    w = InferenceWidget(viewer)
    qtbot.addWidget(w)
    assert not w.run() and "checkpoint" in notes[-1][1]
    # A checkpoint of another feature width is refused with a clear message.
    from napari_higt.models import build_model, resolve_config
    from napari_higt.inference.checkpoint import save_checkpoint

    ckpt, _ = small_checkpoint
    cfg = resolve_config({"in_dim": 1024, "n_classes": 2, "hidden": 16, "n_blocks": 1})
    other = save_checkpoint(tmp_path / "other.pt", build_model(cfg).state_dict(), {
        "model": cfg, "class_names": ["a", "b"], "extractor": "handcrafted", "in_dim": 1024})
    w.checkpoint.setText(str(other))
    w.features_dir.setText(str(tmp_path / "feats"))
    _run(w, qtbot)
    assert w.last_error and "1024" in w.last_error
    # No slide selected.
    viewer.layers.clear()
    w.checkpoint.setText(str(ckpt))
    assert not w.run() and "No slide" in notes[-1][1]
