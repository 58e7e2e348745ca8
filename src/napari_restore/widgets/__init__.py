"""napari front end: panels generated from the processor registry (one line per processor)."""

from __future__ import annotations

from .compare import ComparePanel
from .panel import ProcessorPanel, panel_factory

classic_denoise_panel = panel_factory("classic_denoise")
bm3d_denoise_panel = panel_factory("bm3d_denoise")
bm3d_deblur_panel = panel_factory("bm3d_deblur")
bm4d_denoise_panel = panel_factory("bm4d_denoise")
timelapse_denoise_panel = panel_factory("timelapse_denoise")
lb_clahe_panel = panel_factory("lb_clahe")
deep_image_prior_panel = panel_factory("deep_image_prior")
restore_film_grain_panel = panel_factory("restore_film_grain")

__all__ = ["ComparePanel", "ProcessorPanel", "bm3d_deblur_panel", "bm3d_denoise_panel",
           "bm4d_denoise_panel", "classic_denoise_panel", "deep_image_prior_panel", "lb_clahe_panel", "panel_factory",
           "restore_film_grain_panel", "timelapse_denoise_panel"]
