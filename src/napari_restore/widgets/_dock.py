"""What every dock widget of the package shares with the viewer: image-layer choices, and
viewer callbacks that end with the widget (the job it runs is stopped then).

:class:`ViewerLink` is used by :class:`~.panel.ProcessorPanel` (its ``connect_viewer``
hook), the compare panel and the grain-compare panel: a callback connected through it is
disconnected when the widget's Qt object is destroyed (closing the dock or the viewer), and
``alive`` turns false first, so late worker signals touch no deleted widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def image_choices(viewer: Any) -> list[tuple[str, Any]]:
    """``(name, layer)`` of the viewer's image layers (choices for layer pickers)."""
    import napari

    return [(lay.name, lay) for lay in viewer.layers if isinstance(lay, napari.layers.Image)]


class ViewerLink:
    """Viewer callbacks of one dock widget, dropped when its Qt widget ``native`` dies;
    ``on_close()`` runs first (e.g. stop the running job)."""

    def __init__(self, native: Any, on_close: Callable[[], None] | None = None) -> None:
        self.alive = True
        self._connections: list[tuple[Any, Any]] = []
        self._on_close = on_close
        native.destroyed.connect(self.close)

    def connect(self, signal: Any, callback: Any) -> None:
        """``signal.connect(callback)`` for the widget's lifetime."""
        signal.connect(callback)
        self._connections.append((signal, callback))

    def close(self, *_: Any) -> None:
        """The widget is being deleted: stop its work and disconnect every callback."""
        self.alive = False
        if self._on_close is not None:
            self._on_close()
        for signal, callback in self._connections:
            try:
                signal.disconnect(callback)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._connections.clear()


class LinkedDock:
    """Mixin of the stand-alone docks (compare, grain compare): ``_viewer``, ``_link`` (a
    :class:`ViewerLink` made with ``on_close=self._stop_job``) and ``job`` are theirs."""

    _viewer: Any
    _link: ViewerLink
    job: Any = None

    @property
    def _alive(self) -> bool:
        return self._link.alive

    def _stop_job(self) -> None:
        if self.job is not None:
            self.job.stop()

    def _images(self, _w: Any = None) -> list[tuple[str, Any]]:
        return image_choices(self._viewer)
