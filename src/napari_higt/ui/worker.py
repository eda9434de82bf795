"""The base of the plugin's long-running dock widgets: one background job at a time.

`WorkerWidget` runs a job in a `napari.qt.threading` worker with a progress bar and a
Cancel button; errors become notifications (never a traceback dialog), and a widget that goes
away while its job runs (the viewer closed) stops the job cleanly.

What a job hands back is shown on the GUI thread by its ``on_done``. Adding a napari layer
costs that thread a good fraction of a second (its controls, its visual, a redraw), so an
``on_done`` that adds several is a generator: it yields after each layer and the widget
resumes it from the event loop, which keeps the viewer responsive (redraws, clicks) between
layers. The job counts as running until the generator is done.
"""

from __future__ import annotations

import atexit
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_higt.devices import import_torch_stack
from napari_higt.errors import Cancelled, UserFacingError, report_warnings
from napari_higt.ui.layers import find_slide_layer, slide_of_layer

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["WorkerWidget", "mpp_missing_message", "start_background", "freeze_long_lived"]

#: Whether `freeze_long_lived` moved the process's objects out of the garbage collector's
#: reach, and the kinds of job whose first run's leftovers were frozen since.
_FROZEN: dict = {"heap": False, "kinds": set()}


def freeze_long_lived() -> None:
    """Collect, then keep every object alive now out of later garbage collections.

    napari, Qt and vispy leave a few million long-lived objects; a full collection walks
    them all (seconds on a loaded CPU, on whichever thread allocates, holding the GIL: the
    viewer freezes). Frozen, they are never walked again. The jobs import more on first use
    in their workers (the torch stack, scipy, scikit-learn, scikit-image: ~180,000 objects
    for the torch stack alone, a 100-250 ms full collection on the GUI thread in the middle
    of painting a result), so the first run of each kind of job freezes what it left too
    (`_freeze_after`). Only for a process that owns its viewer: a caller's (a test's)
    objects must stay collectable.
    """
    import gc

    gc.collect()
    gc.freeze()
    _FROZEN["heap"] = True


def _freeze_after(kind: str) -> None:
    """Once per kind of job, where the heap is frozen: freeze what its first run left.

    A young collection first, so that the run's own cyclic garbage is not kept with it (a
    full one would hold the GIL for seconds); once per kind, not per run, so what little
    garbage is kept stays bounded.
    """
    if not _FROZEN["heap"] or kind in _FROZEN["kinds"]:
        return
    import gc

    _FROZEN["kinds"].add(kind)
    gc.collect(1)
    gc.freeze()


#: Milliseconds between two steps of a generator ``on_done``.
STEP_GAP_MS = 1


