"""Viewer responsiveness: GUI-thread stalls of the workflow, first-run time, pan frame time.

Everything runs in one shown napari viewer (napari draws with OpenGL: on a headless machine
run it under Xvfb, where Mesa renders on the CPU, so frame times there are far above a GPU
desktop's), through the plugin's docked widgets as a user presses their buttons.

1. **GUI-thread stalls** (target: none over 200 ms). A 10 ms `QTimer` heartbeat runs on the
   GUI thread; a stall is the longest gap between two beats while a step runs, from the
   button press to the canvas having drawn its result. The viewer is the workbench of
   ``napari-higt view`` (`napari_higt.ui.app.open_workbench`) on the bundled demo slide
   (``demo_mosaic.tif`` at its assumed 2.0 µm/px) with the demo checkpoint; the steps: *Build graph*
   (features computed into a fresh folder), *Run inference* (first, and ``--repeats`` more
   over its own heatmaps), *Export* (PNG + SVG + GeoJSON + CSV), *Train* (2 folds x 3
   epochs on 12 small synthetic feature files, made here).
2. **First run** (target: model time < 2 s). Choosing a checkpoint warms its model up in the
   background (`napari_higt.inference.warm`; the workbench chooses the demo checkpoint when
   it opens); shown are that warm-up's seconds (off the GUI thread) and the model time of
   the first Run after it, beside the later Runs'.
3. **Pan frame time** (target: graph shown <= 1.5 x the slide alone). A ``--size`` px
   pyramidal slide of real tissue (``_slides.periodic_slide``) with the Graph widget's
   overlay (`napari_higt.ui.overlays.add_graph_overlay`: the patch grid raster, node dots,
   spatial and scale edges in one layer each) of about ``--nodes`` x10 patches, the project's own tiling of
   the slide's tissue with the patch side chosen to give that many. The camera centre moves
   in steps of 2 % of the view's width (a drag); a frame is the time from the camera change
   to the end of the canvas draw it triggers (median and p95 over ``--frames`` frames), with
   the graph as the overlay draws it (dots and edges only once a patch is legible, else the
   patch grid alone), the slide alone, and every graph layer forced on, at each ``--zooms``
   (1 = the whole slide in view). An untimed sweep first loads the slide tiles; the three
   are then timed in ``--rounds`` alternating rounds over the drag, so that a change in the
   machine's load during the run weighs on the ratio's two sides alike.

No private napari attribute is used: the window is sized with ``viewer.window.resize``, the
canvas size read from ``viewer.canvas.size``, and the draws counted on vispy's public
``SceneCanvas.events.draw`` (the viewer's canvas is the one vispy ``SceneCanvas`` alive).

    xvfb-run -a -s "-screen 0 1920x1200x24" python benchmarks/bench_ui.py \\
        [--size 40000] [--nodes 20000] [--frames 50] [--zooms 1 4 16] [--rounds 5]
        [--repeats 2] [--skip-pan]
"""

from __future__ import annotations

import argparse
import gc
import math
import shutil
import time

import numpy as np
from _slides import CACHE, periodic_slide

from napari_higt.ui.layers import camera

STALL_TARGET_MS = 200.0
FIRST_MODEL_TARGET_S = 2.0
PAN_TARGET_RATIO = 1.5


class DrawCounter:
    """Counts the canvas's draw events, so a frame is timed to the draw it caused."""

    def __init__(self):
        from vispy.scene import SceneCanvas

        # The workbench froze its start-up objects (`gc.freeze`), which hides them from
        # `gc.get_objects`: thaw, look, freeze again.
        # `type(o)`, not `isinstance`: isinstance reads `o.__class__`, which lazy module
        # proxies answer by importing (torch_geometric, while a worker imports it).
        gc.unfreeze()
        canvases = [o for o in gc.get_objects() if issubclass(type(o), SceneCanvas)]
        gc.freeze()
        if len(canvases) != 1:
            raise SystemExit(f"expected one vispy canvas, found {len(canvases)}")
        self.canvas = canvases[0]
        self.count = 0
        self.canvas.events.draw.connect(self._on_draw)

    def _on_draw(self, event) -> None:
        self.count += 1

    def wait_for_draw(self, since: int) -> None:
        """Return once a draw newer than ``since`` has finished (then ``glFinish``)."""
        from qtpy.QtWidgets import QApplication

        if self.count == since:
            QApplication.processEvents()
        if self.count == since:
            self.canvas.native.repaint()
        self.canvas.context.finish()


