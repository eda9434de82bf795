"""Viewer responsiveness: Run to heatmaps painted, and pan frame time over a 20k-node graph.

Both in one shown napari viewer (napari draws with OpenGL: on a headless machine run it under
Xvfb, where Mesa renders on the CPU, so frame times there are far above a GPU desktop's):

1. **Run to painted** (target < 2 s): the Inference widget, docked, on the bundled demo slide
   (``demo_mosaic.tif`` at its assumed 2.0 µm/px) with the demo checkpoint. A first, untimed
   Run computes and caches the features; each timed Run goes from pressing Run to the canvas
   having drawn the new heatmap layers, on the slide without heatmaps ("first") and again
   over the last Run's ("again": its layers are replaced). The worker's own split (features,
   model) and the time from the first heatmap layer added to the drawn frame (painting) are
   shown beside it. ``--threads`` sets torch's CPU threads (default: torch's own choice).
2. **Pan frame time** (target < 50 ms): a ``--size`` px pyramidal slide of real tissue
   (``_slides.periodic_slide``) with the graph overlay of the Graph widget
   (`napari_higt.ui.overlays.add_graph_overlay`: node squares per level, spatial and scale
   edges) of about ``--nodes`` x10 patches. The patches are the project's own tiling of the
   slide's tissue (`tile_slide`), with the patch side chosen so that about ``--nodes`` of
   them fall on tissue; regions are twice that side. The camera centre moves in steps of 2 %
   of the view's width (a drag), and a frame is the time from the camera change to the end
   of the canvas draw it triggers (median and p95 over ``--frames`` frames), with the whole
   graph shown, with only its node layers or only its edge layers, and, as the baseline,
   with the graph hidden (only the slide layer drawn), at each ``--zooms`` (1 = the whole
   slide in view, all nodes on screen). An untimed sweep first loads the slide tiles on the
   path, so every row times drawing, not file reads (``bench_reader.py`` times those).

    xvfb-run -a -s "-screen 0 1920x1200x24" python benchmarks/bench_ui.py \
        [--size 40000] [--nodes 20000] [--frames 50] [--zooms 1 4] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from _slides import CACHE, periodic_slide

from napari_higt.ui.layers import camera

RUN_TARGET_S = 2.0
FRAME_TARGET_MS = 50.0


class DrawCounter:
    """Counts the canvas's draw events, so a frame is timed to the draw it caused."""

    def __init__(self, viewer):
        self.canvas = viewer.window._qt_viewer.canvas._scene_canvas
        self.count = 0
        self.canvas.events.draw.connect(self._on_draw)

    def _on_draw(self, event) -> None:
        self.count += 1

    def wait_for_draw(self, since: int) -> None:
        """Return once a draw newer than ``since`` has finished.

        A camera or layer change asks the canvas for an update, which Qt draws when it next
        processes events; when nothing was scheduled the canvas is repainted by hand, so
        every frame holds exactly one draw. ``glFinish`` then waits for the GL work.
        """
        from qtpy.QtWidgets import QApplication

        if self.count == since:
            QApplication.processEvents()
        if self.count == since:
            self.canvas.native.repaint()
        self.canvas.context.finish()


def settle(viewer, rounds: int = 10) -> None:
    """Let Qt and napari finish pending work (layouts, layer refreshes) before timing."""
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.01)


# ---------------------------------------------------------------------------- Run to painted
def press_run(widget, draws: DrawCounter, painted: list) -> dict:
    """Press Run and wait until the heatmaps are drawn; seconds of the whole and its parts."""
    from qtpy.QtCore import QEventLoop

    painted.clear()
    t0 = time.perf_counter()
    widget.run_button.click()
    # Wait as napari's own event loop would (a busy loop would take the GIL from the worker):
    # the worker's `finished` comes after `returned`, which paints.
    wait = QEventLoop()
    widget.worker.finished.connect(wait.quit)
    wait.exec_()
    if widget.last_error or not painted:
        raise SystemExit(f"the Run painted nothing: {widget.last_error}")
    draws.wait_for_draw(painted[0][1])
    t1 = time.perf_counter()
    timings = widget.result.timings
    return {"total": t1 - t0, "features": timings.get("features", math.nan),
            "model": timings.get("model", math.nan), "paint": t1 - painted[0][0]}


