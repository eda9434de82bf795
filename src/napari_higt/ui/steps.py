"""The path through the workbench: numbered steps, the ML tabs apart, a button to the next.

A pathologist goes slide -> graph -> inference -> inspect -> export; the entity overlay,
cohort browser and training are tools around that path, docked in a group of their own.
Each step's widget ends with a *Next* button that brings the next step's tab forward; it is
highlighted once the step has done its work.
"""

from __future__ import annotations

from qtpy.QtWidgets import QDockWidget, QPushButton, QWidget

__all__ = ["STEPS", "TOOLS", "tab_title", "next_step_button", "raise_tab", "mark_done"]

#: The steps in order: (napari.yaml widget name, tab title, what the next button says).
STEPS: tuple[tuple[str, str, str], ...] = (
    ("Slide", "1 Slide", "check the slide and its scale"),
    ("Graph overlay", "2 Graph", "build the slide's graph"),
    ("Inference", "3 Inference", "run the model on the slide"),
    ("Inspector", "4 Inspect", "click a region to see why"),
    ("Export", "5 Export", "write the figure and QuPath files"),
)
#: The machine-learning tools, docked apart from the steps: (widget name, tab title).
TOOLS: tuple[tuple[str, str], ...] = (
    ("Entity overlay", "Entities"),
    ("Cohort browser", "Cohort"),
    ("Training", "Training"),
)
_TITLES = {name: title for name, title, *_ in STEPS} | dict(TOOLS)
_DONE_STYLE = "QPushButton { font-weight: bold; border: 2px solid #00bfa5; }"


def tab_title(widget_name: str) -> str:
    """The tab title of a docked widget (``"3 Inference"``), or its own name."""
    return _TITLES.get(widget_name, widget_name)


def raise_tab(widget: QWidget, widget_name: str) -> bool:
    """Bring the dock of ``widget_name`` in ``widget``'s window forward; False if absent.

    The dock is found through Qt by its title: the workbench's tab title, or napari's
    ``"<name> (<plugin>)"`` when the widget was opened from the Plugins menu.
    """
    window = widget.window()
    title = tab_title(widget_name)
    for dock in window.findChildren(QDockWidget):
        text = dock.windowTitle()
        if text == title or text.startswith(f"{widget_name} ("):
            dock.show()
            dock.raise_()
            return True
    return False


def next_step_button(widget: QWidget, widget_name: str) -> QPushButton | None:
    """A "Next: 3 Inference ▶" button for the step after ``widget_name`` (None: last step)."""
    names = [name for name, *_ in STEPS]
    i = names.index(widget_name)
    if i + 1 >= len(STEPS):
        return None
    name, title, hint = STEPS[i + 1]
    button = QPushButton(f"Next: {title} ▶")
    button.setToolTip(f"Go to the {title} tab: {hint}")
    button.clicked.connect(lambda: raise_tab(widget, name))
    return button


def mark_done(button: QPushButton | None, done: bool = True) -> None:
    """Highlight the next-step button once its step has done its work (or clear it)."""
    if button is not None:
        button.setStyleSheet(_DONE_STYLE if done else "")
