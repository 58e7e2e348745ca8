"""Temporal denoising of time-lapse stacks: each frame is denoised with its neighbours.

Two modes (figures in ``docs/large-images.md``, ``benchmarks/bench_timelapse.py``):

* ``"aligned"`` (default), motion-compensated: every neighbour within ``radius`` frames is
  registered onto the frame (OpenCV's ECC, a rotation plus a sub-pixel translation, on
  lightly smoothed frames), warped onto it (bicubic), matched to its intensity (gain and
  offset, for slow brightness changes), and averaged with it; BM3D then removes what is
  left of the noise, at σ scaled by the averaging (σ/√N for N equally weighted frames).
  A neighbour whose aligned image still differs from the frame by more than the noise
  explains (a scene cut, a failed registration) is left out.
* ``"bm4d"``: BM4D over the whole (t, y, x) stack, no motion compensation: its 5×5×5 blocks
  and search window reach a few frames; for static or nearly static scenes.

The time axis is any axis of the input (``time_axis``); the spec moves it next to the two
spatial axes before the boundary runs, so the plane function always sees ``(T, H, W)`` (or
``(T, H, W, 3)`` for colour). σ on auto is estimated once per stack (the median of the
frames' wavelet-MAD estimates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

import numpy as np

from .._arrays import (
    Resolved,
    _as_array,
    as_image,
    contiguous,
    drain,
    normalize_channel_axis,
)
from .bm3d import BM4D_PROFILES, bm3d_plane, bm4d_plane
from .noise import estimate_noise_sigma
from .registry import Param, ProcessorSpec, register

MODES = ("aligned", "bm4d")
MOTIONS = ("euclidean", "translation", "none")
PROFILES = BM4D_PROFILES  # profiles that both bm3d and bm4d run

#: Gaussian pre-smoothing (pixels) of the frames the registration and the intensity match
#: see; the warped frames themselves are not smoothed.
REGISTER_SMOOTH = 1.5
#: ECC: at most this many iterations, stopping when the update is below ``ECC_EPS``.
ECC_ITERATIONS = 100
ECC_EPS = 1e-6
#: A registration that moves the frame by more than this fraction of its smaller side is
#: taken as failed (the neighbour is left out).
MAX_SHIFT = 0.25
#: Smoothing (pixels) of the frame-minus-aligned-neighbour difference for the mismatch test,
#: and the largest mean square of the smoothed difference allowed, in units of σ²: smoothing
#: by 3 px leaves about 2σ²/(4π·9) ≈ 0.02σ² of the noise; scene structure beyond σ/2 rms
#: (0.25σ²) means the neighbour does not show the same scene.
MISMATCH_SMOOTH = 3.0
MISMATCH_LIMIT = 0.25
#: Fewest frames a time axis must have.
MIN_FRAMES = 2


def _smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(contiguous(img, np.float32), (0, 0), sigma,
                            borderType=cv2.BORDER_REFLECT)


def register_pair(ref: np.ndarray, mov: np.ndarray, motion: str = "euclidean") -> np.ndarray | None:
    """The 2×3 affine ``W`` with ``mov(W · (x, y, 1)) ≈ ref(x, y)``, or None when it fails.

    ``ref``/``mov`` are smoothed greyscale float frames. ECC (Evangelidis & Psarakis 2008)
    estimates a rotation and a sub-pixel translation ("euclidean") or a translation only;
    it starts from the phase-correlation shift, so drifts of several pixels converge.
    """
    import cv2
    from skimage.registration import phase_cross_correlation

    warp = np.eye(2, 3, dtype=np.float32)
    if motion == "none":
        return warp
    if float(np.std(ref)) == 0.0 or float(np.std(mov)) == 0.0:
        return warp  # a flat frame: nothing to align on
    shift = phase_cross_correlation(ref, mov, upsample_factor=10, normalization=None)[0]
    warp[:, 2] = -shift[::-1]  # (row, col) shift of mov onto ref -> (x, y) of the map
    mode = cv2.MOTION_EUCLIDEAN if motion == "euclidean" else cv2.MOTION_TRANSLATION
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    try:
        _, warp = cv2.findTransformECC(contiguous(ref, np.float32), contiguous(mov, np.float32),
                                       warp, mode, crit, None, 1)
    except cv2.error:
        return None  # did not converge: the neighbour is left out
    if not np.isfinite(warp).all() or \
            np.abs(warp[:, 2]).max() > MAX_SHIFT * min(ref.shape) or abs(warp[1, 0]) > 0.5:
        return None
    return warp


def _warp(img: np.ndarray, warp: np.ndarray, border: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    return cv2.warpAffine(contiguous(img, np.float32), warp, (w, h),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=border,
                          borderValue=0)


def _window(i: int, frames: int, radius: int) -> range:
    """The 2·radius + 1 frames around ``i``, shifted inwards at the ends of the stack."""
    size = min(2 * radius + 1, frames)
    lo = min(max(i - radius, 0), frames - size)
    return range(lo, lo + size)


def _grey(frame: np.ndarray) -> np.ndarray:
    return frame.mean(axis=-1) if frame.ndim == 3 else frame


def _aligned_frame(volume: np.ndarray, i: int, radius: int, sigma: float, motion: str,
                   smooth: list[np.ndarray], cache: dict[tuple[int, int], Any],
                   ) -> tuple[np.ndarray, float, int]:
    """Frame ``i`` averaged with its aligned, intensity-matched neighbours.

    Returns the average (float64, the frame's shape), the σ of its noise (σ · √Σwⱼ²aⱼ² for
    weights wⱼ summing to 1 and intensity gains aⱼ), and how many frames it holds.
    """
    import cv2

    frame = volume[i].astype(np.float64)
    ref = smooth[i]
    total = frame.copy()
    count = np.ones(frame.shape[:2], np.float64)
    gains = [1.0]
    inner = (slice(2, -2), slice(2, -2))
    for j in _window(i, volume.shape[0], radius):
        if j == i:
            continue
        key = (i, j)
        if key not in cache:
            warp = register_pair(ref, smooth[j], motion)
            cache[key] = warp
            if warp is not None:  # the inverse map serves the pair (j, i)
                inv = cv2.invertAffineTransform(warp)
                cache[(j, i)] = np.asarray(inv, np.float32)
        warp = cache[key]
        if warp is None:
            continue
        moved = _warp(volume[j], warp, cv2.BORDER_REFLECT).astype(np.float64)
        valid = _warp(np.ones(frame.shape[:2], np.float32), warp, cv2.BORDER_CONSTANT) > 0.999
        ms = _warp(smooth[j], warp, cv2.BORDER_REFLECT).astype(np.float64)
        sel = valid.copy()
        sel[:2], sel[-2:], sel[:, :2], sel[:, -2:] = False, False, False, False
        if sel.sum() < 16:
            continue
        a_ref, a_mov = ref[sel].astype(np.float64), ms[sel]
        sd_mov = float(a_mov.std())
        gain = float(a_ref.std()) / sd_mov if sd_mov > 0 else 1.0
        gain = gain if 0.5 <= gain <= 2.0 else 1.0
        offset = float(a_ref.mean()) - gain * float(a_mov.mean())
        matched = moved * gain + offset
        diff = _smooth(_grey(frame) - _grey(matched), MISMATCH_SMOOTH)[inner]
        dsel = sel[inner]
        if sigma > 0 and float(np.mean(diff[dsel] ** 2)) > MISMATCH_LIMIT * sigma**2:
            continue  # not the same scene (or a failed registration): leave it out
        if frame.ndim == 3:
            total[valid] += matched[valid]
        else:
            total += np.where(valid, matched, 0.0)
        count += valid
        gains.append(gain)
    avg = total / (count[..., None] if frame.ndim == 3 else count)
    n = len(gains)
    # interior noise: equal weights 1/n, each frame's noise scaled by its gain
    sigma_avg = sigma * float(np.sqrt(np.sum(np.square(gains)))) / n
    return avg, sigma_avg, n


def stack_sigma(volume: np.ndarray) -> float:
    """One σ for a stack (working units): the median of its frames' wavelet-MAD estimates."""
    colour = volume.ndim == 4
    return float(np.median([estimate_noise_sigma(f, channel_axis=-1 if colour else None)
                            for f in volume]))