def time_runs(viewer, draws: DrawCounter, repeats: int) -> tuple[list[dict], int]:
    """Timed Runs of the docked Inference widget on the demo slide, after one untimed Run.

    Each repeat times a Run on the slide without heatmaps (removed beforehand, untimed: a
    slide opened with its features cached) and a Run again over them (its layers replaced).
    Returns the runs and the graph's node count.
    """
    from napari_higt.demo import demo_files
    from napari_higt.ui.reader import read_slide

    files = demo_files()
    ((data, kwargs, _),) = read_slide(str(files["slide"]), mpp=2.0)
    slide_layer = viewer.add_image(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-higt", "Inference")
    widget.checkpoint.setText(str(files["checkpoint"]))
    widget.features_dir.setText(str(CACHE / "ui_features"))
    viewer.reset_view()
    settle(viewer)
    # (time, draw count) when the first heatmap layer of a Run is added.
    # A first Run adds the heatmap layers; a Run over them updates their data in place.
    painted: list[tuple[float, int]] = []

    def mark(event=None) -> None:
        painted.append((time.perf_counter(), draws.count))

    def watch_data() -> None:
        for layer in viewer.layers:
            if layer is not slide_layer:
                layer.events.data.connect(mark)

    viewer.layers.events.inserted.connect(mark)
    press_run(widget, draws, painted)  # computes (or finds) the features, warms torch up
    runs = []
    for _ in range(repeats):
        for layer in [ly for ly in viewer.layers if ly is not slide_layer]:
            viewer.layers.remove(layer)
        settle(viewer)
        runs.append({"case": "first", **press_run(widget, draws, painted)})
        watch_data()
        settle(viewer)
        runs.append({"case": "again", **press_run(widget, draws, painted)})
        settle(viewer)
    return runs, widget.result.graph.num_nodes


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
    _, w = viewer.window._qt_viewer.canvas.size
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
               zooms: list[float]) -> tuple[dict, dict]:
    from napari.layers import Vectors

    from napari_higt.graph.layout import node_tissue_fraction
    from napari_higt.ui.layers import slide_of_layer
    from napari_higt.ui.overlays import add_graph_overlay
    from napari_higt.ui.reader import read_slide

    viewer.layers.clear()
    path = periodic_slide(size)
    ((data, kwargs, _),) = read_slide(str(path))
    slide = slide_of_layer(viewer.add_image(data, **kwargs))
    t = time.perf_counter()
    graph, tiling = synthetic_graph(slide, n_nodes)
    t_graph = time.perf_counter() - t
    t = time.perf_counter()
    graph_layers = add_graph_overlay(viewer, graph, slide, node_tissue_fraction(slide, graph))
    settle(viewer)
    t_layers = time.perf_counter() - t
    info = {"slide": path.name, "size": size, "mpp": slide.mpp[0],
            "x10": len(tiling.levels["x10"]), "x5": len(tiling.levels["x5"]),
            "patch_um": tiling.levels["x10"].size0 * slide.mpp[0],
            "edges": {ly.name.split(" ", 1)[1]: len(ly.data) for ly in graph_layers
                      if isinstance(ly, Vectors)},
            "t_graph": t_graph, "t_layers": t_layers}
    nodes = [ly for ly in graph_layers if not isinstance(ly, Vectors)]
    edges = [ly for ly in graph_layers if isinstance(ly, Vectors)]
    shown = {"slide only": [], "+ nodes": nodes, "+ edges": edges, "+ graph": graph_layers}
    results = {}
    for zoom in zooms:
        route = pan_path(viewer, frames, zoom)
        for what, layers in shown.items():
            for ly in graph_layers:
                ly.visible = ly in layers
            settle(viewer)
            if what == "slide only":
                time_pan(viewer, draws, route)  # untimed: loads the slide tiles on the path
            results[(zoom, what)] = time_pan(viewer, draws, route)
    return info, results


