"""Versions of the libraries napari-restore stands on: for ``napari-restore info`` (the CLI)
and the recipe side files of batch runs. Below both, so that neither imports the other."""

from __future__ import annotations

import sys


def versions(lite: bool = False) -> dict[str, str]:
    """Versions of the libraries napari-restore stands on, plus the torch device.

    ``lite=True`` reads package metadata only (no torch/OpenCV import), for output metadata.
    """
    from importlib import metadata

    import numpy as np

    from . import __version__

    out = {"napari-restore": __version__, "python": sys.version.split()[0], "numpy": np.__version__}
    for dist, label in [("napari", "napari"), ("opencv-python-headless", "opencv"),
                        ("scikit-image", "scikit-image"), ("bm3d", "bm3d"), ("bm4d", "bm4d"),
                        ("torch", "torch"), ("magicgui", "magicgui"), ("dask", "dask")]:
        try:
            out[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[label] = "not installed"
    if lite:
        return out
    try:
        import cv2

        out["opencv"] = cv2.__version__
    except ImportError:
        pass
    out["torch device"] = torch_device()
    return out


def torch_device() -> str:
    try:
        import torch
    except ImportError:
        return "unavailable (torch not installed)"
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return f"cpu ({torch.get_num_threads()} threads)"
