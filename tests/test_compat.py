"""Each _compat work-around, and a test that fails once upstream fixes the bug it covers."""

from __future__ import annotations

import pytest

from napari_restore._compat import WorkerRuntimeError, reraise_runtime_errors, unwrap_worker_error


def _raising():
    yield 1
    raise RuntimeError("inner")


def test_reraise_runtime_errors_wraps_and_unwraps():
    gen = reraise_runtime_errors(_raising())
    assert next(gen) == 1
    with pytest.raises(WorkerRuntimeError) as info:
        next(gen)
    assert isinstance(unwrap_worker_error(info.value), RuntimeError)
    assert str(unwrap_worker_error(info.value)) == "inner"


@pytest.mark.gui
def test_superqt_swallows_runtime_errors(qtbot):
    """Upstream bug detector: superqt's GeneratorWorker drops RuntimeErrors silently.

    When this test fails, superqt emits ``errored``/``finished`` for RuntimeErrors again and
    ``reraise_runtime_errors`` can be removed from ``_compat.py``.
    """
    from superqt.utils import create_worker

    worker = create_worker(_raising, _start_thread=False)
    seen = []
    worker.errored.connect(lambda e: seen.append("errored"))
    worker.finished.connect(lambda: seen.append("finished"))
    with pytest.warns(RuntimeWarning, match="RuntimeError in aborted thread"):
        worker.run()  # synchronously, in this thread
    assert seen == []


# -- bm3d 4.0.3 / bm4d 4.2.5 upstream-bug detectors ------------------------------------------
# Each one asserts that the *raw* library still has the bug. When one of them fails, upstream
# fixed it: remove the matching helper in _compat.py (and this test).


