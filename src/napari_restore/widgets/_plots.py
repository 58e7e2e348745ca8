"""Matplotlib canvases in dock panels."""

from __future__ import annotations

from typing import Any

#: Height of every plot in a dock panel (px): fixed, so a plot never grows with the window
#: nor squeezes the controls above it.
PLOT_HEIGHT = 200


def plot_canvas(width_in: float = 3.6, height: int = PLOT_HEIGHT) -> tuple[Any, Any]:
    """``(canvas, figure)``: a Qt matplotlib canvas of a fixed ``height`` (pixels) for a
    dock panel (the width follows the panel)."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure
    from qtpy.QtWidgets import QSizePolicy

    dpi = 90
    fig = Figure(figsize=(width_in, height / dpi), dpi=dpi, layout="constrained")
    canvas = FigureCanvasQTAgg(fig)
    canvas.setFixedHeight(height)
    canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    return canvas, fig


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


def grain_plot(height: int = PLOT_HEIGHT) -> tuple[Any, Any, Any, Any]:
    """``(canvas, figure, nlf_axes, spectrum_axes)``: the two grain plots side by side."""
    canvas, fig = plot_canvas(height=height)
    return canvas, fig, fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)


def label_grain_axes(nlf: Any, spectrum: Any, unit: str) -> None:
    """Titles and axis labels of the two grain plots: the noise-level function (grain σ in
    ``unit`` against intensity) and the radial power spectrum."""
    nlf.set_xlabel("intensity" if unit.startswith("%") else f"intensity ({unit})", fontsize=7)
    nlf.set_ylabel(f"grain σ ({unit})", fontsize=7)
    nlf.set_title("noise-level function", fontsize=8)
    spectrum.set_xlabel("cycles / pixel", fontsize=7)
    spectrum.set_title("power spectrum", fontsize=8)
    for a in (nlf, spectrum):
        a.tick_params(labelsize=6)
    draw_later(nlf.figure.canvas)
