"""No-reference noise estimation on working arrays (shared by processors and metrics)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._arrays import Resolved

_MAD_TO_SIGMA = 0.6744897501960817  # Φ⁻¹(3/4): median |N(0, 1)|


def estimate_noise_sigma(plane: np.ndarray, *, channel_axis: int | None = None) -> float:
    """Gaussian noise standard deviation by the wavelet MAD rule (Donoho & Johnstone 1994).

    The median absolute value of the finest diagonal detail coefficients of a Daubechies-2
    wavelet transform, divided by 0.6745. Colour channels (``channel_axis``) are averaged.
    Returns 0.0 for constant or too-small planes instead of NaN.

    Parameters
    ----------
    plane : ndarray
        2-D (or 3-D with ``channel_axis``) floating-point array.
    channel_axis : int or None
        Colour axis to average over.
    """
    import pywt

    if channel_axis is not None:
        chans = np.moveaxis(plane, channel_axis, -1)
        return float(np.mean([estimate_noise_sigma(chans[..., c]) for c in range(chans.shape[-1])]))
    if min(plane.shape) < 4:
        return 0.0
    detail = pywt.dwtn(np.asarray(plane, dtype=np.float64), "db2")["d" * plane.ndim]
    sigma = float(np.median(np.abs(detail)) / _MAD_TO_SIGMA)
    return sigma if np.isfinite(sigma) else 0.0


@dataclass(frozen=True)
class AutoSigma:
    """A plane function whose ``sigma=None`` is estimated on each working plane and reported.

    ``AutoSigma(func)(plane, sigma=None, **params)`` estimates σ (:func:`estimate_noise_sigma`,
    colour planes averaged over channels), yields it as a :class:`~napari_restore._arrays.Resolved`
    payload — the boundary reports it in the image's units — and returns
    ``func(plane, sigma=σ, **params)``. Picklable when ``func`` is (worker processes).
    """

    func: Callable[..., Any]
    colour: bool = True  # False for volume processors: a trailing axis of 3 is spatial

    @property
    def __name__(self) -> str:  # noqa: A003 - read by error messages of the boundary
        return getattr(self.func, "__name__", "processor")

    def __call__(self, plane: np.ndarray, *, sigma: float | None = None,
                 **params: Any) -> Generator[Any, None, Any]:
        if sigma is None:
            colour = self.colour and plane.ndim == 3 and plane.shape[-1] == 3
            sigma = estimate_noise_sigma(plane, channel_axis=-1 if colour else None)
            yield Resolved({"sigma": sigma})
        return self.func(plane, sigma=sigma, **params)
