"""Learning-based CLAHE (after Campos et al. 2019): CLAHE whose clip limit and tile grid are
predicted from image features by a small regression model shipped with the package, in the
CIE L*a*b*, HSV or RGB colour space, with optional guided-filter refinement.

* :mod:`.clahe_features` documents the features; :mod:`.clahe_training` builds the training
  data, the target grid and the objective; ``scripts/train_lb_clahe.py`` fits the model and
  writes ``data/lb_clahe_model.json`` (plain numbers: no pickle), which is evaluated here in
  numpy.
* :mod:`.clahe_core` is the CLAHE itself (8-bit clip semantics, full-precision mapping).
* :mod:`.guided_filter` is the refinement (He et al. 2013), O(N) box filters.

OpenCV is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from collections.abc import Generator
from typing import Any

import numpy as np

from .._arrays import Resolved, contiguous, single_image
from . import clahe_colour
from .clahe_core import clahe_channel
from .clahe_features import FEATURES, plane_features
from .guided_filter import guided_filter
from .registry import Output, Param, ProcessorSpec, register

COLORSPACES = ("lab", "hsv", "rgb")
MODEL_FILE = "lb_clahe_model.json"
FIXED_CLIP = 2.0
FIXED_GRID = (8, 8)
MAX_TILES = 64


# -- the model ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def load_model() -> dict[str, Any]:
    """The shipped model (parsed JSON, arrays as numpy), cached after the first call."""
    text = resources.files("napari_restore").joinpath(f"data/{MODEL_FILE}").read_text("utf-8")
    return parse_model(json.loads(text))


def parse_model(raw: dict[str, Any]) -> dict[str, Any]:
    """Check a model dict's structure and turn its lists into arrays."""
    if raw.get("format") != "napari-restore/lb_clahe/ridge/1":
        raise ValueError(f"unknown lb_clahe model format {raw.get('format')!r}")
    if raw.get("expansion") not in ("linear", "quadratic"):
        raise ValueError(f"unknown lb_clahe feature expansion {raw.get('expansion')!r}")
    if tuple(raw["features"]) != FEATURES:
        raise ValueError("the lb_clahe model was trained on a different feature list")
    model = dict(raw)
    for key in ("mean", "scale", "coef", "intercept"):
        model[key] = np.asarray(raw[key], dtype=np.float64)
    n = len(FEATURES)
    n_terms = n + n * (n + 1) // 2 if raw["expansion"] == "quadratic" else n
    if model["coef"].shape != (2, n_terms) or model["intercept"].shape != (2,):
        raise ValueError("the lb_clahe model has coefficient arrays of the wrong shape")
    return model


def expand(z: np.ndarray, expansion: str = "quadratic") -> np.ndarray:
    """Model terms of standardised features: ``z`` (linear) or ``[z, z_i z_j for i <= j]``."""
    if expansion == "linear":
        return z
    n = z.shape[-1]
    iu, ju = np.triu_indices(n)
    return np.concatenate([z, z[..., iu] * z[..., ju]], axis=-1)


def predict_from_features(
    features: np.ndarray, model: dict[str, Any] | None = None
) -> tuple[float, int]:
    """``(clip_limit, tiles across the shorter side)`` from a feature vector."""
    model = model or load_model()
    z = (np.asarray(features, np.float64) - model["mean"]) / model["scale"]
    z = np.clip(z, -6.0, 6.0)  # far outside the training data: stay at its edge
    y = expand(z, model["expansion"]) @ model["coef"].T + model["intercept"]
    lo, hi = model["clip_range"]
    clip = float(np.clip(2.0 ** y[0], lo, hi))
    tlo, thi = model["tile_range"]
    tiles = int(np.clip(round(2.0 ** y[1]), tlo, thi))
    return round(clip, 2), tiles