def timelapse_plane(volume: np.ndarray, *, sigma: float | None, mode: str, radius: int,
                    motion: str, profile: str, time_axis: int = 0, threads: int = 1,
                    ) -> Generator[Any, None, np.ndarray]:
    """Temporal denoising of one working time-lapse ``(T, H, W)`` or ``(T, H, W, 3)``.

    ``time_axis`` is not used here: the spec has already moved the time axis first. A
    generator: it yields what σ on auto resolved to, then progress per frame.
    """
    del time_axis  # applied by TimelapseSpec.iter_apply
    frames = volume.shape[0]
    if sigma is None:
        sigma = stack_sigma(volume)
        yield Resolved({"sigma": sigma})
    if mode == "bm4d":
        if volume.ndim == 4:
            chans = []
            for c in range(volume.shape[-1]):
                chans.append(drain(bm4d_plane(contiguous(volume[..., c]), sigma=sigma,
                                              profile=profile, threads=threads,
                                              noise_model="white")))
                yield (c + 1) / volume.shape[-1]
            return np.stack(chans, axis=-1)
        return drain(bm4d_plane(volume, sigma=sigma, profile=profile, threads=threads,
                                noise_model="white"))
    smooth = [_smooth(_grey(f), REGISTER_SMOOTH) for f in volume]
    cache: dict[tuple[int, int], Any] = {}
    out = np.empty(volume.shape, dtype=np.float64)
    used = []
    for i in range(frames):
        avg, sigma_avg, n = _aligned_frame(volume, i, radius, sigma, motion, smooth, cache)
        used.append(n)
        out[i] = drain(bm3d_plane(contiguous(avg), sigma=sigma_avg, profile=profile,
                                  colorspace="opp", threads=threads, noise_model="white"))
        yield (i + 1) / frames
    yield Resolved({"frames_used": used})
    return out


