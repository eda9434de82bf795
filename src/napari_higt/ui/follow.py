"""Widgets that follow the selected slide: one subscription for every way it can change.

The slide a widget acts on changes when another layer is selected, when a slide is opened
or closed, and when its scale is stated (*Set scale* rescales its layers). `follow_slide`
calls a widget's refresh on all of these, through napari's public events, and drops the
subscriptions when the widget is destroyed (the viewer outlives a closed dock widget).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from qtpy.QtWidgets import QWidget

__all__ = ["follow_slide"]


def follow_slide(viewer: napari.Viewer, owner: QWidget, refresh: Callable[[], None]) -> None:
    """Call ``refresh()`` whenever the selected slide, the open slides or a scale change."""
    alive = {"yes": True}
    watched: list = []

    def call(event=None) -> None:
        if alive["yes"]:
            refresh()

    def watch(layer) -> None:
        if layer.metadata.get("higt_role") == "slide" and layer not in watched:
            layer.events.scale.connect(call)
            watched.append(layer)

    def inserted(event) -> None:
        watch(event.value)
        call()

    def removed(event) -> None:
        if event.value in watched:
            event.value.events.scale.disconnect(call)
            watched.remove(event.value)
        call()

    for layer in viewer.layers:
        watch(layer)
    hooks = ((viewer.layers.selection.events.active, call),
             (viewer.layers.events.inserted, inserted),
             (viewer.layers.events.removed, removed))
    for emitter, callback in hooks:
        emitter.connect(callback)

    def drop(*_) -> None:
        alive["yes"] = False
        for emitter, callback in hooks:
            emitter.disconnect(callback)
        for layer in watched:
            layer.events.scale.disconnect(call)

    owner.destroyed.connect(drop)
