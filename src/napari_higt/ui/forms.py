"""Small Qt building blocks shared by the dock widgets' forms."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

__all__ = ["path_row", "scroll_layout", "fit_table_rows"]


def path_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    """A path field with its browse (or action) button on one form row."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit)
    row.addWidget(button)
    return box


def scroll_layout(widget: QWidget) -> QVBoxLayout:
    """The layout to fill with a tall form: it lies in a scroll area filling ``widget``.

    A dock's minimum height is its contents'; a form that does not scroll forces the whole
    window taller than the screen once it shares the dock column with other docks.
    """
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    inner = QWidget()
    area.setWidget(inner)
    outer.addWidget(area)
    return QVBoxLayout(inner)


def fit_table_rows(table: QTableWidget, max_rows: int = 12) -> None:
    """Make ``table`` tall enough to show all its rows (up to ``max_rows``, then it scrolls)."""
    rows = min(table.rowCount(), max_rows)
    height = table.horizontalHeader().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(r) for r in range(rows))
    if table.rowCount() > max_rows:
        height += table.horizontalScrollBar().sizeHint().height()
    table.setMinimumHeight(max(height, table.horizontalHeader().height() + 30))
    table.setMaximumHeight(max(height, table.horizontalHeader().height() + 30))
