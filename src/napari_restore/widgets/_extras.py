"""Which panels get extras: processor name -> builder of its extra widgets.

The processors do not know the widgets (the layers point one way): the widget side keeps
this mapping. A builder takes the :class:`~.panel.ProcessorPanel` and uses only its public
extension API (see :mod:`.panel`); what it returns is kept in ``panel.extras[name]``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: processor name -> "module:function" (relative to this package, or an absolute module
#: name), or a tuple of them (built in order), imported when a panel for that processor is
#: built.
EXTRAS: dict[str, str | tuple[str, ...]] = {
    "bm3d_denoise": (".bm3d_extras:build", ".noise_pg_extras:build", ".calibrate_extras:build"),
    "bm4d_denoise": (".bm3d_extras:build", ".noise_pg_extras:build", ".calibrate_extras:build"),
    "classic_denoise": (".noise_pg_extras:build", ".calibrate_extras:build"),
    "bm3d_deblur": ".bm3d_extras:build",
    "lb_clahe": ".clahe_extras:build",
    "deep_image_prior": ".dip_extras:build",
    "restore_film_grain": (".grain_extras:build", ".calibrate_extras:build"),
    "timelapse_denoise": ".timelapse_extras:build",
}


def build_extras(panel: Any) -> Any:
    """Build the extras of ``panel``'s processor (if it has any); returns what the first
    builder returned.

    What each builder returns is kept in ``panel.extras``: the first under the processor's
    name (``panel.extras["bm3d_denoise"]``), and every one under its module's name too
    (``panel.extras["bm3d_extras"]``), so several extras of one processor can be told apart.
    """
    entries = EXTRAS.get(panel.spec.name)
    if entries is None:
        return None
    if isinstance(entries, str):
        entries = (entries,)
    first = None
    for k, entry in enumerate(entries):
        module, func = entry.split(":")
        extra = getattr(import_module(module, __package__), func)(panel)
        panel.extras[module.rsplit(".", 1)[-1]] = extra
        if k == 0:
            panel.extras[panel.spec.name] = first = extra
    return first
