"""Matplotlib canvases in dock panels."""

from __future__ import annotations

from typing import Any


def draw_later(canvas: Any) -> None:
    """Redraw ``canvas`` at the next event-loop turn (coalesced, like ``draw_idle``).

    Unlike ``FigureCanvasQTAgg.draw_idle``, a panel closed before the draw runs does not raise
    "wrapped C/C++ object ... has been deleted" from inside the event loop.
    """
    from qtpy.QtCore import QTimer

    if getattr(canvas, "_napari_restore_draw_pending", False):
        return
    canvas._napari_restore_draw_pending = True

    def draw() -> None:
        canvas._napari_restore_draw_pending = False
        try:
            if canvas.width() > 0 and canvas.height() > 0:
                canvas.draw()
        except RuntimeError:  # the Qt widget was deleted meanwhile: nothing to draw on
            pass

    QTimer.singleShot(0, draw)
