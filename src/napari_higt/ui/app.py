"""The workbench: a napari viewer on a slide with the plugin's widgets docked."""

from __future__ import annotations

import os
from pathlib import Path

from napari_higt.ui.steps import STEPS, TOOLS, tab_title

__all__ = ["open_workbench", "render_workbench", "save_screenshot", "close_toasts",
           "arrange_docks"]

#: Dock widgets opened by the workbench, by their napari.yaml display name: the numbered
#: steps (`ui.steps.STEPS`) in one tab group, the ML tools in a second group below it.
DOCKED_WIDGETS: tuple[str, ...] = (tuple(name for name, *_ in STEPS)
                                   + tuple(name for name, _ in TOOLS))
#: The tab in front when the workbench opens.
FRONT_WIDGET = "Slide"
#: Width of the dock column (px): the five step titles fit unelided at a 1600 px window.
DOCK_WIDTH = 470
#: Share of the dock column's height the steps get (the ML tools the rest).
STEPS_SHARE = 0.68


def open_workbench(slide_path: str | os.PathLike | None = None, mpp: float | None = None,
                   show: bool = True, viewer=None):
    """Open (or reuse) a viewer on ``slide_path`` with the plugin's widgets docked.

    Parameters
    ----------
    slide_path : path, optional
        Slide to open; the bundled demo slide (with the demo checkpoint preselected in
        the Inference widget) when omitted, else the CMU-1 sample.
    mpp : float, optional
        Pixel size to state for slides that do not record it.
    show : bool
        Show the window (needed for screenshots: a hidden viewer renders black).
    viewer : napari.Viewer, optional
        Use this viewer instead of making one (tests pass their fixture's).

    Returns
    -------
    napari.Viewer
    """
    import napari

    from napari_higt.datasets import sample_path
    from napari_higt.ui.reader import read_slide
    from napari_higt.ui.worker import freeze_long_lived

    demo = _demo_files()
    if slide_path is None and demo is not None:
        slide_path, mpp = demo["slide"], mpp or demo["mpp"]
    path = Path(slide_path) if slide_path is not None else sample_path()
    # Open the slide before any window so that a bad file fails fast with its message.
    layers = read_slide(str(path), mpp=mpp)
    own = viewer is None
    if own:
        viewer = napari.Viewer(title="napari-higt", show=show)
    for data, kwargs, _ in layers:
        viewer.add_image(data, **kwargs)
    viewer.canvas.overlays.scale_bar.visible = True
    # Two tab groups in one dock column: eight stacked docks would leave each a sliver,
    # eight tabs in one group elide every title. The first tool starts the second group.
    first_tool = len(STEPS)
    docked = [viewer.window.add_plugin_dock_widget("napari-higt", name,
                                                   tabify=i not in (0, first_tool))
              for i, name in enumerate(DOCKED_WIDGETS)]
    docks = [d for d, _ in docked]
    inference = docked[DOCKED_WIDGETS.index("Inference")][1]
    if demo is not None and not inference.checkpoint.text():
        inference.checkpoint.setText(str(demo["checkpoint"]))
    arrange_docks(docks, first_tool)
    docks[DOCKED_WIDGETS.index(FRONT_WIDGET)].raise_()
    docks[first_tool].raise_()
    if own:  # a caller's (a test's) viewer must stay collectable
        freeze_long_lived()
    return viewer


def arrange_docks(docks: list, first_tool: int) -> None:
    """Short tab titles on top of each group, the steps' group tall, the column wide enough.

    Everything goes through Qt's public `QMainWindow` / `QDockWidget` API on the docks
    napari returned (the main window is their `window()`).
    """
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QLabel, QTabWidget

    for dock, name in zip(docks, DOCKED_WIDGETS):
        dock.setWindowTitle(tab_title(name))
        label = dock.titleBarWidget().findChild(QLabel) if dock.titleBarWidget() else None
        if label is not None:
            label.setText(tab_title(name))
    main = docks[0].window()
    main.setTabPosition(Qt.RightDockWidgetArea, QTabWidget.North)
    height = max(main.height(), 600)
    main.resizeDocks([docks[0]], [DOCK_WIDTH], Qt.Horizontal)
    main.resizeDocks([docks[0], docks[first_tool]],
                     [int(height * STEPS_SHARE), int(height * (1 - STEPS_SHARE))], Qt.Vertical)


def _demo_files() -> dict | None:
    """The bundled demo slide, its assumed scale and checkpoint, or None if not shipped."""
    import json

    from napari_higt.demo import demo_files
    from napari_higt.errors import UserFacingError

    try:
        files = demo_files()
    except UserFacingError:
        return None
    return {**files, "mpp": json.loads(files["meta"].read_text())["assumed_mpp"]}


def render_workbench(out: str | os.PathLike, slide_path=None, mpp: float | None = None,
                     size: tuple[int, int] = (1600, 1000)) -> Path:
    """Render the workbench window to a PNG (needs a display: Xvfb on a headless machine).

    Returns
    -------
    Path of the written PNG.
    """
    out = Path(out)
    viewer = open_workbench(slide_path, mpp=mpp, show=True)
    try:
        viewer.window.resize(*size)
        viewer.reset_view()
        from qtpy.QtWidgets import QApplication

        for _ in range(5):
            QApplication.processEvents()
        save_screenshot(viewer, out)
    finally:
        viewer.close()
    return out


def save_screenshot(viewer, path: str | os.PathLike) -> Path:
    """Write the whole window of a shown viewer to a PNG, without notification toasts."""
    from napari_higt.io import atomic_path

    close_toasts()
    path = Path(path)
    with atomic_path(path, keep_suffix=True) as tmp:
        viewer.screenshot(str(tmp), canvas_only=False, flash=False)
    return path


def close_toasts() -> int:
    """Close the notification toasts on screen; returns how many were closed.

    napari has no public handle on its toasts, so they are found through Qt by their class
    name (the plugin uses no private napari module).
    """
    from qtpy.QtWidgets import QApplication

    toasts = [w for w in QApplication.allWidgets()
              if type(w).__name__ == "NapariQtNotification" and w.isVisible()]
    for toast in toasts:
        toast.close()
    return len(toasts)
