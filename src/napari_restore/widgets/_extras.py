"""Which panels get extras: processor name -> builder of its extra widgets.

The processors do not know the widgets (the layers point one way): the widget side keeps
this mapping. A builder takes the :class:`~.panel.ProcessorPanel` and uses only its public
extension API (see :mod:`.panel`); what it returns is kept in ``panel.extras[name]``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: processor name -> "module:function" (relative to this package), imported when a panel
#: for that processor is built.
EXTRAS: dict[str, str] = {
    "bm3d_denoise": ".bm3d_extras:build",
    "bm4d_denoise": ".bm3d_extras:build",
    "bm3d_deblur": ".bm3d_extras:build",
    "lb_clahe": ".clahe_extras:build",
    "deep_image_prior": ".dip_extras:build",
    "restore_film_grain": ".grain_extras:build",
    "timelapse_denoise": ".timelapse_extras:build",
}


def build_extras(panel: Any) -> Any:
    """Build the extras of ``panel``'s processor (if it has any); returns what the builder
    returned (also kept in ``panel.extras``)."""
    entry = EXTRAS.get(panel.spec.name)
    if entry is None:
        return None
    module, func = entry.split(":")
    extra = getattr(import_module(module, __package__), func)(panel)
    panel.extras[panel.spec.name] = extra
    return extra