class Heartbeat:
    """A 10 ms timer on the GUI thread; the gaps between its beats are the stalls."""

    def __init__(self, interval_ms: int = 10):
        from qtpy.QtCore import QTimer

        self.beats: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))
        self.timer.start()

    def longest_gap(self, t0: float, t1: float) -> float:
        """Longest gap (s) between beats (and the window's ends) inside [t0, t1]."""
        t = np.array([t0] + [b for b in self.beats if t0 < b < t1] + [t1])
        return float(np.diff(t).max())


def settle(rounds: int = 10) -> None:
    """Let Qt and napari finish pending work (layouts, layer refreshes) before timing."""
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.01)


def wait_until(done, timeout: float = 1800.0) -> None:
    """Run Qt's event loop until ``done()`` (polled every 20 ms by a timer, so the GUI
    thread is free meanwhile; a busy loop would take the GIL from the workers)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop, timer = QEventLoop(), QTimer()
    deadline = time.perf_counter() + timeout
    timer.timeout.connect(lambda: (done() or time.perf_counter() > deadline) and loop.quit())
    timer.start(20)
    if not done():
        loop.exec_()
    timer.stop()


def press(widget, button, draws: DrawCounter, beat: Heartbeat) -> dict:
    """Press ``button`` of a `WorkerWidget`, wait for its job and the drawn result."""
    t0 = time.perf_counter()
    button.click()
    if widget.worker is None:
        raise SystemExit(f"{type(widget).__name__} did not start: {widget.last_error}")
    wait_until(lambda: not widget.running)
    if widget.last_error:
        raise SystemExit(f"{type(widget).__name__}: {widget.last_error}")
    since = draws.count
    draws.wait_for_draw(since)
    t1 = time.perf_counter()
    return {"wall": t1 - t0, "stall": beat.longest_gap(t0, t1)}


def synthetic_features(folder, n: int = 12, dim: int = 64):
    """``n`` small feature files (6 x 6 patches, half with a planted bright block) and their
    labels CSV, for the Training widget."""
    from napari_higt.features.store import FeatureStore

    folder.mkdir(parents=True, exist_ok=True)
    rows = ["slide_id,label"]
    rng = np.random.default_rng(0)
    gy, gx = np.mgrid[0:6, 0:6]
    g10 = np.column_stack([gx.ravel(), gy.ravel()])
    r = np.unique(g10 // 2, axis=0)
    for i in range(n):
        f10 = rng.normal(0, 1, (len(g10), dim)).astype(np.float32)
        if i % 2:
            f10[:4, :4] += 4.0
        par = [np.flatnonzero((g10 // 2 == v).all(1)) for v in r]
        f5 = np.stack([f10[p].mean(0) for p in par]).astype(np.float32)
        FeatureStore.write(folder / f"s{i:03d}.h5",
                           {"thumbnail": np.zeros((1, 2), np.int64), "x5": r * 1024,
                            "x10": g10 * 512},
                           {"thumbnail": f10.mean(0, keepdims=True), "x5": f5, "x10": f10},
                           attrs={"extractor": "synthetic"},
                           level_attrs={"x10": {"patch_size_level0": 512},
                                        "x5": {"patch_size_level0": 1024}})
        rows.append(f"s{i:03d},{'tumour' if i % 2 else 'benign'}")
    csv = folder.parent / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return folder, csv


# ---------------------------------------------------------------------------- the workflow
def workflow(viewer, draws: DrawCounter, beat: Heartbeat, repeats: int) -> dict:
    """Graph, inference (first and again), export and training through the docked widgets."""
    work = CACHE / "ui_workflow"
    shutil.rmtree(work, ignore_errors=True)
    docked = viewer.window.dock_widgets
    dock = {name: next(w for key, w in docked.items() if key.startswith(name))
            for name in ("Graph overlay", "Inference", "Export", "Training")}
    viewer.reset_view()
    settle()
    rows = {}
    graph = dock["Graph overlay"]
    graph.features_dir.setText(str(work / "features"))
    rows["build graph (features computed)"] = press(graph, graph.run_button, draws, beat)

    inf = dock["Inference"]
    inf.features_dir.setText(str(work / "features"))
    # The workbench chose the demo checkpoint, which started its model's warm-up.
    wait_until(lambda: not inf.warming)
    warm = inf.warmup_seconds
    runs = []
    for i in range(1 + repeats):
        r = press(inf, inf.run_button, draws, beat)
        r.update(model=inf.result.timings.get("model", math.nan),
                 features=inf.result.timings.get("features", math.nan))
        runs.append(r)
        rows["run inference (first)" if i == 0 else f"run inference (again {i})"] = r
        settle()

    exp = dock["Export"]
    exp.out_dir.setText(str(work / "export"))
    rows["export (PNG, SVG, GeoJSON, CSV)"] = press(exp, exp.run_button, draws, beat)

    tr = dock["Training"]
    folder, csv = synthetic_features(work / "train" / "features")
    tr.features_dir.setText(str(folder))
    tr.labels_csv.setText(str(csv))
    tr.out_dir.setText(str(work / "train" / "run"))
    tr.hidden.setValue(16)
    tr.blocks.setValue(1)
    tr.epochs.setValue(3)
    tr.folds.setValue(2)
    tr.batch_size.setValue(3)
    tr.device.setCurrentText("cpu")
    rows["train (2 folds x 3 epochs)"] = press(tr, tr.run_button, draws, beat)
    rows["baseline: napari adds 1 image"] = napari_floor(viewer, draws, beat)  # median of 3
    return {"rows": rows, "warm": warm, "runs": runs,
            "nodes": inf.result.graph.num_nodes}


def napari_floor(viewer, draws: DrawCounter, beat: Heartbeat, repeats: int = 3) -> dict:
    """The same measure for napari itself adding one 64 x 64 image layer and drawing it
    (the median of ``repeats`` adds): the least a step that shows a new layer can stall the
    GUI thread on this machine."""
    rows = []
    for i in range(repeats):
        settle()
        t0 = time.perf_counter()
        since = draws.count
        layer = viewer.add_image(np.random.default_rng(i).random((64, 64)), name=f"floor {i}")
        draws.wait_for_draw(since)
        t1 = time.perf_counter()
        rows.append({"wall": t1 - t0, "stall": beat.longest_gap(t0, t1)})
        viewer.layers.remove(layer)
    return sorted(rows, key=lambda r: r["stall"])[len(rows) // 2]


# ---------------------------------------------------------------------------- pan frames
def synthetic_graph(slide, n_nodes: int):
    """A hierarchical graph of about ``n_nodes`` x10 patches tiling the slide's tissue."""
    from napari_higt.graph import HierarchicalGraph
    from napari_higt.levels import TARGET_MPP
    from napari_higt.slide.tiling import tile_slide
    from napari_higt.slide.tissue import tissue_mask

    mask = tissue_mask(slide)
    tissue_px = mask.mask.sum() * mask.downsample ** 2  # level-0 px²
    patch = math.sqrt(tissue_px / n_nodes) * slide.mpp[0] / TARGET_MPP["x10"]
    tiling = tile_slide(slide, mask, patch_size=max(8, round(patch)))
    # One correction: tiles at the tissue's border are kept only above the threshold.
    patch *= math.sqrt(len(tiling.levels["x10"]) / n_nodes)
    tiling = tile_slide(slide, mask, patch_size=max(8, round(patch)))
    coords = {k: g.coords for k, g in tiling.levels.items()}
    feats = {k: g.tissue[:, None].astype(np.float32) for k, g in tiling.levels.items()}
    sizes = {k: g.size0 for k, g in tiling.levels.items()}
    return HierarchicalGraph.from_arrays(coords, feats, patch_size=sizes), tiling


