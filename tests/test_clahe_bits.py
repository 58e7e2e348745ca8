"""LB-CLAHE on 12-bit data in uint16: equalised over the bits it uses; auto choices reported."""

from __future__ import annotations

import numpy as np
import pytest

from napari_restore import lb_clahe, predict_clahe_params
from napari_restore._arrays import nominal_bits
from napari_restore.processors.registry import get_processor


def _dim12(seed=0):
    from skimage import data

    img = data.moon()[100:228, 100:228].astype(np.float64) / 255
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(300 + img * 900 + rng.normal(0, 5, img.shape)), 0, 4095).astype(np.uint16)


@pytest.mark.parametrize("high,bits", [(255, 10), (1023, 10), (1024, 12), (4095, 12),
                                       (4096, 14), (16383, 14), (16384, 16), (65535, 16)])
def test_nominal_bits(high, bits):
    arr = np.array([[0, high]], np.uint16)
    assert nominal_bits(arr) == bits
    assert nominal_bits(np.array([[0, 200]], np.uint8)) == 8


def test_12_bit_data_is_equalised_like_the_same_data_at_16_bits():
    u12 = _dim12()
    out12 = lb_clahe(u12, clip_limit=2.0, tile_grid=(4, 4))
    out16 = lb_clahe(u12 * 16, clip_limit=2.0, tile_grid=(4, 4))
    assert out12.max() <= 4095  # stays in the data's 12 bits
    assert np.std(out12.astype(float)) > 2 * np.std(u12.astype(float))  # really equalised
    diff = np.abs(out12.astype(float) * 16 - out16.astype(float))
    assert np.percentile(diff, 99) < 0.01 * 65535
    assert predict_clahe_params(u12) == predict_clahe_params(u12 * 16)


def test_predicted_values_are_reported_and_recorded_as_auto():
    resolved: dict = {}
    get_processor("lb_clahe").apply(_dim12(1), resolved=resolved)
    clip, grid = predict_clahe_params(_dim12(1))
    assert resolved["clip_limit"] == pytest.approx(clip)
    assert tuple(resolved["tile_grid"]) == tuple(grid)
