"""Classic denoisers: scikit-image non-local means, TV (Chambolle), wavelet (BayesShrink) and
OpenCV fastNlMeans at 8 or 16 bits. These are also the baselines BM3D is compared against.

Heavy libraries (OpenCV, scikit-image's restoration module) are imported inside the plane
function, so importing this module — and starting napari — stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import from_uint, to_uint
from .noise import AutoSigma, estimate_noise_sigma
from .noise_model import noise_model_param
from .registry import TILE, Param, ProcessorSpec, register

METHODS = ("nl_means", "tv_chambolle", "wavelet", "opencv_nlm")


def _opencv_nlm(plane: np.ndarray, h: float, patch: int, distance: int, bits: int) -> np.ndarray:
    import cv2

    patch = patch | 1  # OpenCV wants odd windows
    search = 2 * distance + 1
    if bits == 8:
        hh = h * 255.0
        if plane.ndim == 3:  # OpenCV expects BGR for its internal Lab conversion
            src = to_uint(plane[..., ::-1], 8)
            out = cv2.fastNlMeansDenoisingColored(
                src, None, h=hh, hColor=hh, templateWindowSize=patch, searchWindowSize=search
            )
            return from_uint(out[..., ::-1], plane.dtype)
        out = cv2.fastNlMeansDenoising(
            to_uint(plane, 8), None, h=hh, templateWindowSize=patch, searchWindowSize=search
        )
        return from_uint(out, plane.dtype)
    # 16-bit: OpenCV supports only the L1 patch norm there; colour channels are joint. With
    # the same h, L1 at 16 bits scores within 1 dB of L2 at 8 bits (tests/test_classic.py).
    out = cv2.fastNlMeansDenoising(
        to_uint(plane, 16), h=[h * 65535.0], templateWindowSize=patch,
        searchWindowSize=search, normType=cv2.NORM_L1,
    )
    return from_uint(out, plane.dtype)


#: Iterations of Chambolle's projection that TV runs, always (``eps=0``). scikit-image's
#: default stopping rule (the change of the primal energy below ``2e-4`` of its first value)
#: fires after 4–36 iterations on 128² crops at σ 15–40, far from convergence, at an
#: iteration that jumps with the weight: the result's PSNR went up and down by up to 1.5 dB
#: along a weight sweep (moon at σ 40: 32.94, 31.39, 32.41, 32.74 dB at weights 40–71), so
#: neither a slider nor a calibration could rely on it. A fixed count makes the result a
#: continuous function of the weight, and tiles need no plane-wide count. 100 iterations
#: come within 0.05 dB of 3000 near the best weight (rocket, camera, moon, chelsea at σ 40),
#: at 3–5× the time of the early stop.
TV_ITERATIONS = 100

# Below this sigma (working units: a fraction of the span, < 1/10 of a uint16 step) a plane
# counts as noise-free;
# some skimage methods divide by sigma-derived thresholds and would return NaN.
_NOISE_FREE = 1e-6


def classic_plane(
    plane: np.ndarray,
    *,
    method: str,
    sigma: float | None,
    strength: float,
    patch_size: int,
    patch_distance: int,
    bit_depth: str,
    noise_model: str = "white",
) -> np.ndarray:
    """Denoise one working plane (``(H, W)`` or ``(H, W, 3)``, values in [0, 1]).

    TV runs exactly :data:`TV_ITERATIONS` iterations of Chambolle's projection.

    The noise is white (``noise_model`` "auto" and "white" mean that here); Poisson–Gaussian
    noise reaches this function already stabilised to white noise of σ = 1 (:mod:`.vst`).
    """
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

    if sigma is None:
        sigma = estimate_noise_sigma(plane, channel_axis=-1 if plane.ndim == 3 else None)
    if sigma < _NOISE_FREE:
        return plane.copy()  # a noise-free plane: nothing to remove
    colour = -1 if plane.ndim == 3 else None
    s = sigma * strength
    if method == "nl_means":
        return denoise_nl_means(
            plane, h=0.8 * s, sigma=sigma, patch_size=patch_size,
            patch_distance=patch_distance, fast_mode=True, channel_axis=colour,
        )
    if method == "tv_chambolle":
        return denoise_tv_chambolle(plane, weight=s, eps=0.0, max_num_iter=TV_ITERATIONS,
                                    channel_axis=colour)
    if method == "wavelet":
        # in units of s: BayesShrink floors a subband's signal variance at the dtype's eps
        # (float32: 1.2e-7), and in working units the noise variance of a 12-bit image in
        # uint16 sits below it (σ 19 counts: 8.6e-8), which cut the thresholds of the
        # noise-only subbands to ~σ and left the noise in (6.8 dB below the same counts as
        # float on moon at 30 photons); the rule is otherwise scale-equivariant
        unit = plane.dtype.type(s)  # (the plane's dtype: a float64 s would promote it)
        out = denoise_wavelet(plane / unit, sigma=1.0, method="BayesShrink", mode="soft",
                              rescale_sigma=True, channel_axis=colour)
        return out * out.dtype.type(s)
    if method == "opencv_nlm":
        bits = 8 if bit_depth == "8" else 16
        return _opencv_nlm(plane, s, patch_size, patch_distance, bits)
    raise AssertionError(method)  # unreachable: validated by the spec


#: Tile halos (px) of the methods without a patch search: TV (Chambolle's iterations spread
#: an edge's influence a few pixels per iteration; measured seams: benchmarks/bench_tiles.py)
#: and wavelet (the support of its coarsest filters at the default levels).
TV_HALO = 24
WAVELET_HALO = 32


def classic_footprint(params: dict[str, Any], plane_shape: tuple[int, ...]) -> int:
    """Tile halo: patch radius + search distance (+1) for non-local means; see TV_HALO."""
    method = params.get("method", "nl_means")
    if method in ("nl_means", "opencv_nlm"):
        return int(params["patch_distance"]) + int(params["patch_size"]) // 2 + 1
    return TV_HALO if method == "tv_chambolle" else WAVELET_HALO


def classic_tile_params(plane: np.ndarray, params: dict[str, Any],
                        window: tuple[int, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """σ on auto estimated on the whole plane (every tile then uses the plane's σ)."""
    out, resolved = dict(params), {}
    if out.get("sigma") is None:
        out["sigma"] = resolved["sigma"] = estimate_noise_sigma(
            plane, channel_axis=-1 if plane.ndim == 3 else None)
    return out, resolved


def _prepare(params: dict[str, Any], image: Any) -> dict[str, Any]:
    if params["bit_depth"] == "auto":
        params["bit_depth"] = "8" if np.dtype(image.dtype) == np.uint8 else "16"
    return params


CLASSIC_DENOISE = register(
    ProcessorSpec(
        name="classic_denoise",
        title="Classic denoise",
        plane_func=AutoSigma(classic_plane),
        input_kind="rgb",
        min_size=8,
        prepare=_prepare,
        footprint=classic_footprint,
        tile_params=classic_tile_params,
        summary=(
            "Baseline denoisers: scikit-image non-local means, total variation (Chambolle), "
            "wavelet BayesShrink, and OpenCV fastNlMeans at 8 or 16 bits. Sigma is estimated "
            "per plane (wavelet MAD) when left on auto."
        ),
        references=(
            "Buades, Coll & Morel, 'A non-local algorithm for image denoising', CVPR 2005.",
            "Chambolle, 'An algorithm for total variation minimization and applications', "
            "J. Math. Imaging Vis. 20, 2004.",
            "Chang, Yu & Vetterli, 'Adaptive wavelet thresholding for image denoising and "
            "compression', IEEE TIP 9(9), 2000.",
            "Donoho & Johnstone, 'Ideal spatial adaptation by wavelet shrinkage', Biometrika 81, 1994.",
        ),
        params=(
            Param("method", str, "nl_means", "Denoising algorithm.", choices=METHODS, key=True),
            Param(
                "sigma", float, None,
                "Noise standard deviation in the image's own units: grey levels for integer "
                "images (25 for uint8 noise of 25 grey levels), values for float images; "
                "empty = estimate per plane.",
                min=0.0, max=1.0, optional=True, key=True, step=0.005, label="σ", intensity=1,
            ),
            Param("strength", float, 1.0, "Multiplies the smoothing derived from sigma.",
                  min=0.05, max=5.0, step=0.05),
            Param("patch_size", int, 5, "Patch side for the non-local means methods (pixels).",
                  min=3, max=15),
            Param("patch_distance", int, 6,
                  "Search radius for the non-local means methods (pixels).", min=1, max=30),
            Param("bit_depth", str, "auto",
                  "OpenCV working depth: auto = 8-bit for uint8 input, 16-bit otherwise.",
                  choices=("auto", "8", "16")),
            noise_model_param(
                "auto / white = white Gaussian noise of std σ; poisson-gaussian = shot plus "
                "read noise, estimated from the image (once per stack): the generalised "
                "Anscombe transform, denoising at σ = 1, the exact unbiased inverse.",
                choices=("auto", "white", "poisson-gaussian")),
            TILE,
        ),
    )
)


def classic_denoise(
    image: Any,
    *,
    method: str = "nl_means",
    sigma: float | None = None,
    strength: float = 1.0,
    patch_size: int = 5,
    patch_distance: int = 6,
    bit_depth: str = "auto",
    channel_axis: int | None = None,
    tile: Any = "off",
    noise_model: Any = "auto",
) -> np.ndarray:
    """Denoise with a classic method (non-local means, TV, wavelet, OpenCV fastNlMeans).

    Parameters
    ----------
    image : ndarray
        2-D image, RGB/RGBA image (with ``channel_axis``) or nD stack of either; any real
        dtype and any strides. Not modified.
    method : {"nl_means", "tv_chambolle", "wavelet", "opencv_nlm"}
        Algorithm. ``opencv_nlm`` works at 8 bits for uint8 input and at 16 bits otherwise
        (see ``bit_depth``), so uint16 data keeps its precision.
    sigma : float or None
        Noise standard deviation in the image's own units: grey levels for integer images,
        values for float images (as scikit-image's ``sigma``). ``None`` estimates it per
        plane (wavelet MAD).
    strength : float
        Multiplier of the smoothing derived from ``sigma``.
    patch_size, patch_distance : int
        Patch side and search radius of the non-local means methods.
    bit_depth : {"auto", "8", "16"}
        OpenCV working depth.
    noise_model : {"auto", "white", "poisson-gaussian"} or NoiseModel
        "auto"/"white": white Gaussian noise of std ``sigma``. "poisson-gaussian" (or a
        :class:`~napari_restore.processors.noise_pg.NoiseModel` in the image's units):
        signal-dependent noise, through the variance-stabilising transform (see
        ``docs/noise-models.md``); ``sigma`` must then be None.
    channel_axis : int or None
        Colour axis of an RGB/RGBA image (alpha passes through); None for greyscale.
    tile : None, "off", "auto" or (rows, cols)
        Overlapping tiles, blended, run in parallel worker processes; σ on auto is estimated
        once on the whole plane. None/"off" runs whole planes (see ``docs/large-images.md``).

    Returns
    -------
    ndarray
        Denoised image, same shape and dtype as ``image``.

    References
    ----------
    .. [1] Buades, Coll & Morel, CVPR 2005. .. [2] Chambolle, JMIV 2004.
    .. [3] Chang, Yu & Vetterli, IEEE TIP 2000.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import classic_denoise
    >>> rng = np.random.default_rng(0)
    >>> noisy = (rng.random((32, 32)) * 255).astype(np.uint8)
    >>> classic_denoise(noisy, method="wavelet").dtype
    dtype('uint8')
    """
    return CLASSIC_DENOISE.apply(
        image, channel_axis=channel_axis, method=method, sigma=sigma, strength=strength,
        patch_size=patch_size, patch_distance=patch_distance, bit_depth=bit_depth, tile=tile,
        noise_model=noise_model,
    )
