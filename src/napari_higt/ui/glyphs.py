"""Text glyphs drawn ahead of need, while the viewer is idle.

napari draws the canvas's text (scale bar, colour bars, layer titles) from a glyph atlas it
fills on first use: each new character costs the GUI thread about 10 ms (its signed
distance field is computed in Python) inside the draw that first shows it. A score map's
title and colour bar bring some thirty characters the scale bar never used, so the first
inference of a session froze the viewer 200-300 ms in one draw. `warm_glyphs` has those
characters drawn beforehand, a few per event-loop turn, through the canvas's own text
overlay made transparent, then puts the overlay back as it was. Only napari's public overlay
model is touched; a text overlay the user shows is left alone.
"""

from __future__ import annotations

import string
import weakref
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["WARM_CHARACTERS", "warm_glyphs", "GLYPHS_PER_TURN"]

#: What score-map titles, colour-bar ticks and slide ids are written with.
WARM_CHARACTERS = (string.ascii_letters + string.digits + string.punctuation
                   + "·µ±−–…×²")
#: Characters drawn per event-loop turn (about 10 ms each on a 2-core machine).
GLYPHS_PER_TURN = 3
#: Milliseconds between two turns: time for the canvas to draw the last batch.
TURN_MS = 50
#: What `warm_glyphs` changes on the overlay, and so puts back.
_STATE_KEYS = ("visible", "text", "color", "box")
#: The running warm-ups' timers (a timer without a Qt parent lives while referenced).
_TIMERS: set = set()


def warm_glyphs(viewer: napari.viewer.Viewer, characters: str = WARM_CHARACTERS,
                per_turn: int = GLYPHS_PER_TURN) -> bool:
    """Start drawing ``characters`` into ``viewer``'s glyph atlas, ``per_turn`` at a time.

    Returns False (and does nothing) while the canvas's text overlay is in use. The
    overlay is put back after the last batch; a user who writes in it meanwhile keeps it.
    """
    from qtpy.QtCore import QTimer

    overlay = viewer.canvas.overlays["text"]
    if overlay.visible:
        return False
    saved = {key: getattr(overlay, key) for key in _STATE_KEYS}
    batches = [characters[i:i + per_turn] for i in range(0, len(characters), per_turn)]
    ref = weakref.ref(viewer)  # no cycle back; the overlay is looked up each turn (napari
    # may replace the model object)
    timer = QTimer()
    shown = {"text": ""}

    def stop() -> None:
        timer.stop()
        _TIMERS.discard(timer)

    def turn() -> None:
        v = ref()
        ov = None if v is None else v.canvas.overlays.get("text")
        if ov is None or ov.text != shown["text"]:  # gone, or the user's text now
            stop()
            return
        if batches:
            ov.text = shown["text"] = batches.pop(0)
            return
        for key in _STATE_KEYS:
            if not np.array_equal(np.asarray(getattr(ov, key), dtype=object),
                                  np.asarray(saved[key], dtype=object)):
                setattr(ov, key, saved[key])
        stop()

    overlay.color = (0.0, 0.0, 0.0, 0.0)
    overlay.box = False
    overlay.text = ""
    overlay.visible = True
    timer.setInterval(TURN_MS)
    timer.timeout.connect(turn)
    _TIMERS.add(timer)
    timer.start()
    return True
