"""Image features that the learning-based CLAHE model predicts its parameters from.

All features are computed on the luminance (CIE L*/100 for colour) of a working plane (values
in [0, 1]) shrunk (area averaging) so that its longer side is at most :data:`FEATURE_SIDE` pixels.
That makes them cheap (about a millisecond) and independent of the image size, which matches
what the predicted tile grid means: a number of tiles across the image, not a size in pixels.

The features, in the order the model uses them (:data:`FEATURES`):

``p01``, ``p50``, ``p99``
    1st, 50th and 99th percentiles of the luminance (where the histogram sits).
``dynamic_range``
    ``p99 - p01``: how much of the range is used (small for low-contrast images).
``mean``
    Mean luminance (dark vs bright images).
``rms_contrast``
    Standard deviation of the luminance (global RMS contrast).
``entropy``
    Shannon entropy of the 256-bin histogram, in bits divided by 8 (1 = a flat histogram).
``local_contrast``
    Mean of the local standard deviation in 7×7 windows (texture and detail strength).
``local_to_global``
    ``local_contrast / rms_contrast``: detail relative to the global spread; low when the
    global spread comes from slow illumination changes rather than detail.
``tile_contrast_spread``
    Coefficient of variation of the standard deviations of an 8×8 grid of tiles: how unevenly
    contrast is distributed over the image (what adaptive equalisation is for).
``tile_mean_spread``
    Standard deviation of the 8×8 tile means: uneven illumination.
``edge_density``
    Fraction of pixels whose Sobel gradient magnitude exceeds 0.1 × ``dynamic_range``.
``dark_fraction``, ``bright_fraction``
    Fractions of pixels below 0.1 and above 0.9 (crushed shadows / highlights).
``skewness``
    Skewness of the luminance histogram (dark-heavy vs bright-heavy).
"""

from __future__ import annotations

import numpy as np

FEATURES = (
    "p01",
    "p50",
    "p99",
    "dynamic_range",
    "mean",
    "rms_contrast",
    "entropy",
    "local_contrast",
    "local_to_global",
    "tile_contrast_spread",
    "tile_mean_spread",
    "edge_density",
    "dark_fraction",
    "bright_fraction",
    "skewness",
)

FEATURE_SIDE = 160  # the side of the training crops (processors/clahe_training.py)
_TILES = 8


def luminance(plane: np.ndarray) -> np.ndarray:
    """Luminance of a working plane: the plane itself (2-D) or CIE L*/100 of an RGB plane."""
    import cv2

    if plane.ndim == 2:
        return plane
    lab = cv2.cvtColor(plane.astype(np.float32, copy=False), cv2.COLOR_RGB2LAB)
    return lab[..., 0] / np.float32(100.0)


def shrink(lum: np.ndarray, side: int = FEATURE_SIDE) -> np.ndarray:
    """Area-average ``lum`` (2-D or (H, W, 3)) so that its longer side is at most ``side``."""
    import cv2

    lum = lum.astype(np.float32, copy=False)
    h, w = lum.shape[:2]
    f = side / max(h, w)
    if f >= 1.0:
        return lum
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(lum, size, interpolation=cv2.INTER_AREA)


def plane_features(plane: np.ndarray) -> np.ndarray:
    """Features of a working plane, 2-D or ``(H, W, 3)``: shrunk first, then its luminance."""
    return image_features(luminance(shrink(plane)))


def image_features(lum: np.ndarray) -> np.ndarray:
    """The :data:`FEATURES` of a 2-D luminance plane in [0, 1], as a float64 vector."""
    import cv2

    x = np.clip(shrink(lum), 0.0, 1.0).astype(np.float32)
    v = x.ravel().astype(np.float64)
    p01, p50, p99 = np.percentile(v, [1.0, 50.0, 99.0])
    rng = p99 - p01
    mean = v.mean()
    std = v.std()
    hist = np.bincount(np.minimum((v * 256).astype(np.int64), 255), minlength=256) / v.size
    nz = hist[hist > 0]
    entropy = float(-(nz * np.log2(nz)).sum()) / 8.0
    m = cv2.blur(x, (7, 7), borderType=cv2.BORDER_REFLECT)
    m2 = cv2.blur(x * x, (7, 7), borderType=cv2.BORDER_REFLECT)
    local = float(np.sqrt(np.maximum(m2 - m * m, 0.0)).mean())
    h, w = x.shape
    ty = np.linspace(0, h, min(_TILES, h) + 1).astype(int)
    tx = np.linspace(0, w, min(_TILES, w) + 1).astype(int)
    tstd, tmean = [], []
    for i in range(len(ty) - 1):
        for j in range(len(tx) - 1):
            t = x[ty[i]:ty[i + 1], tx[j]:tx[j + 1]]
            tstd.append(t.std())
            tmean.append(t.mean())
    tstd_a = np.asarray(tstd, np.float64)
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    grad = np.sqrt(gx * gx + gy * gy)
    edge = float((grad > 0.1 * max(rng, 1e-3)).mean())
    skew = float(((v - mean) ** 3).mean() / max(std, 1e-6) ** 3)
    return np.array([
        p01, p50, p99, rng, mean, std, entropy, local,
        local / max(std, 1e-3),
        tstd_a.std() / max(tstd_a.mean(), 1e-3),
        float(np.std(tmean)),
        edge,
        float((v < 0.1).mean()),
        float((v > 0.9).mean()),
        float(np.clip(skew, -10.0, 10.0)),
    ], dtype=np.float64)