def pan_path(viewer, n: int, zoom: float) -> list[tuple]:
    """Camera centres of a drag across the middle of the slide at ``zoom`` x the overview."""
    viewer.reset_view()
    camera(viewer).zoom *= zoom
    cy, cx = camera(viewer).center[-2:]
    _, w = viewer.canvas.size
    step = 0.02 * w / camera(viewer).zoom  # world units per frame
    xs = cx + (np.arange(n) - n / 2) * step
    return [(cy, float(x)) for x in xs]


def time_pan(viewer, draws: DrawCounter, path: list[tuple]) -> np.ndarray:
    """Seconds per frame along ``path``."""
    out = np.empty(len(path))
    for i, centre in enumerate(path):
        since = draws.count
        t = time.perf_counter()
        camera(viewer).center = centre
        draws.wait_for_draw(since)
        out[i] = time.perf_counter() - t
    return out


def pan_frames(viewer, draws: DrawCounter, size: int, n_nodes: int, frames: int,
               zooms: list[float], rounds: int = 5) -> tuple[dict, dict]:

    from napari_higt.graph.layout import node_tissue_fraction
    from napari_higt.ui.layers import slide_of_layer
    from napari_higt.ui.overlays import add_graph_overlay, graph_layer_data
    from napari_higt.ui.reader import read_slide

    viewer.layers.clear()
    path = periodic_slide(size)
    ((data, kwargs, _),) = read_slide(str(path))
    slide = slide_of_layer(viewer.add_image(data, **kwargs))
    t = time.perf_counter()
    graph, tiling = synthetic_graph(slide, n_nodes)
    layer_data = graph_layer_data(graph, slide, node_tissue_fraction(slide, graph))
    t_graph = time.perf_counter() - t
    t = time.perf_counter()
    graph_layers = add_graph_overlay(viewer, layer_data, slide)
    settle()
    t_layers = time.perf_counter() - t
    info = {"slide": path.name, "size": size, "mpp": slide.mpp[0],
            "x10": len(tiling.levels["x10"]), "x5": len(tiling.levels["x5"]),
            "patch_um": tiling.levels["x10"].size0 * slide.mpp[0],
            "edges": {kw["name"].split(" ·")[0]: len(values) for values, kw, kind in layer_data
                      if kind == "vectors"},
            "t_graph": t_graph, "t_layers": t_layers}
    from napari_higt.ui.screen import refresh_detail

    results = {}
    whats = ("slide only", "+ graph", "+ all forced on")
    for zoom in zooms:
        route = pan_path(viewer, frames, zoom)
        for ly in graph_layers:
            ly.visible = False
        settle()
        time_pan(viewer, draws, route)  # untimed: loads the slide tiles on the path
        times = {what: [] for what in whats}
        # As the overlay shows it (dots and edges only from a legible zoom), the slide
        # alone, and every layer forced on (what the overlay avoids when zoomed out), in
        # alternating rounds over the same drag, so that the machine's load drifting
        # during the run weighs on the three alike.
        for r in range(rounds):
            for what in whats:
                for ly in graph_layers:
                    ly.visible = what != "slide only"
                    if what == "+ graph":
                        refresh_detail(viewer, ly)
                settle()
                times[what].append(time_pan(viewer, draws, route[r::rounds]))
                if what == "+ graph":
                    info.setdefault("drawn", {})[zoom] = ", ".join(
                        ly.name.split(" ·")[0] for ly in graph_layers if ly.visible) or "none"
        for what in whats:
            results[(zoom, what)] = np.concatenate(times[what])
        for ly in graph_layers:  # the overlay's own state again
            ly.visible = True
            refresh_detail(viewer, ly)
    return info, results


