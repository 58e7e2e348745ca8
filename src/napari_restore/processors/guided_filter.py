"""Guided filter (He, Sun & Tang, TPAMI 2013) in O(N) with box filters.

Used by :mod:`.clahe` to suppress the noise that contrast equalisation amplifies in flat
regions while keeping edges. Every array here comes from the array boundary (C-contiguous
float32/float64 working arrays), so it can go straight to ``cv2.boxFilter``.

The image is filtered in row strips (:mod:`napari_restore._parallel`): each strip reads
``2 * radius`` extra rows above and below, so the result is identical to filtering the whole
image at once, while the chain of box filters and element-wise steps stays in the CPU cache and
the strips run on all cores.
"""

from __future__ import annotations

import numpy as np

from .._parallel import for_strips, strip_rows


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    k = 2 * radius + 1
    return cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def _coefficients(g: np.ndarray, p: np.ndarray | None, radius: int, eps: float):
    """The per-window linear model ``(a, b)`` of one block (``p=None``: self-guided)."""
    mean_g = _box(g, radius)
    tmp = g * g
    var_g = _box(tmp, radius)
    np.multiply(mean_g, mean_g, out=tmp)
    var_g -= tmp
    if p is None:  # self-guided: cov(g, p) = var(g); a = var / (var + eps), b = mean (1 - a)
        np.add(var_g, eps, out=tmp)
        a = np.divide(var_g, tmp, out=var_g)
        b = np.subtract(1.0, a, out=tmp)
        b *= mean_g
        return a, b
    mean_p = _box(p, radius)
    cov = _box(g * p, radius)
    cov -= mean_g * mean_p
    var_g += eps
    a = np.divide(cov, var_g, out=cov)
    b = mean_p - a * mean_g
    return a, b


def guided_filter(
    guide: np.ndarray, src: np.ndarray | None = None, *, radius: int = 4, eps: float = 1e-3
) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` guided by ``guide`` (both 2-D, same shape).

    Locally, the output is a linear function ``a * guide + b`` of the guide, fitted in every
    ``(2 radius + 1)²`` window by ridge regression with regulariser ``eps`` (a variance, in the
    squared units of the values). Where the guide's local variance is well below ``eps`` the
    window is flat and the output is the local mean; where it is well above, edges are kept.
    ``src=None`` means the self-guided filter (``src = guide``), which costs four box filters
    instead of six. The cost is O(N), independent of ``radius``.

    References
    ----------
    .. [1] He, Sun & Tang, "Guided Image Filtering", IEEE TPAMI 35(6), 2013.
    """
    if radius < 1:
        raise ValueError(f"radius must be >= 1; got {radius}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    if src is not None and src.shape != guide.shape:
        raise ValueError(f"src shape {src.shape} differs from guide shape {guide.shape}")
    h, w = guide.shape
    out = np.empty_like(guide)
    halo = 2 * radius  # box(a) needs a within radius, a needs the guide within radius

    def strip(r0: int, r1: int) -> None:
        a0, a1 = max(r0 - halo, 0), min(r1 + halo, h)
        a, b = _coefficients(guide[a0:a1], None if src is None else src[a0:a1], radius, eps)
        s = slice(r0 - a0, r1 - a0)
        res = out[r0:r1]
        np.multiply(_box(a, radius)[s], guide[r0:r1], out=res)
        res += _box(b, radius)[s]

    for_strips(strip, h, max(strip_rows(w, guide.itemsize), 4 * halo))
    return out