# -- the time axis --------------------------------------------------------------------------

def time_axis_of(shape: tuple[int, ...], time_axis: int, channel_axis: int | None) -> int:
    """``time_axis`` as a non-negative axis of an array of ``shape``, validated."""
    ndim = len(shape)
    cax = normalize_channel_axis(channel_axis, ndim) if ndim else None
    spatial = [a for a in range(ndim) if a != cax]
    if len(spatial) < 3:
        raise ValueError(
            f"image must be a time-lapse with a time axis and two spatial axes (t, y, x); got "
            f"shape {tuple(shape)}" + (" with a channel axis" if cax is not None else ""))
    if not -ndim <= time_axis < ndim:
        raise ValueError(f"time_axis={time_axis} is out of range for an array with {ndim} "
                         "dimensions")
    axis = time_axis % ndim
    if axis == cax:
        raise ValueError(f"time_axis={time_axis} is the channel axis; choose another axis")
    if axis in spatial[-2:]:
        raise ValueError(
            f"time_axis={time_axis} is one of the two spatial axes (y, x: the last two "
            f"non-channel axes, {spatial[-2]} and {spatial[-1]}); choose one of "
            f"{', '.join(str(a) for a in spatial[:-2])}")
    return axis


def _check(values: dict[str, Any], image: Any) -> None:
    """Refuse time axes that are too short and windows larger than the stack (up front)."""
    arr = _as_array(image, "image")
    shape = tuple(np.shape(arr))
    axis = time_axis_of(shape, values["time_axis"], values.get("_channel_axis"))
    frames = shape[axis]
    if frames < MIN_FRAMES:
        raise ValueError(
            f"time_axis={values['time_axis']} has {frames} frame(s); a time-lapse needs at "
            f"least {MIN_FRAMES} frames along it (is the time axis another one?)")
    window = 2 * values["radius"] + 1
    if values["mode"] == "aligned" and window > frames:
        raise ValueError(
            f"radius={values['radius']} asks for a window of {window} frames, but the time "
            f"axis (axis {axis}) has {frames}; use radius <= {(frames - 1) // 2}")


