"""Third-party work-arounds, each scoped to the library it fixes, with the versions it covers.

Every work-around here has a test in ``tests/test_compat.py`` that fails once upstream fixes
the bug, so it can be removed that day. Nothing here patches numpy (or anything else) for the
whole process.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


class WorkerRuntimeError(Exception):
    """A ``RuntimeError`` raised inside a thread-worker generator, re-raised under another type.

    superqt's ``GeneratorWorker.work`` (superqt <= 0.9.0, the newest release on 2026-11-24)
    catches every ``RuntimeError`` from the generator, assuming the Qt worker object was
    deleted, and ``WorkerBase.run`` then only warns and returns: neither ``errored`` nor
    ``finished`` is emitted, so a panel waiting for ``finished`` would stay "running" forever.
    Our worker generators are wrapped by :func:`reraise_runtime_errors`; the original error is
    ``__cause__``. ``tests/test_compat.py::test_superqt_swallows_runtime_errors`` fails once
    superqt stops swallowing them, and this shim can go.
    """


def reraise_runtime_errors(gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Delegate to ``gen``, turning a ``RuntimeError`` into :class:`WorkerRuntimeError`."""
    try:
        return (yield from gen)
    except RuntimeError as exc:
        raise WorkerRuntimeError(str(exc)) from exc


