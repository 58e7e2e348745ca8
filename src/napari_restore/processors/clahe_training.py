"""Training data, target grid and objective of the learning-based CLAHE model.

Shared by ``scripts/train_lb_clahe.py`` (which fits and writes the model) and the tests (which
rebuild a small held-out set and check the shipped model on it). Nothing is downloaded: the
sources are images that ship inside scikit-image.

Samples
    Random square crops of a source image's luminance, of a random side between 160 pixels
    and the image's shorter side, shrunk to 160 × 160 by area averaging (the model sees whole
    images shrunk the same way, see :mod:`.clahe_features`), each degraded by one randomly
    drawn contrast problem (:data:`DEGRADATIONS`), then given mild Gaussian noise (half of
    the samples, σ up to 0.01) and quantised to 8 bits, as real low-contrast photographs are.
Targets
    For every degraded crop, the (clip limit, tiles) pair of :data:`CLIP_GRID` ×
    :data:`TILE_GRID` that maximises :func:`objective` of CLAHE's output against the
    undegraded crop. The model regresses ``log2`` of both.
Objective
    ``SSIM(out, original) + 0.1 × entropy(out) / 8``. SSIM rewards restoring the original's
    local structure *and* local contrast (its contrast term penalises both too little and
    too much contrast, so over-equalisation and amplified noise lose); the small entropy term
    (bits of a 256-bin histogram, divided by 8) breaks near-ties in favour of using the whole
    output range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .clahe_core import clahe_channel
from .clahe_features import FEATURE_SIDE, luminance

TRAIN_IMAGES = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coins", "grass",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "text",
)
HELD_OUT_IMAGES = ("coffee", "gravel", "microaneurysms", "rocket", "stereo_motorcycle")
DEGRADATIONS = ("low_contrast", "gamma_dark", "gamma_bright", "haze", "uneven_light",
                "low_contrast_uneven")
CLIP_GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
TILE_GRID = (2, 4, 8, 16)
ENTROPY_WEIGHT = 0.1
CROP = FEATURE_SIDE  # training crops are what the model sees: images shrunk to this side


@dataclass(frozen=True)
class Sample:
    image: str
    degradation: str
    clean: np.ndarray
    degraded: np.ndarray


def source(name: str) -> np.ndarray:
    """A scikit-image sample as a float32 luminance plane in [0, 1]."""
    from skimage import data

    img = getattr(data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    x = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    if x.ndim == 3:
        x = luminance(x[..., :3].copy())
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def degrade(x: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Apply one synthetic contrast problem to a clean crop in [0, 1]."""
    h, w = x.shape
    if kind == "low_contrast":
        b = rng.uniform(0.15, 0.5)
        y = rng.uniform(0.0, 1.0 - b) + b * x
    elif kind == "gamma_dark":
        y = x ** rng.uniform(1.8, 3.0)
    elif kind == "gamma_bright":
        y = x ** (1.0 / rng.uniform(1.8, 3.0))
    elif kind == "haze":
        t = rng.uniform(0.3, 0.7)
        y = t * x + (1.0 - t) * rng.uniform(0.7, 1.0)
    elif kind in ("uneven_light", "low_contrast_uneven"):
        theta = rng.uniform(0.0, 2.0 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        ramp = np.cos(theta) * yy + np.sin(theta) * xx
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
        y = x * (rng.uniform(0.1, 0.4) + (1.0 - rng.uniform(0.0, 0.2)) * ramp * 0.9 + 0.05)
        if kind == "low_contrast_uneven":
            b = rng.uniform(0.3, 0.6)
            y = rng.uniform(0.0, 0.3) + b * y
    else:
        raise ValueError(f"unknown degradation {kind!r}")
    if rng.random() < 0.5:
        y = y + rng.normal(0.0, rng.uniform(0.002, 0.01), y.shape)
    y = np.clip(y, 0.0, 1.0)
    return (np.rint(y * 255.0) / 255.0).astype(np.float32)


def samples(names: tuple[str, ...], per_image: int, seed: int) -> Iterator[Sample]:
    """Deterministic degraded crops: ``per_image`` from each source image."""
    import cv2

    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, i])
        x = source(name)
        h, w = x.shape
        for _ in range(per_image):
            side = int(rng.integers(min(CROP, h, w), min(h, w) + 1))
            r0 = int(rng.integers(0, h - side + 1))
            c0 = int(rng.integers(0, w - side + 1))
            clean = x[r0:r0 + side, c0:c0 + side].copy()
            if side > CROP:  # as the model sees whole images: shrunk by area averaging
                clean = cv2.resize(clean, (CROP, CROP), interpolation=cv2.INTER_AREA)
            kind = DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
            yield Sample(name, kind, clean, degrade(clean, kind, rng))


def entropy(x: np.ndarray) -> float:
    """Shannon entropy (bits) of the 256-bin histogram of values in [0, 1]."""
    hist = np.bincount(np.minimum((x.ravel() * 256).astype(np.int64), 255), minlength=256)
    p = hist[hist > 0] / x.size
    return float(-(p * np.log2(p)).sum())


def objective(out: np.ndarray, clean: np.ndarray) -> float:
    """``SSIM(out, clean) + ENTROPY_WEIGHT * entropy(out) / 8`` (higher is better)."""
    from skimage.metrics import structural_similarity

    ssim = structural_similarity(out, clean, data_range=1.0)
    return float(ssim + ENTROPY_WEIGHT * entropy(out) / 8.0)


def score(degraded: np.ndarray, clean: np.ndarray, clip: float, tiles: int) -> float:
    """Objective of CLAHE(``clip``, ``tiles``×``tiles``) on ``degraded`` against ``clean``."""
    return objective(clahe_channel(degraded, clip, (tiles, tiles)), clean)


def grid_scores(degraded: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Objective for every (clip, tiles) of the grid, shape ``(len(CLIP_GRID), len(TILE_GRID))``."""
    return np.array([[score(degraded, clean, c, t) for t in TILE_GRID] for c in CLIP_GRID])