@dataclasses.dataclass(frozen=True)
class TimelapseSpec(ProcessorSpec):
    """A volume spec whose ``time_axis`` parameter picks the volume's first axis.

    :meth:`iter_apply` moves the time axis next to the two spatial axes (``(…, T, Y, X)``,
    the channel axis where it was), runs the boundary as for any volume processor (the
    other leading axes plane by plane) and moves the axis back in the result.
    """

    def iter_apply(self, image: Any, *, channel_axis: int | None = None,
                   **kwargs: Any) -> Generator[Any, None, Any]:
        names = {p.name for p in self.params}
        params = {k: v for k, v in kwargs.items() if k in names}
        other = {k: v for k, v in kwargs.items() if k not in names}
        arr = as_image(image)
        values = self.validate_params(params)
        shape = tuple(np.shape(arr))
        _check({**values, "_channel_axis": channel_axis}, arr)
        ndim = len(shape)
        cax = normalize_channel_axis(channel_axis, ndim)
        axis = values["time_axis"] % ndim
        spatial = [a for a in range(ndim) if a != cax]
        dest = spatial[-3] if axis not in spatial[-3:] else axis
        moved = np.moveaxis(arr, axis, dest) if dest != axis else arr
        out = yield from super().iter_apply(moved, channel_axis=channel_axis, **other,
                                            **params)
        if dest == axis:
            return out
        back = (lambda o: contiguous(np.moveaxis(o, dest, axis)))
        return tuple(back(o) for o in out) if isinstance(out, tuple) else back(out)


_REFS = (
    ("Maggioni, Boracchi, Foi & Egiazarian, 'Video denoising, deblocking, and enhancement "
     "through separable 4-D nonlocal spatiotemporal transforms', IEEE TIP 21(9), 2012."),
    ("Dabov, Foi & Egiazarian, 'Video denoising by sparse 3D transform-domain collaborative "
     "filtering', EUSIPCO 2007 (VBM3D)."),
    ("Evangelidis & Psarakis, 'Parametric image alignment using enhanced correlation "
     "coefficient maximization', IEEE TPAMI 30(10), 2008."),
    ("Dabov, Foi, Katkovnik & Egiazarian, 'Image denoising by sparse 3-D transform-domain "
     "collaborative filtering', IEEE TIP 16(8), 2007."),
    ("Maggioni, Katkovnik, Egiazarian & Foi, 'Nonlocal transform-domain filter for "
     "volumetric data denoising and reconstruction', IEEE TIP 22(1), 2013."),
)

_MODE_DOC = (
    "aligned = register each neighbour within radius onto the frame (rotation + sub-pixel "
    "drift), match its brightness, average, then BM3D at the averaged noise level; bm4d = "
    "BM4D over the whole (t, y, x) stack without motion compensation (static scenes)."
)

TIMELAPSE_DENOISE = register(
    TimelapseSpec(
        name="timelapse_denoise",
        title="Time-lapse denoise",
        plane_func=timelapse_plane,
        input_kind="volume3d",
        min_size=1,  # bm3d/bm4d check their own sizes
        work_dtype=np.float64,
        offset=False,  # bm3d/bm4d are not offset-invariant: see ValueScale
        isolate=True,
        summary=(
            "Denoises each frame of a time-lapse (t, y, x) with its neighbours: they are "
            "registered onto the frame (sub-pixel drift and rotation), matched in "
            "brightness and averaged, then BM3D removes the rest of the noise; or BM4D over "
            "the (t, y, x) stack. The time axis is any axis (time_axis); σ on auto is "
            "estimated once per stack."
        ),
        references=_REFS,
        params=(
            Param("sigma", float, None,
                  "Noise standard deviation of one frame in the image's own units: grey "
                  "levels for integer images, values for float images; empty = estimate "
                  "once per stack (median of the frames' wavelet-MAD estimates).",
                  min=0.0, max=1.0, optional=True, key=True, step=0.005, label="σ",
                  intensity=1),
            Param("mode", str, "aligned", _MODE_DOC, choices=MODES, key=True),
            Param("radius", int, 2,
                  "Neighbours on each side of a frame (aligned mode): the window holds "
                  "2·radius + 1 frames, shifted inwards at the ends of the stack.",
                  min=1, max=10, key=True, label="r"),
            Param("motion", str, "euclidean",
                  "Motion between frames (aligned mode): euclidean = rotation + sub-pixel "
                  "translation, translation = drift only, none = frames already aligned.",
                  choices=MOTIONS),
            Param("time_axis", int, 0,
                  "The time axis of the array (any axis but the channel axis and the last "
                  "two, y and x); other leading axes are processed one time-lapse at a time.",
                  min=-16, max=15, label="time axis"),
            Param("profile", str, "np",
                  "bm3d/bm4d profile: np = normal, refilter = with residual re-filtering, "
                  "lc = low complexity (fast).", choices=PROFILES),
            Param("threads", int, 1,
                  "Library threads. 1 (default) gives bit-reproducible results; 0 = all cores.",
                  min=0, max=256),
        ),
    )
)


