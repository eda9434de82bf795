"""Small Qt building blocks shared by the dock widgets' forms."""

from __future__ import annotations

from qtpy.QtWidgets import QHBoxLayout, QLineEdit, QPushButton, QWidget

__all__ = ["path_row"]


def path_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    """A path field with its browse (or action) button on one form row."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit)
    row.addWidget(button)
    return box
