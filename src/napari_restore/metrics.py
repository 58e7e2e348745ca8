"""Quality metrics: PSNR/SSIM against a reference and no-reference noise estimates."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._arrays import check_image, to_working, value_scale


def _pair(image: Any, reference: Any, channel_axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    ref, _ = check_image(reference, name="reference", channel_axis=channel_axis)
    img, _ = check_image(image, name="image", channel_axis=channel_axis)
    if tuple(img.shape) != tuple(ref.shape):
        raise ValueError(f"image shape {tuple(img.shape)} differs from reference shape {tuple(ref.shape)}")
    scale = value_scale(ref)
    return to_working(img, scale, np.float64), to_working(ref, scale, np.float64)


def psnr(image: Any, reference: Any, *, channel_axis: int | None = None) -> float:
    """Peak signal-to-noise ratio in dB, both mapped to [0, 1] by the reference's value scale."""
    from skimage.metrics import peak_signal_noise_ratio

    img, ref = _pair(image, reference, channel_axis)
    with np.errstate(divide="ignore"):  # identical images: +inf, as scikit-image returns
        return float(peak_signal_noise_ratio(ref, img, data_range=1.0))


def ssim(image: Any, reference: Any, *, channel_axis: int | None = None) -> float:
    """Structural similarity (mean SSIM) against the reference, data range 1."""
    from skimage.metrics import structural_similarity

    img, ref = _pair(image, reference, channel_axis)
    return float(structural_similarity(ref, img, data_range=1.0, channel_axis=channel_axis))


def noise_sigma(image: Any, *, channel_axis: int | None = None) -> float:
    """No-reference Gaussian noise estimate (wavelet MAD) as a fraction of the value range."""
    from .processors.noise import estimate_noise_sigma

    arr, cax = check_image(image, channel_axis=channel_axis)
    work = to_working(arr, value_scale(arr), np.float64)
    return estimate_noise_sigma(work, channel_axis=cax)