def timelapse_denoise(image: Any, sigma: float | None = None, *, mode: str = "aligned",
                      radius: int = 2, motion: str = "euclidean", time_axis: int = 0,
                      profile: str = "np", channel_axis: int | None = None,
                      threads: int = 1) -> np.ndarray:
    """Denoise a time-lapse, each frame with its neighbours in time.

    Parameters
    ----------
    image : ndarray
        A time-lapse ``(T, Y, X)``, ``(T, Y, X, C)`` with ``channel_axis`` (RGB/RGBA), or more axes (the
        time axis is ``time_axis``; other leading axes, e.g. fluorescence channels in
        ``(T, C, Y, X)``, are processed one time-lapse at a time). Any real dtype and
        strides; not modified.
    sigma : float or None
        Noise standard deviation of one frame in the image's own units (grey levels for
        integer images, values for float images); ``None`` estimates it once per stack
        (the median of the frames' wavelet-MAD estimates), reported as ``resolved["sigma"]``.
    mode : {"aligned", "bm4d"}
        "aligned" (default): the 2·radius neighbours of each frame are registered onto it
        (ECC: rotation and sub-pixel translation), warped (bicubic), matched in gain and
        offset, and averaged with it; BM3D then denoises the average at σ/√N (N frames
        averaged). Neighbours that do not match after alignment are left out. "bm4d":
        BM4D over the whole stack without motion compensation (``radius`` and ``motion``
        are not used).
    radius : int
        Neighbours on each side (aligned mode); the window of 2·radius + 1 frames is
        shifted inwards at the ends of the stack and must fit in it.
    motion : {"euclidean", "translation", "none"}
        Motion model of the registration.
    time_axis : int
        The time axis (default the first). Not the channel axis, nor the last two spatial
        axes.
    profile : {"np", "refilter", "lc"}
        bm3d / bm4d profile.
    channel_axis : int or None
        Colour axis (RGB/RGBA) or None for greyscale.
    threads : int
        Library threads (1 = bit-reproducible, 0 = all cores).

    Returns
    -------
    ndarray
        Denoised time-lapse, same shape and dtype as ``image``.

    Notes
    -----
    Registration uses the frames smoothed by a Gaussian of 1.5 px; the neighbours are
    warped from the unsmoothed frames, so the average keeps the frame's detail where the
    registration is right. Pixels a warped neighbour does not cover (it drifted out) are
    averaged over the frames that cover them. Figures: ``docs/large-images.md``.

    References
    ----------
    .. [1] Dabov, Foi & Egiazarian, EUSIPCO 2007 (VBM3D).
    .. [2] Maggioni, Boracchi, Foi & Egiazarian, IEEE TIP 21(9), 2012 (V-BM4D).
    .. [3] Evangelidis & Psarakis, IEEE TPAMI 30(10), 2008 (ECC).
    """
    return TIMELAPSE_DENOISE.apply(
        image, channel_axis=channel_axis, sigma=sigma, mode=mode, radius=radius,
        motion=motion, time_axis=time_axis, profile=profile, threads=threads)