def unwrap_worker_error(exc: BaseException) -> BaseException:
    """The error a user should see (undoes :func:`reraise_runtime_errors`)."""
    if isinstance(exc, WorkerRuntimeError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def viewer_camera(viewer: Any) -> Any:
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before.

    napari 0.9.0 deprecated ``viewer.camera`` (a DeprecationWarning on every access).
    """
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def viewer_grid(viewer: Any) -> Any:
    """Grid settings: ``viewer.canvas.grid`` from napari 0.9, ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


# -- bm3d 4.0.3 / bm4d 4.2.5 (the newest releases on 2026-11-24) ----------------------------
# Upstream bugs (numbered below), measured with these versions. Each helper below is used only on the
# way into bm3d/bm4d; tests/test_compat.py::test_bm3d_* / test_bm4d_* fail once upstream
# fixes the bug, so the helper can go.

#: bm3d profile names whose string bm3d rejects although the profile class exists
#: (bug 4: ``bm3d._select_profile`` knows no "lc"; bm4d's docstring names "lc" too but
#: ``bm4d._select_profile`` rejects it).
_LC_PROFILES = ("lc",)


def bm3d_profile(name: str, num_threads: int = 0) -> Any:
    """The value to pass as bm3d's ``profile``: the name itself, or a profile object.

    Covers bm3d ≤ 4.0.3, where ``bm3d.bm3d(z, s, "lc")`` raises ``TypeError`` although
    ``bm3d.BM3DProfileLC`` exists (detector: ``test_bm3d_rejects_lc_string``). With
    ``num_threads`` > 0 the profile object gets that thread count: the library documents that
    with more than one thread its output "may vary very slightly" between runs, so 1 is what
    makes recipes replay bit for bit. (bm3d has no public name→profile function: its
    ``_select_profile`` is used.)
    """
    if name in _LC_PROFILES:
        from bm3d import BM3DProfileLC

        pro = BM3DProfileLC()
    elif not num_threads:
        return name
    else:
        import bm3d

        pro = bm3d._select_profile(name)
    if num_threads:
        pro.num_threads = int(num_threads)
    return pro


def bm4d_profile(name: str, num_threads: int = 0, z: Any = None) -> Any:
    """Like :func:`bm3d_profile` for bm4d ≤ 4.2.5 ("lc" → ``BM4DProfileLC()``).

    Detector: ``test_bm4d_rejects_lc_string``. ``z`` (the volume) is needed to pick the
    profile object when ``num_threads`` is set (bm4d's ``_select_profile`` depends on it).
    """
    if name in _LC_PROFILES:
        from bm4d.profiles import BM4DProfileLC

        pro = BM4DProfileLC()
    elif not num_threads:
        return name
    else:
        import bm4d

        pro = bm4d._select_profile(name, z)
    if num_threads:
        pro.num_threads = int(num_threads)
    return pro


def white_psd(sigma: float, shape: tuple[int, ...]) -> Any:
    """The power spectrum bm3d/bm4d build from a scalar ``sigma`` for an array of ``shape``.

    bm4d's convention (``bm4d.bm4d``): ``ones(shape) * size * sigma**2``.
    """
    import numpy as np

    return np.full(shape, float(sigma) ** 2 * float(np.prod(shape)))


def refilter_sigma(sigma: float, shape: tuple[int, ...], denoise_residual: bool) -> Any:
    """``sigma`` as bm3d/bm4d should receive it: a white PSD when residual re-filtering is on.

    Bug 1 (bm4d ≤ 4.2.5, every NumPy version): with ``denoise_residual`` (the "refilter"
    profiles) and a *scalar* sigma, ``bm4d.get_filtered_residual`` zero-pads the residual to
    twice the size but not the PSD made from the scalar, and fails with ``operands could not
    be broadcast together with shapes (2M,2N,1) (M,N,1)``. The equivalent white-noise PSD goes
    through the padded-PSD path and runs (same PSNR as "np" on white noise).
    Detector: ``test_bm3d_refilter_scalar_sigma_fails``.
    """
    if denoise_residual:
        return white_psd(sigma, shape)
    return sigma


def deblur_sigma(sigma: float, shape: tuple[int, ...]) -> Any:
    """``sigma`` for ``bm3d.bm3d_deblurring`` on a 2-D image: the equivalent white PSD.

    Bug 3 (bm3d ≤ 4.0.3, every NumPy version): for a 2-D ``z`` and a scalar sigma,
    ``bm3d_deblurring`` builds its PSD as ``ones(z.shape) * sigma².reshape(1, 1, 1)``, i.e. of
    shape (1, M, N) instead of (M, N, 1). A square image then becomes an (M, M, N) stack (slow)
    and the Wiener stage raises "Estimate passed in stage_arg must be equal size to z!"; a
    non-square one fails with a broadcasting error. Passing the (M, N) white PSD (what the
    library meant to build) avoids it.
    Detector: ``test_bm3d_deblurring_2d_scalar_sigma_fails``.
    """
    return white_psd(sigma, shape)


_BM4D_NUMPY: Any = None

#: Bug 5 (bm4d ≤ 4.2.5, which runs bm3d too): the C library keeps one global thread pool, so
#: two calls at the same time from two Python threads (ctypes releases the GIL) abort the whole
#: process ("Threading.cpp:17: void ThreadPool::launchPool(int): Assertion `_threads.empty()'
#: failed") or deadlock. Every in-process bm3d/bm4d call holds this lock (the library already
#: uses every core, so nothing is lost); worker processes (``isolate``) each have their own
#: library. Detector: ``test_bm4d_concurrent_calls_crash``.
import threading as _threading

BM4D_LOCK = _threading.Lock()


def bm4d_module() -> Any:
    """Import bm4d, giving *its module globals only* a numpy namespace that has ``trapz``.

    Bug 2 (bm4d ≤ 4.2.5 with NumPy ≥ 2.4): NumPy 2.4 removed ``np.trapz``; bm4d calls it
    whenever a PSD array is given with automatic λ/μ² (every correlated-noise call, every
    ``bm3d_deblurring`` call, and our "refilter" work-around) and raises ``AttributeError``.
    We replace the name ``np`` *inside the bm4d module* by a copy of numpy's namespace with
    ``trapz = numpy.trapezoid`` (same signature and result); numpy itself and every other
    module are untouched. Nothing happens on NumPy < 2.4. Detector:
    ``test_bm4d_needs_trapz_on_numpy_2_4``.
    """
    global _BM4D_NUMPY
    import types

    import bm4d
    import numpy

    if hasattr(numpy, "trapz") or bm4d.np is _BM4D_NUMPY:
        return bm4d
    if _BM4D_NUMPY is None:
        ns = types.ModuleType("numpy", numpy.__doc__)
        ns.__dict__.update(numpy.__dict__)
        ns.trapz = numpy.trapezoid  # the only addition
        ns.__getattr__ = lambda name: getattr(numpy, name)  # lazily loaded submodules
        _BM4D_NUMPY = ns
    bm4d.np = _BM4D_NUMPY
    return bm4d


def bm3d_rgb(z: Any, sigma_psd: Any, profile: Any, colorspace: str = "opp") -> Any:
    """``bm3d.bm3d_rgb`` that also takes planes with a constant colour-transformed channel.

    Bug 6 (bm3d ≤ 4.0.3, every NumPy version): ``bm3d.rgb_to`` normalises each channel of the
    colour transform by its range, ``(o - o_min) / (o_max - o_min)``; a channel that is
    constant — the chroma of a grey image stored as RGB ("opp"), any constant plane — has
    range 0, and the result is all NaN (a constant luminance channel instead makes bm4d's
    multichannel call fail with "too many values to unpack"). This is ``bm3d_rgb`` line for
    line, except that a constant channel is normalised by 1 (it becomes 0 and stays 0; the
    inverse transform uses the true range, so it comes back as its constant), and that with a
    constant luminance the varying chroma channels are denoised one by one. For every other
    plane the library itself runs. Detector: ``test_bm3d_rgb_constant_channel_is_nan``.
    """
    import numpy as np

    bm3d = bm3d_module()
    flat = np.asarray(z).reshape(-1, 3)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero image's range is 0
        _, _, _, _, a = bm3d.rgb_to(np.zeros((1, 1, 3)), colorspace)  # the forward matrix
    o = flat @ a.T
    o_max, o_min = o.max(axis=0), o.min(axis=0)
    if np.all(o_max > o_min):
        return bm3d.bm3d_rgb(z, sigma_psd, profile, colorspace=colorspace)
    rng = np.where(o_max > o_min, o_max - o_min, 1.0)
    zt = ((o - o_min) / rng).reshape(z.shape)
    scale = np.sum(a.T ** 2, axis=0) / rng ** 2
    if np.ndim(sigma_psd) == 1 or (np.ndim(sigma_psd) == 3 and sigma_psd.shape[2] == 3):
        sigma_psd = np.array(sigma_psd)
        if np.ndim(sigma_psd) == 3:
            t = sigma_psd.reshape(-1, 3) @ (a.T ** 2)
            sigma_psd = t.reshape(sigma_psd.shape) / np.transpose(np.atleast_3d(rng ** 2), (0, 2, 1))
        else:
            sigma_psd = np.sqrt(np.ravel(sigma_psd).T ** 2 @ (a.T ** 2) / rng ** 2)
    elif np.squeeze(sigma_psd).ndim <= 1:
        sigma_psd = sigma_psd * np.transpose(np.atleast_3d(np.sqrt(scale)), (0, 2, 1))
    else:
        sigma_psd = np.atleast_3d(sigma_psd) * np.transpose(np.atleast_3d(scale), (0, 2, 1))
    if o_max[0] > o_min[0]:
        y_hat = bm3d.bm3d(zt, sigma_psd, profile)
    else:
        # constant luminance: bm4d's multichannel call cannot match blocks on it (it returns
        # early and fails to unpack); the varying chroma channels are denoised on their own
        y_hat = zt.copy()
        sig = np.broadcast_to(np.atleast_3d(sigma_psd), np.atleast_3d(sigma_psd).shape[:2] + (3,))
        for c in np.flatnonzero(o_max > o_min):
            from ._arrays import contiguous

            s_c = sig[0, 0, c] if sig.shape[:2] == (1, 1) else contiguous(sig[..., c])
            y_hat[..., c] = np.asarray(bm3d.bm3d(contiguous(zt[..., c]), s_c, profile))
    return bm3d.rgb_to(y_hat, colorspace, True, o_max, o_min)[0]


def bm3d_module() -> Any:
    """Import bm3d with the bm4d work-around in place (bm3d runs on bm4d)."""
    bm4d_module()
    import bm3d

    return bm3d


# -- OpenCV cv2.remap precision ------------------------------------------------------------
#: ``cv2.remap`` with float maps and ``INTER_LINEAR`` interpolates at fixed 1/32 steps in
#: OpenCV ≤ 4.x (``INTER_TAB_SIZE``: a coordinate is rounded to the nearest 1/32) but at the
#: exact float coordinate in OpenCV 5. LB-CLAHE blends its tiles' mappings with remap; with
#: raw coordinates the uint8 fast path and the continuous path agreed on OpenCV 5 and differed
#: by up to 1.3 grey levels on OpenCV 4.11. Coordinates on this grid are interpolated the same
#: way by every version. Detector: ``test_opencv_remap_weight_steps`` (fails if an OpenCV
#: version stops behaving as described here).
REMAP_STEPS = 32


def remap_grid(t: Any) -> Any:
    """Coordinates rounded to the 1/32 grid that ``cv2.remap`` resolves on every version."""
    import numpy as np

    return np.rint(np.multiply(t, REMAP_STEPS)) / REMAP_STEPS


def viewer_text_overlay(viewer: Any) -> Any:
    """``viewer.canvas.overlays.text`` from napari 0.9, ``viewer.text_overlay`` before."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    text = getattr(overlays, "text", None) if overlays is not None else None
    return text if text is not None else viewer.text_overlay
