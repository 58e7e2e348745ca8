"""Per-panel parameters remembered across restarts (JSON files in the user config dir).

The directory is ``$NAPARI_RESTORE_CONFIG_DIR`` when set, else the platform's user config dir
(``~/.config/napari-restore`` on Linux). magicgui's ``persist=True`` is not used: it breaks
widgets with layer parameters (magicgui#169).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from . import _jsonio
from .processors.registry import get_processor


def config_dir() -> Path:
    env = os.environ.get("NAPARI_RESTORE_CONFIG_DIR")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("napari-restore", appauthor=False))


def _path(name: str) -> Path:
    return config_dir() / "panels" / f"{name}.json"


def save_params(name: str, params: dict[str, Any]) -> Path | None:
    """Store validated ``params`` of processor ``name``; returns the file (None if unwritable)."""
    spec = get_processor(name)
    values = spec.validate_params(params)
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    path = _path(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def load_params(name: str) -> dict[str, Any]:
    """Remembered parameters of processor ``name`` (defaults where none or invalid)."""
    spec = get_processor(name)
    path = _path(name)
    if not path.is_file():
        return spec.defaults()
    try:
        raw = _jsonio.parse(_jsonio.read_text(path, "settings file"), "settings file")
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        known = {p.name for p in spec.params}
        return spec.validate_params({k: v for k, v in raw.items() if k in known})
    except (OSError, ValueError, TypeError) as exc:
        reason = str(exc) if len(str(exc)) <= 300 else str(exc)[:300] + "…"
        warnings.warn(f"ignoring remembered parameters in {path}: {reason}", stacklevel=2)
        return spec.defaults()
