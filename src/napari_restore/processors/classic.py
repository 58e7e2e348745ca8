"""Classic denoisers: scikit-image non-local means, TV (Chambolle), wavelet (BayesShrink) and
OpenCV fastNlMeans at 8 or 16 bits. These are also the baselines BM3D is compared against.

Heavy libraries (OpenCV, scikit-image's restoration module) are imported inside the plane
function, so importing this module — and starting napari — stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import contiguous, from_uint, to_uint
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
    tv_iterations: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Denoise one working plane (``(H, W)`` or ``(H, W, 3)``, values in [0, 1]).

    ``tv_iterations`` (tiles only: :func:`classic_tile_params`) runs TV for exactly that many
    iterations per channel, the count its stopping rule chose on the whole plane.

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
    if method == "tv_chambolle" and tv_iterations is not None:
        chans = [plane] if colour is None else [plane[..., c] for c in range(plane.shape[-1])]
        outs = [denoise_tv_chambolle(c, weight=s, eps=0.0, max_num_iter=int(n))
                for c, n in zip(chans, tv_iterations, strict=True)]
        return outs[0] if colour is None else np.stack(outs, axis=-1)
    if method == "tv_chambolle":
        return denoise_tv_chambolle(plane, weight=s, channel_axis=colour)
    if method == "wavelet":
        return denoise_wavelet(
            plane, sigma=s, method="BayesShrink", mode="soft", rescale_sigma=True,
            channel_axis=colour,
        )
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


#: TV's stopping rule is global (the relative change of the whole image's energy), so tiles
#: would each stop after another number of iterations: the count is taken once per plane on
#: its central crop of at most this side (the whole plane up to 1024²), and every tile runs
#: exactly that many iterations.
TV_COUNT_CROP = 1024


def tv_iteration_count(plane: np.ndarray, weight: float, eps: float = 2.0e-4,
                       max_num_iter: int = 200) -> int:
    """Iterations after which scikit-image's ``denoise_tv_chambolle`` returns on ``plane``.

    Chambolle's projection exactly as ``skimage.restoration._denoise._denoise_tv_chambolle_nd``
    (2-D), counting; ``denoise_tv_chambolle(plane, weight, eps=0, max_num_iter=count)`` then
    returns the same bits as the default call (``tests/test_tiles.py``).
    """
    image = np.asarray(plane)
    p = np.zeros((2,) + image.shape, dtype=image.dtype)
    g = np.zeros_like(p)
    d = np.zeros_like(image)
    e_init = e_prev = None
    for i in range(max_num_iter):
        if i > 0:
            d = -p.sum(0)
            d[1:, :] += p[0, :-1, :]
            d[:, 1:] += p[1, :, :-1]
            out = image + d
        else:
            out = image
        e = (d ** 2).sum()
        g[0, :-1, :] = np.diff(out, axis=0)
        g[1, :, :-1] = np.diff(out, axis=1)
        norm = np.sqrt((g ** 2).sum(axis=0))[np.newaxis, ...]
        e += weight * norm.sum()
        tau = 1.0 / 4.0
        norm *= tau / weight
        norm += 1.0
        p -= tau * g
        p /= norm
        e /= float(image.size)
        if i == 0:
            e_init = e_prev = e
        elif np.abs(e_prev - e) < eps * e_init:
            return i + 1
        else:
            e_prev = e
    return max_num_iter


def classic_tile_params(plane: np.ndarray, params: dict[str, Any],
                        window: tuple[int, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """σ on auto estimated on the whole plane; for TV, the iteration count of the plane."""
    out, resolved = dict(params), {}
    colour = plane.ndim == 3
    if out.get("sigma") is None:
        out["sigma"] = resolved["sigma"] = estimate_noise_sigma(
            plane, channel_axis=-1 if colour else None)
    if out["method"] == "tv_chambolle" and out["sigma"] >= _NOISE_FREE:
        h, w = plane.shape[:2]
        ch, cw = min(h, TV_COUNT_CROP), min(w, TV_COUNT_CROP)
        crop = plane[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
        chans = [crop] if not colour else [crop[..., c] for c in range(crop.shape[-1])]
        weight = out["sigma"] * out["strength"]
        out["tv_iterations"] = tuple(
            tv_iteration_count(contiguous(c), weight) for c in chans)
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
