"""Pure processors (numpy in, numpy out). No napari, Qt or magicgui imports here."""

from __future__ import annotations

from .registry import REGISTRY, Output, Param, ProcessorSpec, get_processor, register

_MODULES = ("classic", "bm3d", "clahe", "dip", "grain_restore", "timelapse",)


def _load_all() -> None:
    """Import every processor module so that the registry is complete (cheap: no heavy imports)."""
    import importlib

    for mod in _MODULES:
        importlib.import_module(f"{__name__}.{mod}")


_load_all()

__all__ = ["REGISTRY", "Output", "Param", "ProcessorSpec", "get_processor", "register"]
