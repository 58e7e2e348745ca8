"""Recipes: a processor name plus its parameters, saved as JSON and replayed exactly.

A recipe is what a result layer's ``metadata["napari_restore"]`` holds. ``apply_recipe`` runs
the very same :meth:`ProcessorSpec.apply` as the dock panels, so a recipe replayed on the same
input reproduces the layer bit for bit.

A recipe stores what the user chose: an automatic choice ("auto", ``None``) stays automatic
and is resolved again for each input it is replayed on; what it resolved to when recorded
travels beside it (``resolved``), as information. Intensity parameters are in the units of
the image the recipe was recorded on (``source_dtype``): replaying them on an image of another
integer dtype is refused, since a grey level of one dtype is not a grey level of another.
Format 1 recipes (intensities as fractions of the value range) are converted when the dtype
they were recorded on is known, and refused otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _jsonio
import numpy as np

from ._arrays import CancelLike, Progress, as_image, check_cancel
from .processors.registry import get_processor

FORMAT = "napari-restore-recipe/2"
#: Format 1: intensity parameters were fractions of the image's value range.
FORMAT_1 = "napari-restore-recipe/1"
_KEYS = {"format", "processor", "params", "channel_axis", "version", "source_dtype", "resolved"}
# Provenance keys of layer metadata: accepted and ignored when building a recipe from it.
_PROVENANCE = {"source", "seconds", "target", "output", "sweep", "preview"}
# Bounds on what reaches the parameter validation (and its error messages): every processor
# parameter is a number (of at most 64 bits), a bool, a short string, null or a pair of ints.
_MAX_TEXT = 256  # characters of a string value, a processor name or a version
_MAX_ITEMS = 16  # entries of a list value
_MAX_PARAMS = 64  # parameters (names of at most 64 characters)


def _implied_format(version: Any) -> str:
    """The format of a recipe without a "format" key: layer metadata written by 0.1.x (which
    had none) is format 1; anything else is taken as the current format."""
    if isinstance(version, str) and version.split(".")[:2] == ["0", "1"]:
        return FORMAT_1
    return FORMAT


def _dtype_text(value: Any) -> str:
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"recipe source_dtype must name a numeric dtype; got {value!r:.40}") from None
    if dtype.kind not in "iuf":
        raise ValueError(f"recipe source_dtype must be an integer or float dtype; got {dtype}")
    return dtype.name


def _units(dtype: np.dtype) -> str:
    return f"grey levels of {dtype.name}" if dtype.kind in "iu" else f"{dtype.name} data units"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


#: Parameters that did not exist in format 1, with the value that behaves as format 1 did:
#: deblurring assumed periodic boundaries and did not clip, BM3D/BM4D white noise.
_FORMAT_1_BEHAVIOUR = {"boundary": "periodic", "noise_model": "white", "clip": False}


def _from_format_1(processor: str, params: Any, dtype: Any) -> Any:
    """A format-1 recipe's intensities (fractions of the value range) in the image's units.

    Known only for integer dtypes (the range was the dtype's) and for floats in [0, 1]; other
    float recipes stored fractions of their own data's range, which the recipe does not hold.
    """
    if not isinstance(params, Mapping) or not isinstance(processor, str) or len(processor) > _MAX_TEXT:
        return params  # Recipe() itself refuses these with the usual messages
    try:
        spec = get_processor(processor)
    except (TypeError, ValueError):
        return params
    known = {p.name for p in spec.params}
    # parameters added since format 1 replay as format 1 behaved
    params = {**{k: v for k, v in _FORMAT_1_BEHAVIOUR.items() if k in known}, **params}
    set_ = [k for k in spec.units if params.get(k) is not None]
    if not set_:
        return params
    src = None if dtype is None else np.dtype(dtype)
    if src is None or src.kind not in "iu":
        what = "an image of unknown dtype" if src is None else f"a {src.name} image"
        raise ValueError(
            f"this recipe (format {FORMAT_1!r}, from an older napari-restore) gives "
            f"{', '.join(set_)} in its old working units (0–1 across the full range of "
            f"{what}), which cannot be converted to the image's own units. Run it again in napari (or set "
            f"{set_[0]} to auto) and save the recipe again: saved recipes now hold "
            "intensities in grey levels / data units")
    info = np.iinfo(src)
    span = float(info.max) - float(info.min)
    out = dict(params)
    for k in set_:
        value = out[k]
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[k] = float(value) * span ** spec.units[k]
    return out


def _check_param_shapes(params: Mapping[str, Any], what: str = "params") -> None:
    """Reject parameter values no processor takes — mappings, nested or long lists, long
    strings — with an error naming the parameter, before the per-parameter validation."""
    if len(params) > _MAX_PARAMS:
        raise ValueError(f"recipe {what} has {len(params)} entries; at most {_MAX_PARAMS}")
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
    source_dtype : str or None
        dtype of the image it was recorded on: the units of its intensity parameters (grey
        levels of that dtype, or data values for floats).
    resolved : dict
        What the automatic choices resolved to when it was recorded (information only:
        replay resolves them again for each input).
    """

    processor: str
    params: dict[str, Any] = field(default_factory=dict)
    channel_axis: int | None = None
    version: str = ""
    source_dtype: str | None = None
    resolved: dict[str, Any] = field(default_factory=dict)

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
        if isinstance(self.channel_axis, np.integer):
            object.__setattr__(self, "channel_axis", int(self.channel_axis))
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
        if self.source_dtype is not None:
            object.__setattr__(self, "source_dtype", _dtype_text(self.source_dtype))
        if not isinstance(self.resolved, Mapping):
            raise TypeError(f"recipe resolved must be a mapping; got {type(self.resolved).__name__}")
        if not all(isinstance(k, str) for k in self.resolved):
            raise TypeError("recipe resolved must map parameter names to values")
        object.__setattr__(self, "resolved", dict(self.resolved))

    def check_input(self, image: Any) -> None:
        """Refuse a replay on ``image`` that would lose precision or change units.

        Intensities recorded on one integer dtype (grey levels of uint8) mean something else
        on another (uint16), and an 8-bit working depth loses the precision of deeper data.
        """
        spec = get_processor(self.processor)
        dtype = np.dtype(as_image(image).dtype)
        src = np.dtype(self.source_dtype) if self.source_dtype is not None else None
        set_intensities = [k for k in spec.units if self.params.get(k) is not None]
        if set_intensities and src is not None and src != dtype and (src.kind in "iu" or dtype.kind in "iu"):
            names = ", ".join(f"{k}={self.params[k]:g}" for k in set_intensities)
            raise ValueError(
                f"recipe {self.processor!r} gives {names} in {_units(src)}, but this image is "
                f"{dtype.name} ({_units(dtype)}): replaying it would change what the values "
                f"mean. Convert the image to {src.name}, or set {set_intensities[0]} to auto "
                "(None) or to its value in this image's units and save the recipe again")
        model = self.params.get("noise_model")
        if (isinstance(model, str) and model.startswith("poisson-gaussian(") and src is not None
                and src != dtype and (src.kind in "iu" or dtype.kind in "iu")):
            raise ValueError(
                f"recipe {self.processor!r} gives noise_model={model!r} in {_units(src)}, but "
                f"this image is {dtype.name} ({_units(dtype)}): the model's gain and bias "
                "would mean something else. Convert the image to "
                f"{src.name}, or use noise_model='poisson-gaussian' (estimated from this "
                "image) and save the recipe again")
        if self.params.get("bit_depth") == "8" and dtype != np.uint8:
            raise ValueError(
                f"recipe {self.processor!r} uses bit_depth='8' (an 8-bit working depth), but this "
                f"image is {dtype.name}: the replay would lose its precision. Use "
                "bit_depth='auto' (8-bit only for uint8 input) or '16'")

    # -- conversion ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        out = {
            "format": FORMAT,
            "processor": self.processor,
            "params": params,
            "channel_axis": self.channel_axis,
            "version": self.version,
            "source_dtype": self.source_dtype,
        }
        if self.resolved:
            out["resolved"] = _jsonable(self.resolved)
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), indent=kwargs.pop("indent", 2), **kwargs)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, dtype: Any = None) -> Recipe:
        """Build from a dict (e.g. parsed JSON or layer metadata); unknown keys are rejected.

        ``dtype``: the dtype of the image the recipe was recorded on, when the dict does not
        say (layer metadata of an older version: the layer's own dtype); it lets a format-1
        recipe be converted.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a recipe must be a JSON object; got {type(data).__name__}")
        unknown = sorted(set(data) - _KEYS - _PROVENANCE)
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ValueError(f"recipe has unknown key(s) "
                             f"{', '.join(repr(k)[:60] for k in unknown[:5])}{more}")
        fmt = data.get("format", _implied_format(data.get("version")))
        if fmt not in (FORMAT, FORMAT_1):
            raise ValueError(f"recipe format {fmt!r:.60} is not supported; expected {FORMAT!r}")
        if "processor" not in data:
            raise ValueError("recipe is missing the 'processor' key")
        version = data.get("version", "")
        if not isinstance(version, str):
            raise TypeError(f"recipe version must be a string; got {version!r:.60}")
        if len(version) > _MAX_TEXT:
            raise ValueError(f"recipe version is {len(version)} characters long; at most {_MAX_TEXT}")
        params = data.get("params", {})
        source_dtype = data.get("source_dtype", dtype)
        if fmt == FORMAT_1:
            params = _from_format_1(data["processor"], params, source_dtype)
        return cls(
            processor=data["processor"],
            params=params,
            channel_axis=data.get("channel_axis"),
            version=version,
            source_dtype=source_dtype,
            resolved=data.get("resolved") or {},
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
        data = getattr(layer, "data", None)
        dtype = getattr(data, "dtype", None) if meta.get("output") in (None, "denoised") else None
        return cls.from_dict(meta, dtype=dtype)


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
    check_cancel(cancel)
    if isinstance(recipe, str | Path):
        recipe = Recipe.load(recipe)
    elif not isinstance(recipe, Recipe):
        recipe = Recipe.from_dict(recipe)
    recipe.check_input(image)
    spec = get_processor(recipe.processor)
    return spec.apply(
        image, channel_axis=recipe.channel_axis, progress=progress, cancel=cancel,
        value_range=value_range, **recipe.params,
    )