def grid_for(shape: tuple[int, int], tiles: int) -> tuple[int, int]:
    """A grid of about-square tiles with ``tiles`` tiles across the shorter side."""
    h, w = shape
    side = min(h, w) / tiles
    rows = max(1, min(round(h / side), h // 2, MAX_TILES))
    cols = max(1, min(round(w / side), w // 2, MAX_TILES))
    return rows, cols


def predict_plane(plane: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Predicted ``(clip_limit, tile_grid)`` for a working plane (2-D or (H, W, 3)) or a
    uint8 plane (scaled exactly as the boundary scales it).

    A plane whose float32 copy exceeds :data:`.clahe_strips.PREDICT_WHOLE_BYTES` has its
    features computed on every ``step``-th pixel (:func:`.clahe_strips.predict_step`), in
    memory as in strips, so that both give the same parameters."""
    from .clahe_strips import predict_step

    shape = plane.shape[:2]
    step = predict_step(shape, plane.shape[2] if plane.ndim == 3 else 1)
    if step > 1:
        plane = contiguous(plane[::step, ::step])
    if plane.dtype == np.uint8:
        plane = plane.astype(np.float32) / np.float32(255.0)
    clip, tiles = predict_from_features(plane_features(plane))
    return clip, grid_for(shape, tiles)


def predict_clahe_params(
    image: Any, *, channel_axis: int | None = None
) -> tuple[float, tuple[int, int]]:
    """Predict CLAHE's clip limit and tile grid for a 2-D image with the shipped model.

    Parameters
    ----------
    image : array-like
        A greyscale 2-D image, or an RGB/RGBA image with ``channel_axis``; any real dtype.
        For an nD stack, pass one plane (:func:`lb_clahe` predicts plane by plane).
    channel_axis : int or None
        Colour axis (features are computed on CIE L*), or None for greyscale.

    Returns
    -------
    clip_limit : float
        Clip limit in OpenCV's 8-bit convention (a multiple of the mean histogram bin).
    tile_grid : (int, int)
        Tiles along rows and columns (about square tiles).

    Examples
    --------
    >>> from skimage import data
    >>> clip, grid = predict_clahe_params(data.camera())
    >>> 1.0 <= clip <= 8.0 and len(grid) == 2
    True
    """
    img = single_image(image, channel_axis=channel_axis, min_size=8, detect_bits=True)
    return predict_plane(img.work)


# -- the plane function --------------------------------------------------------------------
def _check_grid(shape: tuple[int, ...], grid: tuple[int, int]) -> None:
    h, w = shape[:2]
    if grid[0] > h // 2 or grid[1] > w // 2:
        raise ValueError(
            f"tile_grid={tuple(grid)} is too large for an image of {h}×{w} pixels: every tile "
            f"needs at least 2 pixels per side, so at most ({h // 2}, {w // 2}) tiles"
        )


def lb_clahe_plane(
    plane: np.ndarray,
    *,
    colorspace: str,
    clip_limit: float | None,
    tile_grid: tuple[int, int] | None,
    refine: bool,
    refine_radius: int,
    refine_eps: float,
) -> np.ndarray:
    """Equalise one plane: ``(H, W)`` or ``(H, W, 3)``, float32 in [0, 1] or uint8.

    uint8 planes (the boundary hands them over as they are: ``native_dtypes``) take the
    8-bit fast path and give uint8; the result matches the float path to within a level.
    """
    if tile_grid is not None:
        _check_grid(plane.shape, tile_grid)
    if clip_limit is None or tile_grid is None:
        p_clip, p_grid = predict_plane(plane)
        clip_limit = p_clip if clip_limit is None else clip_limit
        tile_grid = p_grid if tile_grid is None else tile_grid
    grid = tuple(tile_grid)

    def equalise(v: np.ndarray) -> np.ndarray:
        out = clahe_channel(v, clip_limit, grid)
        if refine:
            out = guided_filter(out, radius=refine_radius, eps=refine_eps)
        return out

    if plane.dtype != np.uint8:
        plane = plane.astype(np.float32, copy=False)
    if plane.ndim == 2:
        return clahe_colour.grey(plane, equalise)
    return clahe_colour.COLOUR[colorspace](plane, equalise)


def lb_clahe_run(plane: np.ndarray, *, clip_limit: float | None,
                 tile_grid: tuple[int, int] | None, **params: Any) -> Generator[Any, None, Any]:
    """The registered plane function: predicts what is on auto for this plane, reports it
    (:class:`~napari_restore._arrays.Resolved`), then runs :func:`lb_clahe_plane`."""
    if tile_grid is not None:
        _check_grid(plane.shape, tile_grid)
    if clip_limit is None or tile_grid is None:
        p_clip, p_grid = predict_plane(plane)
        chosen = {}
        if clip_limit is None:
            clip_limit = chosen["clip_limit"] = p_clip
        if tile_grid is None:
            tile_grid = chosen["tile_grid"] = tuple(p_grid)
        yield Resolved(chosen)
    return lb_clahe_plane(plane, clip_limit=clip_limit, tile_grid=tile_grid, **params)


LB_CLAHE = register(
    ProcessorSpec(
        name="lb_clahe",
        title="Learning-based CLAHE",
        plane_func=lb_clahe_run,
        input_kind="rgb",
        min_size=8,
        native_dtypes=("uint8",),
        # No footprint: not tileable. Its mapping is global per tile grid (the grid spans the
        # whole plane; each cell's histogram sets the mapping of its neighbours), so tiles
        # of the plane would each get another grid. Large planes run in row strips instead.
        detect_bits=True,  # 12-bit data in uint16 is equalised over 0–4095, not 0–65535
        outputs=(Output(keeps_scale=False),),  # equalisation changes the value range
        summary=(
            "Contrast-limited adaptive histogram equalisation whose clip limit and tile grid "
            "are predicted per plane from image features by a small regression model trained "
            "on scikit-image's sample images with synthetic contrast degradations (Campos et "
            "al. 2019). Colour images are equalised on L* (lab), V (hsv) or each channel "
            "(rgb); an optional guided filter suppresses the noise equalisation amplifies."
        ),
        references=(
            "Campos, Mastelini, Aguiar, Mantovani, de Melo & Barbon Jr., 'Machine learning "
            "hyperparameter selection for "
            "Contrast Limited Adaptive Histogram Equalization', EURASIP J. Image Video "
            "Process. 2019:59.",
            "Zuiderveld, 'Contrast limited adaptive histogram equalization', Graphics Gems IV, "
            "Academic Press, 1994.",
            "He, Sun & Tang, 'Guided image filtering', IEEE TPAMI 35(6), 2013.",
        ),
        params=(
            Param("colorspace", str, "lab",
                  "Colour space for RGB images: lab equalises L*, hsv equalises V, rgb each "
                  "channel (greyscale images are equalised directly).",
                  choices=COLORSPACES, key=True),
            Param("clip_limit", float, None,
                  "Clip limit as a multiple of the mean bin height of a 256-bin tile "
                  "histogram (OpenCV's 8-bit convention; near 1 = hardly any equalisation); auto = "
                  "predicted by the model.",
                  min=0.01, max=40.0, optional=True, key=True, step=0.1, label="clip"),
            Param("tile_grid", tuple, None,
                  "Tiles along (rows, columns); auto = predicted by the model "
                  "(about-square tiles).",
                  min=1, max=MAX_TILES, optional=True, key=True, label="tiles"),
            Param("refine", bool, True,
                  "Guided-filter refinement: smooths noise that equalisation amplified in "
                  "flat regions, keeps edges.", key=True),
            Param("refine_radius", int, 2, "Guided-filter window radius (pixels).",
                  min=1, max=32),
            Param("refine_eps", float, 2e-3,
                  "Guided-filter regulariser: a local variance (values in [0, 1]) below "
                  "which a window counts as flat and is smoothed.",
                  min=1e-6, max=1.0, step=0.0005),
        ),
    )
)


def lb_clahe(
    image: Any,
    *,
    colorspace: str = "lab",
    clip_limit: float | None = None,
    tile_grid: tuple[int, int] | None = None,
    refine: bool = True,
    refine_radius: int = 2,
    refine_eps: float = 2e-3,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Learning-based CLAHE: contrast equalisation with predicted parameters.

    Parameters
    ----------
    image : ndarray
        2-D image, RGB/RGBA image (with ``channel_axis``) or nD stack of either; any real
        dtype and any strides. Not modified. Processed at full precision: the mapping is
        continuous, so uint16 and float data keep far more than 256 levels. uint8 images
        take an 8-bit fast path with the same mapping; in ``"lab"`` it uses OpenCV's 8-bit
        L*a*b* conversion (as a plain OpenCV pipeline does), within a few levels of the
        float conversion.
    colorspace : {"lab", "hsv", "rgb"}
        For colour images: equalise CIE L* (``"lab"``, hue-preserving), HSV value
        (``"hsv"``) or each RGB channel (``"rgb"``, may shift colours). Ignored for
        greyscale.
    clip_limit : float or None
        Clip limit, a multiple of the mean bin height of a 256-bin tile histogram (the
        convention of OpenCV's 8-bit CLAHE). ``None``: predicted per plane.
    tile_grid : (int, int) or None
        Number of tiles along rows and columns; each tile must be at least 2×2 pixels.
        ``None``: predicted per plane.
    refine : bool
        Apply a self-guided filter to the equalised channel(s).
    refine_radius : int
        Guided-filter window radius in pixels.
    refine_eps : float
        Guided-filter regulariser (a local variance in [0, 1]² units).
    channel_axis : int or None
        Colour axis of an RGB/RGBA image (alpha passes through); None for greyscale.

    Returns
    -------
    ndarray
        Same shape and dtype as ``image``.

    Raises
    ------
    ValueError
        For a ``clip_limit`` ≤ 0, a ``tile_grid`` too large for the image, an unknown
        ``colorspace``.

    References
    ----------
    .. [1] Campos et al., EURASIP J. Image Video Process. 2019:59.
    .. [2] Zuiderveld, Graphics Gems IV, 1994.
    .. [3] He, Sun & Tang, IEEE TPAMI 35(6), 2013.

    Examples
    --------
    >>> from skimage import data
    >>> out = lb_clahe(data.astronaut(), channel_axis=-1)
    >>> out.shape, out.dtype
    ((512, 512, 3), dtype('uint8'))
    """
    return LB_CLAHE.apply(
        image, channel_axis=channel_axis, colorspace=colorspace, clip_limit=clip_limit,
        tile_grid=tile_grid, refine=refine, refine_radius=refine_radius, refine_eps=refine_eps,
    )
