"""noise_model= of BM3D/BM4D: "auto" tells white from correlated Gaussian noise and uses the
measured spectrum; "white"; "psd" with psd=. Small crops (the full floor, 256² on five
images × three kernels, is ``benchmarks/bench_noise_model.py``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import ndimage

from napari_restore import bm3d_denoise, bm4d_denoise
from napari_restore._arrays import Progress, Resolved
from napari_restore.metrics import psnr
from napari_restore.processors.bm3d import BM3D_DENOISE, BM4D_DENOISE
from napari_restore.processors.noise import estimate_noise_sigma
from napari_restore.processors.noise_model import measure_noise, noise_kind

SIGMA = 0.08


def _gauss(s: float) -> np.ndarray:
    r = int(np.ceil(3 * s))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return np.exp(-(x * x + y * y) / (2 * s * s))


KERNELS = {"gauss1": _gauss(1.0), "line": ndimage.gaussian_filter(np.eye(9), 0.5)}


def _unit(k: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    return k / np.sqrt((k**2).sum()) * sigma


def _image(name: str, n: int = 128, offset: int = 0) -> np.ndarray:
    from skimage import data

    img = data.astronaut() @ [0.299, 0.587, 0.114] if name == "astronaut" else getattr(data, name)()
    y, x = (img.shape[0] - n) // 2 + offset, (img.shape[1] - n) // 2 + offset
    return img[y:y + n, x:x + n].astype(np.float64) / 255.0


def _correlated(shape, kernel, seed):
    return ndimage.convolve(np.random.default_rng(seed).standard_normal(shape), _unit(kernel),
                            mode="wrap")


def _run(noisy, **kw):
    resolved: dict = {}
    return BM3D_DENOISE.apply(noisy, resolved=resolved, **kw), resolved


# -- correlated noise: auto is within 1 dB of the true PSD -------------------------------------

@pytest.mark.parametrize("name", ["camera", "astronaut"])
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_auto_on_correlated_noise_is_near_the_true_psd(name, kernel):
    clean = _image(name)
    noisy = clean + _correlated(clean.shape, KERNELS[kernel], seed=3)
    auto, resolved = _run(noisy)
    true = bm3d_denoise(noisy, psd=_unit(KERNELS[kernel]))
    white = bm3d_denoise(noisy, noise_model="white")
    assert resolved["noise_model"] == "correlated"
    assert resolved["sigma"] == pytest.approx(SIGMA, rel=0.25)  # in the image's units
    assert psnr(auto, clean) >= psnr(true, clean) - 1.0
    assert psnr(auto, clean) >= psnr(white, clean) + 2.0  # the issue: white did ~nothing


# -- white noise: auto picks white, so it is exactly the white-noise result --------------------

@pytest.mark.parametrize("name,n,offset,sigma", [
    ("camera", 128, 0, 0.08), ("camera", 96, 40, 0.05), ("astronaut", 128, 0, 0.1),
    ("coins", 128, 0, 0.08), ("moon", 96, 0, 0.03),
    # textured: brick and gravel are texture everywhere; grass at this noise level
    ("brick", 128, 0, 0.05), ("brick", 96, 30, 0.1), ("gravel", 128, 0, 0.08),
    ("grass", 256, 0, 0.08),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_white_noise_is_read_as_white(name, n, offset, sigma, seed):
    clean = _image(name, n, offset)
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)
    est = measure_noise((noisy - noisy.min()) / (noisy.max() - noisy.min()))
    assert not est.correlated, (est.flatness, est.variance_ratio)


def test_white_noise_auto_equals_white_exactly():
    for name, seed in (("camera", 0), ("brick", 1)):
        clean = _image(name, 96)
        noisy = clean + np.random.default_rng(seed).normal(0, SIGMA, clean.shape)
        auto, resolved = _run(noisy)
        assert resolved == {"noise_model": "white", "sigma": pytest.approx(
            estimate_noise_sigma(noisy), rel=1e-9)}
        np.testing.assert_array_equal(auto, bm3d_denoise(noisy, noise_model="white"))


def test_given_sigma_means_white_noise_of_that_level_and_psd_levels_scale():
    clean = _image("camera", 96)
    noisy = clean + _correlated(clean.shape, KERNELS["gauss1"], seed=4)
    out, resolved = _run(noisy, sigma=SIGMA)
    assert resolved == {}  # nothing automatic: σ was the user's, the model white
    np.testing.assert_array_equal(out, bm3d_denoise(noisy, SIGMA, noise_model="white"))
    est = measure_noise(noisy)
    psd = est.to_psd(noisy.shape, 0.05)
    assert psd.mean() / psd.size == pytest.approx(0.05**2)
    assert est.to_psd(noisy.shape).mean() / psd.size == pytest.approx(est.sigma**2)


def test_constant_plane_is_white_and_noise_free():
    flat = np.full((40, 40), 0.3)
    est = measure_noise(flat)
    assert not est.correlated and est.sigma == 0.0
    assert np.array_equal(bm3d_denoise(flat), flat)


# -- the parameter: values, psd=, errors ---------------------------------------------------

def test_psd_with_auto_means_psd():
    clean = _image("camera", 64)
    noisy = clean + _correlated(clean.shape, KERNELS["gauss1"], seed=5)
    k = _unit(KERNELS["gauss1"])
    a = bm3d_denoise(noisy, psd=k)
    np.testing.assert_array_equal(a, bm3d_denoise(noisy, psd=k, noise_model="psd"))


@pytest.mark.parametrize("call,exc,words", [
    (lambda z: bm3d_denoise(z, noise_model="psd"), ValueError, "noise_model='psd' needs psd="),
    (lambda z: bm3d_denoise(z, noise_model="white", psd=np.ones((3, 3))), ValueError,
     "psd= was given with noise_model='white'"),
    (lambda z: bm3d_denoise(z, noise_model="pink"), ValueError,
     "noise_model='pink' is not allowed; choose one of 'auto', 'white', 'psd'"),
    (lambda z: bm3d_denoise(z, noise_model=None), TypeError, "noise_model must not be None"),
    (lambda z: bm4d_denoise(np.stack([z[:16, :16]] * 8), noise_model="psd"), ValueError,
     "noise_model='psd' needs psd="),
    (lambda z: bm4d_denoise(np.stack([z[:16, :16]] * 8), psd=np.ones((9, 3, 3))), ValueError,
     "psd has shape \\(9, 3, 3\\); expected a power spectrum of the volume's shape"),
])
def test_bad_noise_model_gets_a_clear_error(call, exc, words):
    with pytest.raises(exc, match=words):
        call(np.zeros((32, 32)))


def test_noise_kind():
    assert noise_kind("auto", True) == "psd" and noise_kind("auto", False) == "auto"
    assert noise_kind("white", False) == "white" and noise_kind("psd", True) == "psd"
    with pytest.raises(TypeError, match="noise_model must be one of"):
        noise_kind(3, False)


def test_recipe_records_the_choice_and_resolved_says_what_auto_chose():
    clean = _image("camera", 64)
    noisy = (np.clip(clean + _correlated(clean.shape, KERNELS["gauss1"], 6), 0, 1) * 255
             ).astype(np.uint8)
    items: list[Progress] = []
    resolved: dict = {}
    BM3D_DENOISE.apply(noisy, progress=items.append, resolved=resolved)
    payloads = [p.info for p in items if isinstance(p.info, Resolved)]
    assert payloads and payloads[0].values["noise_model"] == "correlated"
    assert resolved["noise_model"] == "correlated"
    assert resolved["sigma"] == pytest.approx(SIGMA * 255, rel=0.3)  # grey levels
    assert BM3D_DENOISE.validate_params({})["noise_model"] == "auto"


def test_resolved_payload_comes_back_from_the_worker_process():
    clean = _image("camera", 64)
    noisy = clean + _correlated(clean.shape, KERNELS["line"], 7)
    resolved: dict = {}
    iso = BM3D_DENOISE.apply(noisy, cancel=threading.Event(), resolved=resolved)
    assert resolved["noise_model"] == "correlated"
    np.testing.assert_allclose(iso, bm3d_denoise(noisy), atol=1e-6)


def test_stack_reports_one_choice_per_plane():
    clean = _image("camera", 64)
    stack = np.stack([clean + np.random.default_rng(8).normal(0, SIGMA, clean.shape),
                      clean + _correlated(clean.shape, KERNELS["gauss1"], 9)])
    _, resolved = _run(stack)
    assert resolved["noise_model"] == ["white", "correlated"]


# -- colour and volumes ---------------------------------------------------------------------

def test_colour_correlated_noise_uses_per_channel_psds():
    from skimage import data

    clean = data.astronaut()[160:256, 200:296] / 255.0
    rng = np.random.default_rng(10)
    noise = np.stack([ndimage.convolve(rng.standard_normal(clean.shape[:2]),
                                       _unit(KERNELS["gauss1"]), mode="wrap") for _ in range(3)],
                     axis=-1)
    noisy = clean + noise
    auto, resolved = _run(noisy, channel_axis=-1)
    assert resolved["noise_model"] == "correlated"
    est = measure_noise((noisy / (noisy.max() - noisy.min())), channel_axis=-1)
    assert est.to_psd(clean.shape[:2]).shape == clean.shape  # (H, W, 3)
    k = _unit(KERNELS["gauss1"])
    full = np.abs(np.fft.fft2(k, s=clean.shape[:2])) ** 2 * clean.shape[0] * clean.shape[1]
    true = bm3d_denoise(noisy, channel_axis=-1, psd=np.stack([full] * 3, axis=-1))
    white = bm3d_denoise(noisy, channel_axis=-1, noise_model="white")
    assert psnr(auto, clean) >= psnr(true, clean) - 1.0
    assert psnr(auto, clean) >= psnr(white, clean) + 2.0
    noisy_w = clean + rng.normal(0, SIGMA, clean.shape)
    _, resolved = _run(noisy_w, channel_axis=-1)
    assert resolved["noise_model"] == "white"


def test_bm4d_decides_white_or_correlated():
    """Volumes: strongly low-pass 3-D noise is told from white noise (the level measured on
    an edge-dense volume is too high: see the module docstring; psd= is exact)."""
    from skimage.data import binary_blobs

    vol = binary_blobs(32, n_dim=3, rng=2, blob_size_fraction=0.2)[:12].astype(np.float64) * 0.6 + 0.2
    g = np.exp(-(np.arange(-3, 4) ** 2) / 2.0)
    k3 = _unit(g[:, None, None] * g[None, :, None] * g[None, None, :])
    noisy = vol + ndimage.convolve(np.random.default_rng(11).standard_normal(vol.shape), k3,
                                   mode="wrap")
    assert measure_noise(noisy).correlated
    assert measure_noise(noisy).to_psd(vol.shape).shape == vol.shape
    true = bm4d_denoise(noisy, psd=k3)  # the 3-D psd= path
    white = bm4d_denoise(noisy, noise_model="white")
    assert psnr(true, vol) >= psnr(white, vol) + 1.0
    # auto notices the correlation but, the volume level being unreliable, stays white
    # (never worse than white) and says to give psd=
    resolved: dict = {}
    auto = BM4D_DENOISE.apply(noisy, resolved=resolved)
    assert resolved["noise_model"] == "white" and "psd=" in resolved["noise_note"]
    assert psnr(auto, vol) >= psnr(noisy, vol) - 0.1
    # white noise on the same (edge-dense) volume stays white, and equals "white"
    white_noisy = vol + np.random.default_rng(12).normal(0, 0.1, vol.shape)
    resolved: dict = {}
    auto = BM4D_DENOISE.apply(white_noisy, resolved=resolved)
    assert resolved["noise_model"] == "white"
    np.testing.assert_array_equal(auto, bm4d_denoise(white_noisy, noise_model="white"))


# -- the panel ------------------------------------------------------------------------------

@pytest.mark.gui
def test_panel_status_and_recipe_say_what_auto_chose(qtbot, make_napari_viewer):
    pytest.importorskip("napari")
    from napari_restore import _isolate

    viewer = make_napari_viewer()
    try:
        clean = _image("camera", 64)
        noisy = (clean + _correlated(clean.shape, KERNELS["gauss1"], 13)).astype(np.float32)
        src = viewer.add_image(noisy, name="corr")
        _, panel = viewer.window.add_plugin_dock_widget("napari-restore", "BM3D denoise")
        panel.layer_widget.value = src
        assert panel.param_widgets["noise_model"].value == "auto"
        assert panel.extras[panel.spec.name].psd_layer_widget.native.isHidden()  # only for noise model "psd"
        panel.set_params({"profile": "lc", "sigma": None})
        assert panel.start() is not None
        qtbot.waitUntil(lambda: panel.state == "idle", timeout=60_000)
        out = viewer.layers[-1]
        meta = out.metadata["napari_restore"]
        assert meta["params"]["noise_model"] == "auto"
        assert meta["resolved"]["noise_model"] == "correlated"
        assert "noise: correlated (measured spectrum), σ ≈" in panel.status.value
        panel.set_params({"noise_model": "psd"})
        assert not panel.extras[panel.spec.name].psd_layer_widget.native.isHidden()
        assert panel.start() is None  # no PSD layer chosen: a clear error, nothing runs
        panel.set_params({"noise_model": "auto"})
        panel.extras[panel.spec.name].estimate_button.changed.emit(True)
        assert "(correlated)" in panel.extras[panel.spec.name].estimate_label.value
        assert panel.param_widgets["sigma"].value == pytest.approx(
            meta["resolved"]["sigma"], rel=0.02)
    finally:
        _isolate.shutdown()