# ---------------------------------------------------------------------------- report
def report_workflow(wf: dict) -> None:
    print(f"\nGUI-thread stalls on the demo slide ({wf['nodes']} graph nodes): longest gap "
          f"of a 10 ms heartbeat from the button press to the drawn result")
    print(f"{'step':<34}{'wall s':>8}{'stall ms':>10}{'vs target':>11}")
    for step, r in wf["rows"].items():
        ms = r["stall"] * 1e3
        print(f"{step:<34}{r['wall']:>8.2f}{ms:>10.0f}{ms / STALL_TARGET_MS:>10.2f}x")
    floor = wf["rows"]["baseline: napari adds 1 image"]["stall"] * 1e3
    worst = max(r["stall"] for k, r in wf["rows"].items() if not k.startswith("baseline"))
    worst *= 1e3
    print(f"longest stall: {worst:.0f} ms ({worst / STALL_TARGET_MS:.2f}x the "
          f"{STALL_TARGET_MS:g} ms target, {worst / floor:.2f}x napari's own one-layer add "
          "in this run)")
    runs = wf["runs"]
    print(f"\nFirst run: model warm-up in the background when the checkpoint was chosen "
          f"{wf['warm']:.2f} s; model time of the first Run {runs[0]['model']:.2f} s "
          f"({runs[0]['model'] / FIRST_MODEL_TARGET_S:.2f}x the {FIRST_MODEL_TARGET_S:g} s "
          "target); later Runs "
          + ", ".join(f"{r['model']:.2f}" for r in runs[1:]) + " s")