def main() -> None:
    import napari

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=40000, help="side of the pan slide, px")
    ap.add_argument("--nodes", type=int, default=20000, help="x10 patch nodes of the graph")
    ap.add_argument("--frames", type=int, default=50, help="frames per pan")
    ap.add_argument("--zooms", type=float, nargs="+", default=[1.0, 4.0],
                    help="zooms of the pans, times the whole-slide view")
    ap.add_argument("--repeats", type=int, default=3, help="timed Runs")
    ap.add_argument("--window", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"))
    ap.add_argument("--threads", type=int, help="torch CPU threads for the model")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    viewer = napari.Viewer(title="bench_ui", show=True)
    viewer.window._qt_window.resize(*args.window)
    draws = DrawCounter(viewer)
    try:
        runs, n_nodes = time_runs(viewer, draws, args.repeats)
        info, pans = pan_frames(viewer, draws, args.size, args.nodes, args.frames, args.zooms)
        canvas = viewer.window._qt_viewer.canvas.size
        renderer = gl_renderer(draws.canvas)
    finally:
        viewer.close()

    print(f"window {args.window[0]} x {args.window[1]}, canvas {canvas[1]} x {canvas[0]} px; "
          f"GL: {renderer}; torch CPU threads: {torch.get_num_threads()}")
    print(f"\nRun -> heatmaps painted: demo slide ({n_nodes} graph nodes), features "
          "cached; first = no heatmaps shown yet, again = over the last Run's heatmaps")
    print(f"{'case':<7}{'total s':>9}{'features s':>12}{'model s':>9}{'painting s':>12}")
    for r in runs:
        print(f"{r['case']:<7}{r['total']:>9.2f}{r['features']:>12.2f}{r['model']:>9.2f}"
              f"{r['paint']:>12.2f}")
    for case in ("first", "again"):
        med = float(np.median([r["total"] for r in runs if r["case"] == case]))
        print(f"median {case}: {med:.2f} s, {med / RUN_TARGET_S:.2f}x the target "
              f"({RUN_TARGET_S:g} s)")

    edges = ", ".join(f"{n} {k}" for k, n in info["edges"].items())
    print(f"\nPan: {info['slide']} ({info['size']} px at {info['mpp']:g} µm/px), graph of "
          f"{info['x10']} x10 patches ({info['patch_um']:.0f} µm) + {info['x5']} x5 regions, "
          f"{edges}; graph built in {info['t_graph']:.1f} s, overlay added in "
          f"{info['t_layers']:.1f} s; {args.frames} frames per row")
    print(f"{'zoom':<6}{'shown':<15}{'median ms':>11}{'p95 ms':>9}{'vs slide only':>15}"
          f"{'vs target':>11}")
    for (zoom, what), t in pans.items():
        ms = t * 1e3
        base = np.median(pans[(zoom, "slide only")]) * 1e3
        print(f"{zoom:<6g}{what:<15}{np.median(ms):>11.1f}{np.percentile(ms, 95):>9.1f}"
              f"{np.median(ms) / base:>14.2f}x{np.median(ms) / FRAME_TARGET_MS:>10.2f}x")
    print(f"(target: run < {RUN_TARGET_S:g} s, pan frame < {FRAME_TARGET_MS:g} ms; "
          "'vs target' = median / target)")


def gl_renderer(canvas) -> str:
    """The OpenGL renderer the frames were drawn with (Mesa llvmpipe = on the CPU)."""
    from vispy.gloo import gl

    canvas.set_current()
    return str(gl.glGetParameter(gl.GL_RENDERER))


if __name__ == "__main__":
    main()