def _bm3d_noisy(n=32, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.clip(0.5 + 0.1 * rng.standard_normal((n, n)), 0, 1)


def test_bm3d_refilter_scalar_sigma_fails():
    """Bug 1: 'refilter' + scalar sigma breaks in bm4d.get_filtered_residual (any NumPy)."""
    from napari_restore import _compat

    bm3d = _compat.bm3d_module()
    z = _bm3d_noisy()
    with pytest.raises(ValueError, match="could not be broadcast"):
        bm3d.bm3d(z, 0.1, "refilter")
    # the work-around: the equivalent white PSD runs
    assert bm3d.bm3d(z, _compat.refilter_sigma(0.1, z.shape, True), "refilter").shape == z.shape


def test_bm4d_refilter_scalar_sigma_fails():
    """Bug 1 in bm4d itself (volumes), same cause."""
    import numpy as np

    from napari_restore import _compat

    bm4d = _compat.bm4d_module()
    z = np.random.default_rng(0).random((8, 8, 8))
    with pytest.raises(ValueError, match="could not be broadcast"):
        bm4d.bm4d(z, 0.1, "refilter")


def test_bm4d_needs_trapz_on_numpy_2_4(monkeypatch):
    """Bug 2: NumPy >= 2.4 has no np.trapz, which bm4d calls for PSD input."""
    import bm4d
    import numpy as np

    from napari_restore import _compat

    bm3d = _compat.bm3d_module()
    if hasattr(np, "trapz"):  # NumPy < 2.4: the bug does not apply, nothing may be patched
        assert bm4d.np is np
        bm3d.bm3d(_bm3d_noisy(), _compat.white_psd(0.1, _bm3d_noisy().shape), "np")
        return
    assert bm4d.np is not np and bm4d.np.trapz is np.trapezoid  # scoped to bm4d
    assert not hasattr(np, "trapz")  # numpy itself untouched
    z = _bm3d_noisy()
    psd = _compat.white_psd(0.1, z.shape)
    bm3d.bm3d(z, psd, "np")  # runs with the work-around
    monkeypatch.setattr(bm4d, "np", np)  # the raw library
    with pytest.raises(AttributeError, match="trapz"):
        bm3d.bm3d(z, psd, "np")


def test_bm3d_deblurring_2d_scalar_sigma_fails():
    """Bug 3: bm3d_deblurring with a 2-D image and a scalar sigma (any NumPy).

    The PSD it builds from the scalar has shape (1, M, N) instead of (M, N, 1). On a square
    image that silently turns the problem into an (M, M, N) stack (slow: 14 s at 32²) and ends
    with "Estimate passed in stage_arg must be equal size to z!"; on a non-square one it fails
    at once with a broadcasting error, which keeps this detector fast.
    """
    from napari_restore import _compat

    bm3d = _compat.bm3d_module()
    z = _bm3d_noisy(24)[:16]
    psf = bm3d.gaussian_kernel((5, 5), 1.0)
    with pytest.raises(ValueError, match="could not be broadcast|must be equal size to z"):
        bm3d.bm3d_deblurring(z, 0.01, psf)
    assert bm3d.bm3d_deblurring(z, _compat.deblur_sigma(0.01, z.shape), psf).shape == z.shape


def test_bm3d_rejects_lc_string():
    """Bug 4: the 'lc' profile string is rejected although BM3DProfileLC exists."""
    from napari_restore import _compat

    bm3d = _compat.bm3d_module()
    with pytest.raises(TypeError, match="profile"):
        bm3d._select_profile("lc")
    assert isinstance(_compat.bm3d_profile("lc"), bm3d.BM3DProfileLC)
    assert _compat.bm3d_profile("np") == "np"


def test_bm4d_rejects_lc_string():
    """Bug 4 in bm4d: its docstring names 'lc', its profile selection rejects it."""
    import numpy as np

    from napari_restore import _compat

    bm4d = _compat.bm4d_module()
    with pytest.raises(TypeError, match="profile"):
        bm4d._select_profile("lc", np.zeros((8, 8, 8)))
    from bm4d.profiles import BM4DProfileLC

    assert isinstance(_compat.bm4d_profile("lc"), BM4DProfileLC)


_CONCURRENT = """
import threading, numpy as np, bm3d
z = np.random.default_rng(0).random((64, 64))
def run():
    for _ in range(5):
        bm3d.bm3d(z, 0.1, "np")
ts = [threading.Thread(target=run) for _ in range(3)]
[t.start() for t in ts]
[t.join() for t in ts]
print("ok")
"""


def test_bm4d_concurrent_calls_crash():
    """Bug 5: concurrent bm3d/bm4d calls from several threads abort (or hang) the process.

    Run in a child process, since it kills its interpreter. When it prints "ok", upstream made
    the library re-entrant and ``_compat.BM4D_LOCK`` can go.
    """
    import subprocess
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", _CONCURRENT], capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return  # a deadlock: the bug is still there
    assert out.returncode != 0 and "ok" not in out.stdout, out.stdout
    assert "launchPool" in out.stderr or out.returncode < 0, out.stderr[-500:]


def test_concurrent_wrapper_calls_are_serialised():
    """With the lock, our wrapper survives the same concurrent use (here, in-process)."""
    import threading

    import numpy as np

    from napari_restore import bm3d_denoise

    z = np.random.default_rng(0).random((48, 48))
    results = []

    def run():
        results.append(bm3d_denoise(z, 0.1, profile="lc"))

    ts = [threading.Thread(target=run) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert len(results) == 3


def _bilinear_row(table, x):
    """Exact linear interpolation of a 1-row table at float coordinates (the reference)."""
    import numpy as np

    i = np.minimum(np.floor(x).astype(int), table.size - 2)
    return table[i] + (x - i) * (table[i + 1] - table[i])


def test_opencv_remap_weight_steps():
    """Version detector: cv2.remap (float maps, INTER_LINEAR) rounds coordinates to 1/32 on
    OpenCV 4 (INTER_TAB_SIZE) and interpolates exactly on OpenCV 5.

    This difference made LB-CLAHE's uint8 fast path and its continuous path disagree by up to
    1.3 grey levels on OpenCV 4.11 only; ``_compat.remap_grid`` puts every coordinate on the
    1/32 grid, where both versions agree. The test fails if an OpenCV version behaves other
    than ``_compat.REMAP_STEPS`` describes (then the CLAHE mapping must be re-checked).
    """
    import cv2
    import numpy as np

    from napari_restore._compat import REMAP_STEPS, remap_grid

    table = np.tile(np.array([0.0, 1.0, 0.25, 0.75], np.float32), 2)[None].repeat(2, axis=0)
    x = np.linspace(0.0, 6.9, 997, dtype=np.float32)[None]

    def remap(xs):
        return cv2.remap(table, xs, np.zeros_like(xs), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)[0]

    on_grid = remap_grid(x).astype(np.float32)
    assert np.all(on_grid * REMAP_STEPS == np.rint(on_grid * REMAP_STEPS))
    # on the grid every version is the exact interpolation
    np.testing.assert_allclose(remap(on_grid), _bilinear_row(table[0], on_grid[0]), atol=1e-6)
    raw = np.abs(remap(x) - _bilinear_row(table[0], x[0])).max()
    if int(cv2.__version__.split(".")[0]) < 5:
        assert 0.005 < raw <= 0.5 / REMAP_STEPS + 1e-6  # rounded to the nearest 1/32
        np.testing.assert_allclose(remap(x), remap(on_grid), atol=1e-6)
    else:
        assert raw < 1e-5  # exact: without remap_grid the two versions differ


def test_clahe_paths_agree_on_this_opencv():
    """LB-CLAHE's uint8 path equals its continuous path on the installed OpenCV (both ends of
    the matrix run this): the tile weights and level positions are on remap's 1/32 grid."""
    import numpy as np

    from napari_restore.processors.clahe_core import clahe_channel

    rng = np.random.default_rng(3)
    y, x = np.mgrid[:90, :130]
    u8 = np.clip(120 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 12, x.shape),
                 0, 255).astype(np.uint8)
    for grid in [(3, 2), (5, 17)]:
        fast = clahe_channel(u8, 30.0, grid)
        slow = clahe_channel(u8.astype(np.float32) / np.float32(255), 30.0, grid)
        assert np.abs(fast - slow).max() * 255 < 0.01


def _grey_rgb(n=40, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    g = np.clip(0.5 + 0.2 * np.sin(np.arange(n) / 4.0)[:, None] + rng.normal(0, 0.1, (n, n)), 0, 1)
    return np.repeat(g[..., None], 3, axis=-1)


def test_bm3d_rgb_constant_channel_is_nan():
    """Upstream bug detector (bm3d 4.0.3): a grey image as RGB ("opp": chroma constant) comes
    back all NaN, and so does a constant plane. Fails once bm3d handles both; then
    ``_compat.bm3d_rgb`` can go."""
    import warnings

    import numpy as np

    from napari_restore._compat import bm3d_module

    bm3d = bm3d_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = bm3d.bm3d_rgb(_grey_rgb(), 0.1, "np", colorspace="opp")
        const = bm3d.bm3d_rgb(np.full((40, 40, 3), 0.5), 0.1, "np", colorspace="opp")
    assert np.isnan(out).all()
    assert np.isnan(const).all()


@pytest.mark.parametrize("colorspace", ["opp", "YCbCr"])
def test_bm3d_rgb_work_around(colorspace):
    """Ordinary colour planes: the library's result itself; degenerate ones: finite, grey
    stays grey, a constant stays that constant."""
    import numpy as np

    from napari_restore._compat import bm3d_module, bm3d_profile, bm3d_rgb, white_psd

    bm3d = bm3d_module()
    rng = np.random.default_rng(1)
    colour = np.clip(_grey_rgb() + rng.normal(0, 0.05, (40, 40, 3)), 0, 1)
    for noise in (0.1, white_psd(0.1, (40, 40))):  # one thread: bit-reproducible
        np.testing.assert_array_equal(
            bm3d_rgb(colour, noise, bm3d_profile("np", 1), colorspace),
            bm3d.bm3d_rgb(colour, noise, bm3d_profile("np", 1), colorspace=colorspace))
    grey = bm3d_rgb(_grey_rgb(), 0.1, "np", colorspace)
    assert np.isfinite(grey).all() and np.abs(grey[..., 0] - grey[..., 2]).max() < 1e-5
    assert np.abs(grey - _grey_rgb()).mean() < 0.1  # denoised, not replaced
    const = np.broadcast_to(np.array([0.2, 0.5, 0.8]), (40, 40, 3))
    np.testing.assert_allclose(bm3d_rgb(const, 0.1, "np", colorspace), const, atol=1e-5)
