"""napari front end: panels generated from the processor registry (one line per processor)."""

from __future__ import annotations

from .compare import ComparePanel
from .panel import ProcessorPanel, panel_factory

classic_denoise_panel = panel_factory("classic_denoise")

__all__ = ["ComparePanel", "ProcessorPanel", "classic_denoise_panel", "panel_factory"]
