"""Recipes: a processor name plus its parameters, saved as JSON and replayed exactly.

A recipe is what a result layer's ``metadata["napari_restore"]`` holds. ``apply_recipe`` runs
the very same :meth:`ProcessorSpec.apply` as the dock panels, so a recipe replayed on the same
input reproduces the layer bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _jsonio
from ._arrays import CancelLike, Progress
from .processors.registry import get_processor

FORMAT = "napari-restore-recipe/1"
_KEYS = {"format", "processor", "params", "channel_axis", "version"}
# Provenance keys of layer metadata: accepted and ignored when building a recipe from it.
_PROVENANCE = {"source", "seconds", "target", "output", "sweep", "preview"}
# Bounds on what reaches the parameter validation (and its error messages): every processor
# parameter is a number (of at most 64 bits), a bool, a short string, null or a pair of ints.
_MAX_TEXT = 256  # characters of a string value, a processor name or a version
_MAX_ITEMS = 16  # entries of a list value
_MAX_PARAMS = 64  # parameters (names of at most 64 characters)


def _check_param_shapes(params: Mapping[str, Any]) -> None:
    """Reject parameter values no processor takes — mappings, nested or long lists, long
    strings — with an error naming the parameter, before the per-parameter validation."""
    if len(params) > _MAX_PARAMS:
        raise ValueError(f"recipe params has {len(params)} entries; at most {_MAX_PARAMS}")
    for name, value in params.items():
        label = repr(name)[:66]
        if not isinstance(name, str) or len(name) > _MAX_PARAMS:
            raise TypeError(f"recipe has unknown parameter {label}")
        if isinstance(value, list | tuple) and len(value) > _MAX_ITEMS:
            raise ValueError(f"recipe parameter {label} has {len(value)} entries; at most {_MAX_ITEMS}")
        for v in value if isinstance(value, list | tuple) else (value,):
            if isinstance(v, Mapping | list | tuple | set | bytes):
                raise TypeError(f"recipe parameter {label} must be a number, string, boolean, null "
                                f"or a short list of those; got {type(v).__name__}")
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**63:
                raise ValueError(f"recipe parameter {label} is out of range: an integer of "
                                 f"{v.bit_length()} bits")
            if isinstance(v, str) and len(v) > _MAX_TEXT:
                raise ValueError(f"recipe parameter {label} is a string of {len(v)} characters; "
                                 f"at most {_MAX_TEXT}")


@dataclass(frozen=True)
class Recipe:
    """A saved processor run.

    Attributes
    ----------
    processor : str
        Registry name (e.g. ``"classic_denoise"``).
    params : dict
        Parameter values, validated against the processor's spec on creation.
    channel_axis : int or None
        Colour axis the recipe was recorded with (``-1`` for RGB layers).
    version : str
        napari-restore version that recorded it.
    """

    processor: str
    params: dict[str, Any] = field(default_factory=dict)
    channel_axis: int | None = None
    version: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.processor, str):
            raise TypeError(f"recipe processor must be a string; got {self.processor!r:.60}")
        if len(self.processor) > _MAX_TEXT:
            raise ValueError(f"recipe processor name is {len(self.processor)} characters long; "
                             f"at most {_MAX_TEXT}")
        if not isinstance(self.params, Mapping):
            raise TypeError(f"recipe params must be a mapping; got {type(self.params).__name__}")
        _check_param_shapes(self.params)
        spec = get_processor(self.processor)
        object.__setattr__(self, "params", spec.validate_params(dict(self.params)))
        if self.channel_axis is not None and (
            isinstance(self.channel_axis, bool) or not isinstance(self.channel_axis, int)
        ):
            raise TypeError(f"recipe channel_axis must be an int or null; got {self.channel_axis!r:.40}")
        if self.channel_axis is not None and not -32 <= self.channel_axis < 32:
            raise ValueError(f"recipe channel_axis={self.channel_axis!r:.40} is out of range; "
                             "an image has at most 32 axes")
        if not self.version:
            from . import __version__

            object.__setattr__(self, "version", __version__)

    # -- conversion ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        return {
            "format": FORMAT,
            "processor": self.processor,
            "params": params,
            "channel_axis": self.channel_axis,
            "version": self.version,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), indent=kwargs.pop("indent", 2), **kwargs)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Build from a dict (e.g. parsed JSON or layer metadata); unknown keys are rejected."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a recipe must be a JSON object; got {type(data).__name__}")
        unknown = sorted(set(data) - _KEYS - _PROVENANCE)
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ValueError(f"recipe has unknown key(s) "
                             f"{', '.join(repr(k)[:60] for k in unknown[:5])}{more}")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"recipe format {fmt!r:.60} is not supported; expected {FORMAT!r}")
        if "processor" not in data:
            raise ValueError("recipe is missing the 'processor' key")
        version = data.get("version", "")
        if not isinstance(version, str):
            raise TypeError(f"recipe version must be a string; got {version!r:.60}")
        if len(version) > _MAX_TEXT:
            raise ValueError(f"recipe version is {len(version)} characters long; at most {_MAX_TEXT}")
        return cls(
            processor=data["processor"],
            params=data.get("params", {}),
            channel_axis=data.get("channel_axis"),
            version=version,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Recipe:
        """Parse and validate a recipe; malformed or hostile JSON raises ``ValueError``."""
        return cls.from_dict(_jsonio.parse(text, "recipe"))

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        return cls.from_json(_jsonio.read_text(path, "recipe"))

    @classmethod
    def from_layer(cls, layer: Any) -> Recipe:
        """The recipe stored in a result layer's ``metadata["napari_restore"]``."""
        meta = getattr(layer, "metadata", {}).get("napari_restore")
        if meta is None:
            raise ValueError(f"layer {getattr(layer, 'name', layer)!r} carries no napari_restore recipe")
        return cls.from_dict(meta)


def apply_recipe(
    recipe: Recipe | Mapping[str, Any] | str | Path,
    image: Any,
    *,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelLike = None,
    value_range: tuple[float, float] | None = None,
) -> Any:
    """Replay ``recipe`` on ``image`` with the same code path as the dock panels.

    Parameters
    ----------
    recipe : Recipe, dict, JSON path
        The recipe; dicts (layer metadata) and file paths are converted with :class:`Recipe`.
    image : ndarray
        Input; never modified.
    progress : callable, optional
        Receives :class:`napari_restore._arrays.Progress` reports.
    cancel : threading.Event or callable, optional
        Cancels between planes.
    value_range : (float, float), optional
        For float images that are a part of a larger stack: the stack's (min, max), so the
        part is scaled exactly as the whole (see :func:`napari_restore._arrays.value_scale`).
    """
    if isinstance(recipe, str | Path):
        recipe = Recipe.load(recipe)
    elif not isinstance(recipe, Recipe):
        recipe = Recipe.from_dict(recipe)
    spec = get_processor(recipe.processor)
    return spec.apply(
        image, channel_axis=recipe.channel_axis, progress=progress, cancel=cancel,
        value_range=value_range, **recipe.params,
    )
