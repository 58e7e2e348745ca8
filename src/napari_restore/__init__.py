"""napari-restore: interactive image restoration for napari.

The public API is numpy in, numpy out (see ``docs/`` and ``shared/DESIGN.md``). Importing this
package is cheap: torch, bm3d and OpenCV are imported only when a processor runs.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._arrays import Cancelled, Progress
from .processors import REGISTRY, get_processor
from .processors.classic import classic_denoise
from .recipes import Recipe, apply_recipe

__all__ = [
    "REGISTRY",
    "Cancelled",
    "Progress",
    "Recipe",
    "__version__",
    "apply_recipe",
    "classic_denoise",
    "get_processor",
]