class _Job:
    """State of one background run. Held by the worker's callbacks, not by the widget, so a
    widget deleted mid-run (viewer closed) only flips ``alive`` and nothing touches it."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.worker = None
        self.alive = True
        self.painting = False  # on_done is adding layers, one event-loop turn at a time


class WorkerWidget(QWidget):
    """A dock widget running one job at a time off the GUI thread.

    Subclasses call `_start(func, on_done, what)`; ``func(progress, cancelled)`` runs in a
    `napari.qt.threading` worker, calls ``progress(done, total)`` as it goes and polls
    ``cancelled()``; its return value goes to ``on_done`` on the GUI thread.
    `UserFacingError` -> warning notification with its message;
    `napari_higt.errors.Cancelled` -> info; anything else -> error notification (one line,
    never a traceback dialog).
    """

    #: (done, total) emitted from the worker thread; Qt queues it to the GUI thread.
    progress = Signal(int, int)
    #: a `napari_higt.errors.warn_user` message of the job, shown as a warning notification.
    note = Signal(str)

    def __init__(self, napari_viewer: napari.viewer.Viewer, run_text: str):
        super().__init__()
        self.viewer = napari_viewer
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self._job: _Job | None = None
        self.last_error: str | None = None
        self.progress.connect(self._on_progress)
        self.note.connect(show_warning)
        self.cancel_button.clicked.connect(self.cancel)
        # A closure over the job holder, not self: runs when the C++ widget is destroyed.
        holder: dict[str, _Job | None] = {"job": None}
        self._holder = holder
        self.destroyed.connect(lambda *_: _abandon(holder))

    def _controls(self) -> QWidget:
        """Run / Cancel row, progress bar and status line, for the subclass's layout."""
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        return box

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self._job is not None

    @property
    def worker(self):
        """The running worker (None when idle)."""
        return self._job.worker if self._job is not None else None

    def _busy(self, what: str) -> bool:
        """True (and a notification) while a job runs: checked before a run validates its
        inputs, so a second press warns about the run, not about the inputs."""
        if self._job is None:
            return False
        show_warning(f"{what} is already running; wait for it or press Cancel.")
        return True

    def _start(self, func: Callable[[Callable, Callable], Any], on_done: Callable[[Any], None],
               what: str) -> bool:
        """Run ``func`` in the background; False (and a notification) when a job runs."""
        from napari.qt.threading import create_worker

        if self._busy(what):
            return False
        job = _Job()
        sig, note = self.progress, self.note

        def report(done: int, total: int) -> None:
            if job.alive:
                sig.emit(int(done), int(total))

        def cancelled() -> bool:
            return job.cancel.is_set()

        def warn(message: str) -> None:
            if job.alive:
                note.emit(message)

        def work():
            import_torch_stack()
            with report_warnings(warn):
                out = func(report, cancelled)
            _freeze_after(what)
            return out

        worker = create_worker(work, _start_thread=False, _ignore_errors=True)
        job.worker = worker
        worker.returned.connect(lambda result: job.alive and self._finish(job, result, on_done))
        worker.errored.connect(lambda exc: job.alive and self._fail(job, exc, what))
        worker.finished.connect(lambda: job.alive and self._release(job))
        self._job = job
        self._holder["job"] = job
        self.last_error = None
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.status.setText(f"{what}…")
        worker.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next check."""
        if self._job is not None:
            self._job.cancel.set()
            self._job.worker.quit()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling…")

    def _on_progress(self, done: int, total: int) -> None:
        if self._job is None:
            return
        self.bar.setRange(0, max(int(total), 1))
        self.bar.setValue(min(int(done), max(int(total), 1)))

    def _release(self, job: _Job) -> None:
        if self._job is job and not job.painting:
            self._job = None
            self._holder["job"] = None
            self.run_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
            if self.bar.maximum() == 0:
                self.bar.setRange(0, 1)

    def _finish(self, job: _Job, result: Any, on_done: Callable[[Any], None]) -> None:
        if job.cancel.is_set():
            self._release(job)
            self._cancelled()
            return
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        try:
            out = on_done(result)
        except UserFacingError as exc:
            self._release(job)
            self._report(str(exc), warning=True)
            return
        if inspect.isgenerator(out):
            job.painting = True
            self.cancel_button.setEnabled(False)
            self._paint_step(job, out)
        else:
            self._release(job)

    def _paint_step(self, job: _Job, steps) -> None:
        """Run ``on_done`` up to its next ``yield``, then again from the event loop."""
        if not job.alive:
            steps.close()
            return
        try:
            next(steps)
        except StopIteration:
            job.painting = False
            self._release(job)
            return
        except UserFacingError as exc:
            job.painting = False
            self._release(job)
            self._report(str(exc), warning=True)
            return
        # Not 0 ms: Qt runs a 0 ms single shot as a posted event, and posted events chain
        # ahead of timers and input, so every step would run in one turn of the loop. A
        # timer is due after those already waiting (input, redraws, other timers).
        QTimer.singleShot(STEP_GAP_MS, lambda: self._paint_step(job, steps))

    def _fail(self, job: _Job, exc: BaseException, what: str) -> None:
        self._release(job)
        if isinstance(exc, Cancelled) or job.cancel.is_set():
            self._cancelled()
        elif isinstance(exc, UserFacingError):
            self._report(str(exc), warning=True)
        else:
            self._report(f"{what} failed: {type(exc).__name__}: {exc}", warning=False)

    def _cancelled(self) -> None:
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status.setText("Cancelled; nothing was written.")
        show_info("Cancelled.")

    def _report(self, message: str, warning: bool = True) -> None:
        self.last_error = message
        self.status.setText(message)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        (show_warning if warning else show_error)(message)

    def _selected_slide(self, need_mpp: bool = True):
        """(layer, slide) of the selected slide, or None after a notification."""
        layer = find_slide_layer(self.viewer)
        slide = slide_of_layer(layer)
        if slide is None:
            show_warning("No slide selected: open a slide (File > Open, or File > Open Sample) "
                         "and select its layer.")
            return None
        if need_mpp and slide.mpp is None and slide.objective_power is None:
            show_warning(mpp_missing_message(slide))
            return None
        return layer, slide

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the running job (if any) and drop its callbacks: the widget is going away."""
        _abandon(self._holder)
        self._job = None


def _abandon(holder: dict) -> None:
    job = holder.get("job")
    if job is None:
        return
    job.alive = False
    job.cancel.set()
    try:
        job.worker.quit()
    except RuntimeError:  # the worker's Qt object is already gone
        pass
    holder["job"] = None


#: Seconds the interpreter waits at exit for background work still running.
EXIT_WAIT_S = 120.0
_exit_wait_registered = False


def start_background(func: Callable[..., Any], *args: Any,
                     on_done: Callable[[Any], None] | None = None,
                     on_finished: Callable[[], None] | None = None) -> None:
    """Run ``func(*args)`` once in a napari worker, with no progress and no Cancel (short,
    uninterruptible work such as warming a model up); errors are dropped (the foreground
    run that needs the same thing reports them), ``on_done`` gets the result and
    ``on_finished`` runs either way (both on the GUI thread).

    The process waits for such work at exit: a worker thread still importing or running
    when the interpreter tears its modules and Qt objects down fails inside superqt, and
    PyQt turns that into an abort (a viewer closed right after it opened, ``view --headless``).
    """
    from napari.qt.threading import create_worker

    def work():
        import_torch_stack()
        out = func(*args)
        _freeze_after(getattr(func, "__qualname__", "background"))
        return out

    global _exit_wait_registered
    if not _exit_wait_registered:
        _exit_wait_registered = True
        atexit.register(_wait_for_background)
    worker = create_worker(work, _start_thread=False, _ignore_errors=True)
    worker.errored.connect(lambda exc: None)
    if on_done is not None:
        worker.returned.connect(on_done)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()


def _wait_for_background() -> None:
    """At exit: the workers of napari's thread pool run to their end, last signals included
    (a foreground job was cancelled when its widget went, so it stops at its next check)."""
    from qtpy.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(int(EXIT_WAIT_S * 1000))


def mpp_missing_message(slide) -> str:
    return (f"{slide.path.name} records neither its pixel size nor its magnification: type "
            "it in the 'Pixel size' field of the Slide widget (Plugins > napari HIGT > Slide) "
            "and press 'Set scale', then try again.")
