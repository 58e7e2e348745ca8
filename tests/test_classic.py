"""Classic denoise through the whole pipe: quality floors, dtypes, colour, stacks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import digest

from napari_restore import classic_denoise
from napari_restore.metrics import psnr
from napari_restore.processors.classic import METHODS

# Floors on a textured 128² camera crop, σ = 25 grey levels (noisy input: 20.6 dB). Measured:
# nl_means 27.6, tv 27.1, wavelet 25.8, opencv 27.5 dB; floors leave about 1 dB of slack.
FLOORS = {"nl_means": 26.6, "tv_chambolle": 26.1, "wavelet": 24.8, "opencv_nlm": 26.5}


@pytest.mark.parametrize("method", METHODS)
def test_methods_beat_noisy_input(method, camera_pair):
    clean, noisy = camera_pair
    before = digest(noisy)
    out = classic_denoise(noisy, method=method)
    assert digest(noisy) == before
    assert out.dtype == np.uint8 and out.shape == noisy.shape
    assert psnr(out, clean) >= FLOORS[method]
    assert psnr(out, clean) > psnr(noisy, clean) + 5


@pytest.mark.parametrize("method", METHODS)
def test_uint16_and_float_inputs_keep_dtype_and_quality(method, camera_pair):
    clean, noisy = camera_pair
    n16 = noisy.astype(np.uint16) * 257
    out16 = classic_denoise(n16, method=method)
    assert out16.dtype == np.uint16
    assert len(np.unique(out16)) > 256  # 16-bit precision kept, not squeezed through 8 bits
    outf = classic_denoise(noisy.astype(np.float32) / 255, method=method)
    assert outf.dtype == np.float32
    p8 = psnr(classic_denoise(noisy, method=method), clean)
    assert psnr(out16, clean.astype(np.uint16) * 257) > p8 - 1.0
    assert psnr(outf, clean.astype(np.float32) / 255) > p8 - 1.0


def test_opencv_8_and_16_bit_agree(camera_pair):
    clean, noisy = camera_pair
    p8 = psnr(classic_denoise(noisy, method="opencv_nlm", bit_depth="8"), clean)
    p16 = psnr(classic_denoise(noisy, method="opencv_nlm", bit_depth="16"), clean)
    assert p16 > p8 - 1.0


def test_sigma_estimate_matches_truth(camera_pair):
    from napari_restore.metrics import noise_sigma

    _, noisy = camera_pair
    assert noise_sigma(noisy) == pytest.approx(25, rel=0.15)  # grey levels


@pytest.mark.parametrize("method", METHODS)
def test_rgb_and_rgba(method):
    from napari_restore._sample_data import astronaut

    clean, noisy = (a[100:196, 100:196] for a in astronaut())
    rgba = np.dstack([noisy, np.arange(96 * 96, dtype=np.uint32).reshape(96, 96).astype(np.uint8)])
    out = classic_denoise(rgba, method=method, channel_axis=-1)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    assert psnr(out[..., :3], clean, channel_axis=-1) > psnr(noisy, clean, channel_axis=-1) + 3


def test_stack_plane_by_plane_equals_per_plane_calls(camera_pair):
    _, noisy = camera_pair
    stack = np.stack([noisy, noisy[::-1], noisy[:, ::-1]])
    out = classic_denoise(stack, method="tv_chambolle")
    for k in range(3):
        np.testing.assert_array_equal(out[k], classic_denoise(stack[k], method="tv_chambolle"))


def test_constant_image_is_returned_unchanged():
    img = np.full((20, 20), 77, np.uint8)
    for m in METHODS:
        np.testing.assert_array_equal(classic_denoise(img, method=m), img)


def test_non_contiguous_views_reach_opencv_safely(camera_pair):
    _, noisy = camera_pair
    view = np.asfortranarray(noisy)[::-1, ::2]
    out = classic_denoise(view, method="opencv_nlm")
    np.testing.assert_array_equal(out, classic_denoise(np.array(view, order="C"), method="opencv_nlm"))


def test_too_small_image_is_rejected():
    with pytest.raises(ValueError, match="too small"):
        classic_denoise(np.zeros((4, 40), np.uint8))
