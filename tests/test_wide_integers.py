"""32- and 64-bit integer images (counts stored wide): scaled by their values' range.

Mapped by the dtype's range (2**32 levels and more), a noise σ of tens of counts fell below
the processors' noise-free thresholds and the image came back unchanged; int64 data lost
2048-count steps to float64 rounding. The same counts must give the same result whatever
integer dtype holds them.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import bm3d_denoise, classic_denoise
from napari_restore._arrays import from_working, ranged, to_working, value_scale, wide_integer

WIDE = (np.int32, np.uint32, np.int64, np.uint64)


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:64, :64]
    clean = 1500.0 + 2500.0 * ((xx // 16 + yy // 16) % 2) + 10.0 * xx
    noisy = np.rint(clean + rng.normal(0.0, 80.0, clean.shape))
    return clean, noisy


def test_wide_integers_are_scaled_by_their_values():
    data = np.array([[1200, 5000], [3000, 4100]], np.int32)
    scale = value_scale(data)
    assert (scale.low, scale.high) == (1200.0, 5000.0) and scale.by_values
    assert wide_integer(np.uint64) and not wide_integer(np.uint16) and ranged(np.int32)
    assert not ranged(np.uint16) and ranged(np.float32)
    assert value_scale(np.zeros(3, np.uint16)).high == 65535.0  # narrow: the dtype's range
    assert value_scale(data, (0, 10_000)).span == 10_000.0  # a stack's range when given
    work = to_working(data, scale)
    assert float(work.min()) == 0.0 and float(work.max()) == 1.0
    # results may leave the input's range (up to the dtype's limits)
    back = from_working(np.array([[-0.5, 1.5]]), scale)
    assert back.dtype == np.int32 and back.tolist() == [[-700, 6900]]


@pytest.mark.parametrize("dtype", WIDE)
@pytest.mark.parametrize("method", ["tv_chambolle", "nl_means", "wavelet"])
def test_classic_on_wide_integers_equals_float64(counts, dtype, method):
    """The same counts held as float64 (scaled by their range too: the reference)."""
    clean, noisy = counts
    ref = classic_denoise(noisy, method=method, sigma=80)
    out = classic_denoise(noisy.astype(dtype), method=method, sigma=80)
    assert out.dtype == dtype
    assert not np.array_equal(out, noisy.astype(dtype))  # it was denoised, not copied
    assert np.max(np.abs(out.astype(np.float64) - ref)) <= 1.0
    err = np.sqrt(np.mean((out - clean) ** 2))
    assert err < 0.6 * np.sqrt(np.mean((noisy - clean) ** 2))


@pytest.mark.parametrize("dtype", [np.int32, np.uint64])
def test_bm3d_on_wide_integers_equals_uint16(counts, dtype):
    clean, noisy = counts
    for sigma in (80.0, None):
        ref = bm3d_denoise(noisy.astype(np.uint16), sigma)
        out = bm3d_denoise(noisy.astype(dtype), sigma)
        assert out.dtype == dtype
        assert np.max(np.abs(out.astype(np.float64) - ref)) <= 1.0


def test_int64_with_a_large_offset_keeps_its_counts(counts):
    clean, noisy = counts
    offset = 2**40  # far beyond float32, near float64's resolution at the dtype's middle
    ref = classic_denoise(noisy.astype(np.uint16), method="tv_chambolle", sigma=80)
    out = classic_denoise(noisy.astype(np.int64) + offset, method="tv_chambolle", sigma=80)
    assert np.max(np.abs((out - offset).astype(np.float64) - ref)) <= 1.0


def test_wide_integer_stack_planes_share_one_scale(counts):
    """A stack is scaled once: each plane's result equals the whole stack's plane."""
    _, noisy = counts
    stack = np.stack([noisy, noisy * 0.5 + 200]).astype(np.int32)
    whole = classic_denoise(stack, method="tv_chambolle", sigma=80)
    first = classic_denoise(stack[0], method="tv_chambolle", sigma=80)
    assert np.max(np.abs(whole[0].astype(float) - first)) <= 1.0


@pytest.mark.parametrize("offset", [1e6, 1e9, 2**40])
def test_bm3d_far_from_zero_keeps_its_counts(counts, offset):
    """BM3D keeps zero at zero (offset=False), but not at the price of float32 resolution:
    counts + 10⁶ on a span of ~4000 were 22 counts off."""
    _, noisy = counts
    ref = bm3d_denoise(noisy, 80.0)
    data = noisy.astype(np.int64) + int(offset) if offset == 2**40 else noisy + offset
    out = bm3d_denoise(data, 80.0)
    assert np.max(np.abs((out - offset).astype(np.float64) - ref)) <= 1.0