def report_pan(info: dict, pans: dict, frames: int) -> None:
    edges = ", ".join(f"{n} {k}" for k, n in info["edges"].items())
    print(f"\nPan: {info['slide']} ({info['size']} px at {info['mpp']:g} µm/px), graph of "
          f"{info['x10']} x10 patches ({info['patch_um']:.0f} µm) + {info['x5']} x5 regions, "
          f"{edges}; graph and layer data {info['t_graph']:.1f} s, layers added in "
          f"{info['t_layers']:.1f} s; {frames} frames per row")
    print(f"{'zoom':<6}{'shown':<17}{'median ms':>11}{'p95 ms':>9}{'vs slide only':>15}")
    for (zoom, what), t in pans.items():
        ms = t * 1e3
        base = np.median(pans[(zoom, "slide only")]) * 1e3
        print(f"{zoom:<6g}{what:<17}{np.median(ms):>11.1f}{np.percentile(ms, 95):>9.1f}"
              f"{np.median(ms) / base:>14.2f}x")
    for zoom, names in info.get("drawn", {}).items():
        print(f"zoom {zoom:g}: the overlay draws {names}")
    print(f"(target: '+ graph' within {PAN_TARGET_RATIO:g}x the slide alone)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=40000, help="side of the pan slide, px")
    ap.add_argument("--nodes", type=int, default=20000, help="x10 patch nodes of the graph")
    ap.add_argument("--frames", type=int, default=50, help="frames per pan")
    ap.add_argument("--zooms", type=float, nargs="+", default=[1.0, 4.0, 16.0],
                    help="zooms of the pans, times the whole-slide view")
    ap.add_argument("--rounds", type=int, default=5,
                    help="alternating rounds of the pan's three configurations")
    ap.add_argument("--repeats", type=int, default=2, help="inference Runs after the first")
    ap.add_argument("--window", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"))
    ap.add_argument("--skip-pan", action="store_true", help="only the workflow")
    ap.add_argument("--skip-workflow", action="store_true", help="only the pan")
    args = ap.parse_args()
    t_start = time.perf_counter()
    from napari_higt.ui.app import open_workbench

    # The workbench of `napari-higt view` on the demo slide, every widget docked.
    viewer = open_workbench(show=True)
    viewer.window.resize(*args.window)
    settle()
    draws = DrawCounter()
    beat = Heartbeat()
    try:
        wf = None if args.skip_workflow else workflow(viewer, draws, beat, args.repeats)
        pan = None if args.skip_pan else pan_frames(viewer, draws, args.size, args.nodes,
                                                    args.frames, args.zooms, args.rounds)
        canvas = viewer.canvas.size
        renderer = gl_renderer(draws.canvas)
    finally:
        viewer.close()
    import torch

    print(f"window {args.window[0]} x {args.window[1]}, canvas {canvas[1]} x {canvas[0]} px; "
          f"GL: {renderer}; torch CPU threads: {torch.get_num_threads()}")
    if wf is not None:
        report_workflow(wf)
    if pan is not None:
        report_pan(*pan, args.frames)
    print(f"\n(bench_ui took {time.perf_counter() - t_start:.0f} s)")


def gl_renderer(canvas) -> str:
    """The OpenGL renderer the frames were drawn with (Mesa llvmpipe = on the CPU)."""
    from vispy.gloo import gl

    canvas.set_current()
    return str(gl.glGetParameter(gl.GL_RENDERER))


if __name__ == "__main__":
    main()
