"""Quality metrics: PSNR/SSIM against a reference and no-reference noise estimates.

Images reach the metrics through the single-image boundary (:func:`~._arrays.single_image`):
any dtype, strides, colour axis (alpha ignored), lazy arrays; both images of a pair share the
reference's value scale, so PSNR's peak is the reference's range (an integer dtype's full
range, a float image's own span, or 1 inside [0, 1]).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._arrays import SingleImage, single_image

#: SSIM's Gaussian-free square window (scikit-image's default side).
SSIM_WINDOW = 7


def _pair(image: Any, reference: Any, channel_axis: int | None) -> tuple[SingleImage, SingleImage]:
    ref = single_image(reference, name="reference", channel_axis=channel_axis,
                       spatial_ndim=None, work_dtype=np.float64)
    if tuple(np.shape(image)) != ref.shape:
        raise ValueError(f"image shape {tuple(np.shape(image))} differs from reference shape "
                         f"{ref.shape}")
    img = single_image(image, name="image", channel_axis=channel_axis, spatial_ndim=None,
                       work_dtype=np.float64, scale=ref.scale, any_dtype=True)
    return img, ref


def psnr(image: Any, reference: Any, *, channel_axis: int | None = None) -> float:
    """Peak signal-to-noise ratio in dB; the peak is the reference's value range.

    Equals ``skimage.metrics.peak_signal_noise_ratio`` with that data range; identical
    images give ``inf``. Computed without overflow for any finite values.
    """
    img, ref = _pair(image, reference, channel_axis)
    diff = img.work - ref.work
    peak = float(np.max(np.abs(diff)))
    if peak == 0.0:
        return math.inf
    mse_scaled = float(np.mean(np.square(diff / peak)))  # in (0, 1]: no overflow
    return float(-20.0 * math.log10(peak) - 10.0 * math.log10(mse_scaled))


def ssim(image: Any, reference: Any, *, channel_axis: int | None = None) -> float:
    """Structural similarity (mean SSIM) against the reference, data range 1 on the
    reference's scale. Stacks are averaged plane by plane; planes smaller than the 7-pixel
    window use the largest odd window that fits (at least 3)."""
    from skimage.metrics import structural_similarity

    img, ref = _pair(image, reference, channel_axis)
    colour = channel_axis is not None
    core = 2 + colour
    a, b = img.work, ref.work
    side = min(a.shape[a.ndim - core:a.ndim - colour])
    win = min(SSIM_WINDOW, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"ssim needs planes of at least 3×3 pixels; got spatial shape "
                         f"{a.shape[a.ndim - core:a.ndim - colour]}")
    a = a.reshape((-1,) + a.shape[a.ndim - core:])
    b = b.reshape((-1,) + b.shape[b.ndim - core:])
    scale = max(1.0, float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    values = [structural_similarity(y / scale, x / scale, data_range=1.0 / scale, win_size=win,
                                    channel_axis=-1 if colour else None)
              for x, y in zip(a, b, strict=True)]
    return float(np.mean(values))


def noise_sigma(image: Any, *, channel_axis: int | None = None) -> float:
    """No-reference Gaussian noise estimate (wavelet MAD) in the image's own units (grey
    levels for integer images, values for float images)."""
    from .processors.noise import estimate_noise_sigma

    img = single_image(image, channel_axis=channel_axis, spatial_ndim=None,
                       work_dtype=np.float64)
    sigma = estimate_noise_sigma(img.work, channel_axis=-1 if channel_axis is not None else None)
    return float(img.scale.param_from_working(sigma))
