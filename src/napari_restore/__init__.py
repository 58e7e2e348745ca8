"""napari-restore: interactive image restoration for napari.

The public API is numpy in, numpy out (see ``docs/`` and the README). Importing this
package is cheap: torch, bm3d and OpenCV are imported only when a processor runs.
"""

from __future__ import annotations

__version__ = "0.2.0"

from ._arrays import Cancelled, Progress
from .calibration import Calibration, calibrate
from .processors import REGISTRY, get_processor
from .processors.bm3d import bm3d_deblur, bm3d_denoise, bm4d_denoise
from .processors.clahe import lb_clahe, predict_clahe_params
from .processors.classic import classic_denoise
from .processors.dip import DIPStep, DIPSummary, deep_image_prior, iter_deep_image_prior
from .processors.grain_analysis import analyze_grain, detect_grain_type
from .processors.grain_av1_synth import apply_av1_grain
from .processors.grain_profile import GrainProfile
from .processors.grain_restore import extract_grain, preserve_grain, restore_film_grain
from .processors.grain_synthesis import synthesize_grain
from .processors.timelapse import timelapse_denoise
from .processors.noise_pg import NoiseModel, estimate_noise_model
from .recipes import Recipe, apply_recipe

__all__ = [
    "REGISTRY",
    "Calibration",
    "Cancelled",
    "DIPStep",
    "DIPSummary",
    "GrainProfile",
    "NoiseModel",
    "Progress",
    "Recipe",
    "__version__",
    "analyze_grain",
    "apply_av1_grain",
    "apply_recipe",
    "bm3d_deblur",
    "bm3d_denoise",
    "bm4d_denoise",
    "calibrate",
    "classic_denoise",
    "deep_image_prior",
    "detect_grain_type",
    "estimate_noise_model",
    "extract_grain",
    "get_processor",
    "iter_deep_image_prior",
    "lb_clahe",
    "predict_clahe_params",
    "preserve_grain",
    "restore_film_grain",
    "synthesize_grain",
    "timelapse_denoise",
]
