"""The dock widgets' job runner: results shown one step per event-loop turn."""

import time

from qtpy.QtCore import QTimer

from napari_higt.ui.worker import WorkerWidget


def test_result_steps_let_timers_and_input_run_between_them(make_napari_viewer, qtbot):
    """Each step of a generator ``on_done`` is its own turn of the event loop: a 10 ms timer
    (standing for input and redraws) fires between two steps, so the longest freeze is one
    step, not the sum of them."""
    viewer = make_napari_viewer()
    widget = WorkerWidget(viewer, "Go")
    qtbot.addWidget(widget)
    beats, ends = [], []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start()

    def show(result):
        for _ in range(result):
            t = time.perf_counter()
            while time.perf_counter() - t < 0.06:  # a step that holds the GUI thread
                pass
            ends.append(time.perf_counter())
            yield

    assert widget._start(lambda progress, cancelled: 4, show, "Stepping")
    qtbot.waitUntil(lambda: not widget.running, timeout=10_000)
    timer.stop()
    assert len(ends) == 4 and widget.last_error is None
    between = [any(a < b < c for b in beats) for a, c in zip(ends, ends[1:])]
    assert all(between), between
