from __future__ import annotations

import numpy as np

from napari_restore import _sample_data as s
from napari_restore.metrics import noise_sigma


def test_samples_are_deterministic_and_noisy():
    c1, n1 = s.camera()
    _, n2 = s.camera()
    np.testing.assert_array_equal(n1, n2)
    assert c1.shape == (512, 512) and n1.dtype == np.uint8
    assert 0.08 * 255 < noise_sigma(n1) < 0.11 * 255  # grey levels


def test_colour_volume_and_grain_samples():
    c, n = s.astronaut()
    assert n.shape == c.shape == (512, 512, 3)
    c, n = s.blobs_volume()
    assert n.shape == (64, 64, 64) and n.dtype == np.float32
    assert 0.19 < c.min() and c.max() < 0.81
    assert abs(float(np.std(n - c)) - 0.1) < 0.005
    c, g = s.film_grain()
    grain = g.astype(float) - c
    assert g.shape == c.shape and 3 < grain.std() < 25
    # mono grain: the same field on every channel
    assert np.corrcoef(grain[..., 0].ravel(), grain[..., 2].ravel())[0, 1] > 0.9
