"""Error and warning types whose message is meant for the user (CLI and viewer show it as is)."""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class UserFacingError(Exception):
    """Base of errors caused by input the user can fix; the message says how."""


class SlideError(UserFacingError):
    """A slide file cannot be used: missing, corrupt, unsupported or without a scale."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class FeatureError(UserFacingError):
    """Features or a feature file do not fit what was asked (dimension, extractor, levels)."""


class GraphError(UserFacingError):
    """A slide graph cannot be built (no tissue, no patches)."""


class CheckpointError(UserFacingError):
    """A checkpoint is unreadable or was made for another configuration."""


class StorageError(UserFacingError, OSError):
    """A file cannot be written: the disk is full, the folder read-only, or the write failed.

    Also an `OSError`, so code that catches those keeps working.
    """


class FeatureStorageError(StorageError, FeatureError):
    """A feature file cannot be written."""


class Cancelled(Exception):
    """The user cancelled a long job (preprocess, training, inference); nothing was written.

    Raised from inside the job when its cancel check answers yes; widgets show it as an
    info note, the CLI as an interruption.
    """


class HIGTWarning(UserWarning):
    """Something the user should know that does not stop the job (a skipped slide, ...)."""


_warning_handler: contextvars.ContextVar[Callable[[str], Any] | None] = contextvars.ContextVar(
    "napari_higt_warning_handler", default=None)


def short_list(items: Sequence[str], n: int = 8) -> str:
    """The first ``n`` items, comma-separated, and how many more there are: the way a
    message names files, keys or slides without running to pages."""
    s = ", ".join(items[:n])
    return s + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def warn_user(message: str) -> None:
    """Tell the user ``message``: the one way core code reports a warning.

    Inside `report_warnings` (the CLI, a widget's background job) the handler shows it: the
    CLI prints one line, a widget a warning notification. Elsewhere it is a `HIGTWarning`
    through `warnings.warn`.
    """
    handler = _warning_handler.get()
    if handler is None:
        warnings.warn(message, HIGTWarning, stacklevel=2)
    else:
        handler(str(message))


@contextlib.contextmanager
def report_warnings(handler: Callable[[str], Any]) -> Iterator[None]:
    """Route `warn_user` messages of this thread (context) to ``handler`` within the block."""
    token = _warning_handler.set(handler)
    try:
        yield
    finally:
        _warning_handler.reset(token)
