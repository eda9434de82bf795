"""Inference from the dock widget on the real TCGA section, then click-to-inspect."""

import numpy as np
import pytest

from napari_higt.ui.app import save_screenshot
from napari_higt.ui.inference_widget import InferenceWidget
from napari_higt.ui.inspector_widget import InspectorWidget, node_summary
from napari_higt.ui.layers import slide_of_layer
from napari_higt.ui.results import RESULT_KEY


@pytest.fixture
def tcga_viewer(make_napari_viewer, tcga_path):
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(tcga_path), plugin="napari-higt")
    slide_of_layer(layer).set_mpp(1.0)
    from napari_higt.ui.layers import apply_slide_scale

    apply_slide_scale(viewer, slide_of_layer(layer))
    return viewer, layer


def _run(widget, qtbot):
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)


def test_run_paints_scores_and_inspector_follows_clicks(tcga_viewer, qtbot, small_checkpoint,
                                                        tmp_path):
    import shutil

    viewer, layer = tcga_viewer
    ckpt, feats = small_checkpoint
    work = tmp_path / "features"
    shutil.copytree(feats, work)  # the widget writes scores into the feature file
    w = InferenceWidget(viewer, checkpoint=str(ckpt))
    qtbot.addWidget(w)
    w.features_dir.setText(str(work))
    assert w.device.itemText(0) == "auto" and "cpu" in [w.device.itemText(i) for i in range(w.device.count())]
    _run(w, qtbot)
    assert w.last_error is None, w.last_error
    assert w.result.pred in ("normal", "tumour")
    assert sum(w.result.probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert w.result.pred in w.prediction.text()
    names = [l.name for l in viewer.layers]
    for expect in ("node_importance x10", "node_importance x5", "bi_region_to_patch x10",
                   "bi_patch_to_region x5"):
        assert any(n.endswith(expect) for n in names), names
    imp = next(l for l in viewer.layers if l.name.endswith("node_importance x10"))
    np.testing.assert_allclose(imp.scale, (128.0, 128.0))  # 512 px tiles / 4 px per tile, µm
    vals = imp.data[np.isfinite(imp.data)]
    assert vals.size and 0 <= vals.min() and vals.max() <= 1.0
    assert imp.visible and imp.colorbar.visible
    bi = next(l for l in viewer.layers if l.name.endswith("bi_region_to_patch x10"))
    lo, hi = bi.contrast_limits
    assert lo == pytest.approx(-hi)
    assert bi.colormap.name == "PiYG"

    # Screenshot of the workbench with attention painted (README).
    viewer.reset_view()
    qtbot.wait(100)
    from pathlib import Path

    out = Path(__file__).resolve().parents[2] / "docs" / "images" / "inference_widget.png"
    viewer.window.add_dock_widget(w, name="Inference")
    save_screenshot(viewer, out)

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
    assert f"node {patch}" in insp.info.text()
    sel = viewer.layers[f"{slide_of_layer(layer).slide_id} selection"]
    np.testing.assert_allclose(sel.data[0], (g.coords[patch] + 256)[::-1])
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


def test_cached_results_show_without_rerunning(make_napari_viewer, tcga_path, small_checkpoint,
                                               tmp_path, qtbot):
    import shutil

    from napari_higt.inference import run_inference
    from napari_higt.ui.results import show_cached_results

    ckpt, feats = small_checkpoint
    work = tmp_path / "f"
    shutil.copytree(feats, work)
    first = run_inference(tcga_path, ckpt, work, mpp=1.0)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tcga_path), plugin="napari-higt")
    cached = show_cached_results(viewer, layer, first.feature_path)
    assert cached.pred == first.pred
    np.testing.assert_allclose(cached.scores["node_importance"],
                               first.scores["node_importance"], rtol=1e-6)
    assert any(l.name.endswith("node_importance x10") for l in viewer.layers)


def test_bad_runs_notify_and_leave_the_gui_alive(tcga_viewer, qtbot, tmp_path, notes,
                                                 small_checkpoint):
    viewer, layer = tcga_viewer
    w = InferenceWidget(viewer)
    qtbot.addWidget(w)
    assert not w.run() and "checkpoint" in notes[-1][1]
    # A checkpoint of another feature width is refused with a clear message.
    from napari_higt.models import build_model, resolve_config
    from napari_higt.training.checkpoint import save_checkpoint

    ckpt, feats = small_checkpoint
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
